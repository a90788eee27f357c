//! `on-recv`, then the host's decision: synth, purge, pass or lookup; and
//! the invalidation an unsafe method causes (RFC 9111 §4.4).

use bytes::Bytes;
use http::{Method, Response, StatusCode};

use lacquer_cache_semantics as cs;

use super::{Cx, Step, text_headers};
use crate::body::ProxyBody;
use crate::cache;
use crate::plugin::Synth;
use crate::plugin::chain::RecvDecision;

impl Cx {
    /// Run `on-recv` and choose the next phase.
    pub(super) async fn recv(&mut self) -> Step {
        let decision = match self.generation.chain.on_recv(&mut self.rs).await {
            Ok(d) => d,
            Err(f) => return Step::Answered(self.plugin_failed(f)),
        };
        let cacheable_method = matches!(self.rs.method, Method::GET | Method::HEAD);
        match decision {
            RecvDecision::Synth(s) => Step::Answered(self.deliver_synth(s).await),
            RecvDecision::Purge => {
                let n = self.shared.cache.purge(self.key());
                tracing::info!(req = &*self.rs.id, url = %self.rs.uri, "purged {n} objects");
                let s = Synth {
                    status: StatusCode::OK,
                    headers: text_headers(),
                    body: Bytes::from(format!("purged {n} objects\n")),
                };
                Step::Answered(self.deliver_synth(s).await)
            }
            RecvDecision::Lookup | RecvDecision::Default if cacheable_method => Step::Lookup,
            _ => Step::Pass,
        }
    }

    /// RFC 9111 §4.4: a successful unsafe request invalidates the URL and
    /// same-origin `Location` / `Content-Location` targets.
    pub(super) fn invalidate_after_unsafe(&self, resp: &Response<ProxyBody>) {
        for target in
            cs::invalidation_targets(&self.rs.method, resp.status(), &self.rs.uri, resp.headers())
        {
            self.shared
                .cache
                .purge(cache::key(&self.rs.host, &target, &self.rs.key_inputs));
        }
    }
}
