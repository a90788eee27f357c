//! The cache lookup: a fresh hit, a stale object in grace (one background
//! refresh), waiting on another request's fetch of the same key
//! (coalescing), hit-for-miss, or a miss to fetch.

use lacquer_cache_semantics as cs;

use http::Method;

use super::deliver::piece_covers;
use super::{AfterError, Answer, Cx, Mode};
use crate::cache::{Lookup, Object, Outcome};
use crate::kinds::{FetchFailure, State};

/// How many times a request waits for another's fetch before fetching itself.
const MAX_WAITS: usize = 4;

impl Cx {
    /// Look the request's key up and answer from what is found. The rare
    /// paths (fetches, errors, `only-if-cached` misses) are boxed futures,
    /// so that a hit's future holds only what a hit needs.
    pub(super) async fn lookup(&mut self) -> Answer {
        let key = self.key();
        let mut waited = false;
        for _ in 0..MAX_WAITS {
            // After waiting for a fetch, what it stored is as fresh as a revalidation.
            let (cc, headers) = if waited {
                (cs::CacheControl::default(), &self.rs.headers)
            } else {
                (self.cc.clone(), &self.rs.headers)
            };
            let found = self.shared.cache.lookup(key, headers, &cc, waited);
            if self.cc.only_if_cached && !matches!(found, Lookup::Hit(_) | Lookup::Stale { .. }) {
                if let Lookup::Miss { guard, .. } = found {
                    guard.resolve(Outcome::Uncacheable);
                }
                return Box::pin(self.gateway_timeout()).await;
            }
            // A stored partial object answers only the ranges it holds;
            // anything else is fetched (and the new piece combined with it).
            let partial_miss = |o: &Object| {
                o.partial.is_some()
                    && (self.rs.method != Method::GET || !piece_covers(o, &self.rs.headers))
            };
            match found {
                Lookup::Hit(o) if partial_miss(&o) => {
                    return self.fetch(Mode::HitForMiss(key), None).await;
                }
                Lookup::Stale { obj, refresh } if partial_miss(&obj) => {
                    let mode = refresh.map_or(Mode::HitForMiss(key), Mode::Miss);
                    return self.fetch(mode, None).await;
                }
                Lookup::Miss { guard, stale } if stale.as_deref().is_some_and(partial_miss) => {
                    return self.fetch(Mode::Miss(guard), None).await;
                }
                Lookup::Hit(o) => return self.deliver_object(&o, State::Hit, None).await,
                Lookup::Stale { obj, refresh } => {
                    if let Some(guard) = refresh {
                        let mut bg = Cx {
                            shared: self.shared.clone(),
                            generation: self.generation.clone(),
                            rs: self.rs.clone(),
                            body: None,
                            body_sent: false,
                            failure: None,
                            background: true,
                            cc: cs::CacheControl::default(),
                            forwarded: self.forwarded.clone(),
                            backend_used: None,
                            fault: None,
                            interim: None,
                        };
                        tokio::spawn(async move {
                            bg.fetch(Mode::Miss(guard), None).await;
                        });
                    }
                    return self.deliver_object(&obj, State::Stale, None).await;
                }
                Lookup::Wait { mut rx, stale } => {
                    let outcome = loop {
                        if let Some(o) = rx.borrow_and_update().clone() {
                            break o;
                        }
                        if rx.changed().await.is_err() {
                            break Outcome::Failed(FetchFailure::abandoned());
                        }
                    };
                    match outcome {
                        Outcome::Stored => {
                            waited = true;
                            continue;
                        }
                        Outcome::Uncacheable => {
                            return self.fetch(Mode::HitForMiss(key), None).await;
                        }
                        Outcome::Failed(f) => {
                            // Waiters get the stale copy the leader got.
                            let stale = stale.filter(|o| o.usable_on_error(&self.cc));
                            return match Box::pin(self.fetch_failed(f, stale, None)).await {
                                AfterError::Answer(a) => a,
                                AfterError::Retry => Box::pin(self.default_error()).await,
                            };
                        }
                    }
                }
                Lookup::HitForMiss => return self.fetch(Mode::HitForMiss(key), None).await,
                Lookup::Miss { guard, stale } => return self.fetch(Mode::Miss(guard), stale).await,
            }
        }
        self.fetch(Mode::HitForMiss(key), None).await
    }
}
