//! Directors (round-robin, fallback, hash, random) and retries across their
//! members.

use lacquer_tests::{AnyOrigin, Reply, Transport, both_transports};

use super::{
    CLIENT_TIMEOUT, assert_branded_503, assert_logged, backend, director, get, start_with,
};

/// Two origins answering their own name, never cacheable.
async fn named_origins(t: Transport) -> (AnyOrigin, AnyOrigin) {
    let a = t
        .origin(|_| Reply::ok("a").header("cache-control", "no-store"))
        .await;
    let b = t
        .origin(|_| Reply::ok("b").header("cache-control", "no-store"))
        .await;
    (a, b)
}

/// A config with members `<base>_a` and `<base>_b` (at `a` and `b`) under a
/// director `<base>` of `kind`, the default backend.
fn two_members(
    t: Transport,
    base: &str,
    kind: &str,
    a: &str,
    b: &str,
    extra: &str,
) -> (String, Vec<String>) {
    let d = t.name(base);
    let (na, nb) = (format!("{d}_a"), format!("{d}_b"));
    let server = format!("debug_headers = true\ndefault_backend = \"{d}\"\n");
    let parts = vec![
        backend(&na, a, ""),
        backend(&nb, b, ""),
        director(&d, kind, &[&na, &nb], extra),
    ];
    (server, parts)
}

async fn round_robin_alternates(t: Transport) {
    let (a, b) = named_origins(t).await;
    let (server, parts) = two_members(t, "rr", "round-robin", &a.url(), &b.url(), "");
    let l = start_with(&server, &parts).await;
    let mut got = String::new();
    for i in 0..8 {
        got.push_str(&get(&l, &format!("/rr{i}")).await.got.text());
    }
    assert!(got == "abababab" || got == "babababa", "alternates: {got}");
    assert_eq!((a.hits(), b.hits()), (4, 4));
}

async fn fallback_uses_the_first_healthy(t: Transport) {
    let (a, b) = named_origins(t).await;
    let (server, parts) = two_members(t, "fb", "fallback", &a.url(), &b.url(), "");
    let l = start_with(&server, &parts).await;
    let first = format!("{}_a", t.name("fb"));
    for i in 0..3 {
        assert_eq!(get(&l, &format!("/f{i}")).await.got.text(), "a");
    }
    l.force_health(&first, "sick").await;
    for i in 0..3 {
        assert_eq!(
            get(&l, &format!("/g{i}")).await.got.text(),
            "b",
            "first is sick"
        );
    }
    l.force_health(&first, "auto").await;
    assert_eq!(get(&l, "/h").await.got.text(), "a", "first is back");
    assert_eq!((a.hits(), b.hits()), (4, 3));
}

async fn hash_by_url_is_sticky_and_spreads(t: Transport) {
    let (a, b) = named_origins(t).await;
    let (server, parts) = two_members(t, "h", "hash", &a.url(), &b.url(), "key = \"url\"");
    let l = start_with(&server, &parts).await;
    let mut first = Vec::new();
    for i in 0..20 {
        first.push(get(&l, &format!("/item/{i}")).await.got.text());
    }
    for round in 0..2 {
        for (i, want) in first.iter().enumerate() {
            let got = get(&l, &format!("/item/{i}")).await.got.text();
            assert_eq!(&got, want, "URL /item/{i} moved (round {round})");
        }
    }
    assert!(
        first.iter().any(|x| x == "a") && first.iter().any(|x| x == "b"),
        "spreads: {first:?}"
    );
    assert_eq!(a.hits() + b.hits(), 60);
}

async fn random_with_zero_weight_never_picks_it(t: Transport) {
    let (a, b) = named_origins(t).await;
    let (server, parts) = two_members(t, "rnd", "random", &a.url(), &b.url(), "weights = [1, 0]");
    let l = start_with(&server, &parts).await;
    for i in 0..30 {
        assert_eq!(get(&l, &format!("/r{i}")).await.got.text(), "a");
    }
    assert_eq!(b.hits(), 0);
}

async fn director_with_every_member_sick_is_no_backend(t: Transport) {
    let (a, b) = named_origins(t).await;
    let (server, parts) = two_members(t, "allsick", "round-robin", &a.url(), &b.url(), "");
    let l = start_with(&server, &parts).await;
    let d = t.name("allsick");
    l.force_health(&format!("{d}_a"), "sick").await;
    l.force_health(&format!("{d}_b"), "sick").await;
    let r = get(&l, "/n").await;
    assert_branded_503(&r, "no-backend", &d);
    assert_eq!(l.fetch_failures(&d, "no-backend").await, 1.0);
    assert_logged(&d, "no-backend");
    assert_eq!(a.hits() + b.hits(), 0);
    let dirs = l.backends().await["directors"].clone();
    assert_eq!(dirs[0]["name"], d.as_str());
    assert_eq!(dirs[0]["healthy"], false);
}

// ---- Retries ----

async fn get_is_retried_on_another_backend(t: Transport) {
    let dead = t.parked();
    let alive = t
        .origin(|_| Reply::ok("alive").header("cache-control", "no-store"))
        .await;
    let (server, parts) = two_members(t, "retry_rr", "round-robin", &dead.url(), &alive.url(), "");
    let l = start_with(&server, &parts).await;
    for i in 0..4 {
        let r = get(&l, &format!("/g{i}")).await;
        assert_eq!(
            (r.got.status, r.got.text().as_str()),
            (200, "alive"),
            "request {i}"
        );
        assert_eq!(r.got.header("x-lacquer-error"), "", "the retry succeeded");
    }
    let dead_name = format!("{}_a", t.name("retry_rr"));
    assert!(
        l.fetch_failures(&dead_name, "connect-refused").await >= 1.0,
        "the dead member was picked at least once (and the request retried)"
    );
    assert_eq!(alive.hits(), 4);
}

async fn post_is_not_retried(t: Transport) {
    let dead = t.parked();
    let alive = t
        .origin(|_| Reply::ok("alive").header("cache-control", "no-store"))
        .await;
    let (server, parts) = two_members(t, "retry_fb", "fallback", &dead.url(), &alive.url(), "");
    let l = start_with(&server, &parts).await;
    let dead_name = format!("{}_a", t.name("retry_fb"));
    // Forced healthy: the dead one stays first in line whatever its breaker says.
    l.force_health(&dead_name, "healthy").await;
    let r = l
        .try_request(
            "POST",
            "/form",
            &[("accept", "text/html")],
            "a=1",
            CLIENT_TIMEOUT,
        )
        .await
        .unwrap();
    assert_branded_503(&r, "connect-refused", &dead_name);
    assert_eq!(
        l.fetch_failures(&dead_name, "connect-refused").await,
        1.0,
        "one attempt only"
    );
    assert_eq!(alive.hits(), 0, "a POST is never sent twice");
    // The same route with a GET is retried on the next member.
    let g = get(&l, "/page").await;
    assert_eq!((g.got.status, g.got.text().as_str()), (200, "alive"));
    assert_eq!(l.fetch_failures(&dead_name, "connect-refused").await, 2.0);
}

async fn a_single_backend_is_not_retried_against_itself(t: Transport) {
    let name = t.name("single");
    let dead = t.parked();
    // The default max_retries (1).
    let l = start_with("debug_headers = true\n", &[backend(&name, &dead.url(), "")]).await;
    let r = get(&l, "/s").await;
    assert_branded_503(&r, "connect-refused", &name);
    assert_eq!(
        l.fetch_failures(&name, "connect-refused").await,
        1.0,
        "one attempt"
    );
}

both_transports!(
    round_robin_alternates,
    fallback_uses_the_first_healthy,
    hash_by_url_is_sticky_and_spreads,
    random_with_zero_weight_never_picks_it,
    director_with_every_member_sick_is_no_backend,
    get_is_retried_on_another_backend,
    post_is_not_retried,
    a_single_backend_is_not_retried_against_itself,
);
