use std::time::Duration;

use lacquer_plugin_sdk::{
    BackendResponseAction, Plugin, Proposal, RecvAction, Request, Response, Storage, instantiate,
};

use super::CachePolicy;

fn plugin(config: &str) -> CachePolicy {
    instantiate(config).unwrap()
}

fn recv(plugin: &CachePolicy, req: &Request<'_>) -> RecvAction {
    plugin.on_recv(req)
}

#[test]
fn purge_only_from_allowed_addresses() {
    let p = plugin("{}");
    let purge = |addr: &str| {
        recv(
            &p,
            &Request::builder().method("PURGE").client_addr(addr).build(),
        )
    };
    assert_eq!(purge("127.0.0.1:4000"), RecvAction::Purge);
    assert_eq!(purge("[::1]:4000"), RecvAction::Purge);
    let RecvAction::Synth(denied) = purge("192.0.2.1:4000") else {
        panic!("expected a synth")
    };
    assert_eq!(denied.status, 405);

    let p = plugin(r#"{"purge_allow": ["10.0.0.0/8", "2001:db8::/32"]}"#);
    let purge = |addr: &str| {
        recv(
            &p,
            &Request::builder().method("PURGE").client_addr(addr).build(),
        )
    };
    assert_eq!(purge("10.1.2.3:1"), RecvAction::Purge);
    assert_eq!(purge("[2001:db8::7]:1"), RecvAction::Purge);
    assert!(matches!(purge("11.0.0.1:1"), RecvAction::Synth(_)));
    assert!(matches!(purge("127.0.0.1:1"), RecvAction::Synth(_)));
}

#[test]
fn bad_purge_allow_names_the_entry() {
    let err = instantiate::<CachePolicy>(r#"{"purge_allow": ["127.0.0.1", "10.0.0.0/33"]}"#)
        .err()
        .unwrap();
    assert!(err.starts_with("purge_allow[1]: \"10.0.0.0/33\""), "{err}");
    assert!(instantiate::<CachePolicy>(r#"{"purge_alow": []}"#).is_err());
    assert!(instantiate::<CachePolicy>(r#"{"ignore_cookies": ["*"]}"#).is_err());
}

#[test]
fn unsafe_methods_and_authorization_pass() {
    let p = plugin("{}");
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
        assert_eq!(
            recv(&p, &Request::builder().method(method).build()),
            RecvAction::Pass,
            "{method}"
        );
    }
    assert_eq!(
        recv(&p, &Request::builder().method("HEAD").build()),
        RecvAction::Continue
    );
    let auth = Request::builder()
        .header("authorization", "Bearer x")
        .build();
    assert_eq!(
        recv(&p, &auth),
        RecvAction::Continue,
        "RFC 9111 §3.5 decides, in the host"
    );
    let strict = plugin(r#"{"pass_authorization": true}"#);
    assert_eq!(recv(&strict, &auth), RecvAction::Pass);
}

#[test]
fn cookies_pass_unless_all_are_ignored() {
    let p = plugin("{}");
    let req = Request::builder().header("cookie", "session=1").build();
    assert_eq!(recv(&p, &req), RecvAction::Pass);
    assert_eq!(req.header("cookie").as_deref(), Some("session=1"));

    let p = plugin(r#"{"ignore_cookies": ["_ga*", "consent"]}"#);
    let req = Request::builder()
        .header("cookie", "_ga=1; _gat_x=2;consent=yes")
        .build();
    assert_eq!(recv(&p, &req), RecvAction::Continue);
    assert_eq!(req.header("cookie"), None);

    let req = Request::builder()
        .header("cookie", "_ga=1; session=abc")
        .header("cookie", "consentx=1")
        .build();
    assert_eq!(recv(&p, &req), RecvAction::Pass);
    assert_eq!(req.header_all("cookie"), ["session=abc; consentx=1"]);

    let req = Request::builder().header("cookie", " ; ").build();
    assert_eq!(recv(&p, &req), RecvAction::Continue);
    assert_eq!(req.header("cookie"), None);
}

fn proposal() -> Proposal {
    Proposal {
        storage: Storage::Cache,
        ttl: Duration::from_secs(60),
        grace: Duration::from_secs(10),
        keep: Duration::from_secs(5),
        reason: "max-age=60".into(),
    }
}

fn backend_response(p: &CachePolicy, headers: &[(&str, &str)]) -> BackendResponseAction {
    backend_response_with(p, headers, proposal())
}

fn backend_response_with(
    p: &CachePolicy,
    headers: &[(&str, &str)],
    proposal: Proposal,
) -> BackendResponseAction {
    let mut builder = Response::builder();
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    p.on_backend_response(&Request::builder().build(), &builder.build(), proposal)
}

/// What the host proposes when RFC 9111 forbids storing.
fn refused() -> Proposal {
    Proposal {
        storage: Storage::Uncacheable,
        ..proposal()
    }
}

#[test]
fn a_targeted_field_overriding_cache_control_is_respected() {
    // CDN-Cache-Control: max-age=60 made the host propose caching despite no-store.
    let p = plugin("{}");
    let got = backend_response(
        &p,
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
    );
    assert_eq!(got, BackendResponseAction::Continue(proposal()));
}

#[test]
fn uncacheable_responses_become_hit_for_miss() {
    let p = plugin(r#"{"hit_for_miss_ttl": "30s"}"#);
    for headers in [
        &[("set-cookie", "a=1")][..],
        &[
            ("cache-control", "public, max-age=60"),
            ("cache-control", "Private"),
        ],
        &[("cache-control", "no-store")],
        &[("cache-control", "private=\"set-cookie\"")],
        &[("vary", "accept-encoding, *")],
    ] {
        let BackendResponseAction::Continue(got) = backend_response_with(&p, headers, refused())
        else {
            panic!("expected continue for {headers:?}");
        };
        assert_eq!(got.storage, Storage::HitForMiss, "{headers:?}");
        assert_eq!(got.ttl, Duration::from_secs(30));
        assert_eq!(got.grace, Duration::ZERO);
        assert!(got.reason.starts_with("hit-for-miss"));
    }
}

#[test]
fn cacheable_responses_keep_the_proposal() {
    let p = plugin("{}");
    for headers in [
        &[][..],
        &[("cache-control", "public, max-age=60, no-cache")],
        &[("vary", "accept-encoding")],
    ] {
        assert_eq!(
            backend_response(&p, headers),
            BackendResponseAction::Continue(proposal())
        );
    }
}

#[test]
fn hit_for_miss_ttl_defaults_to_two_minutes() {
    let BackendResponseAction::Continue(got) =
        backend_response(&plugin(""), &[("set-cookie", "a")])
    else {
        panic!("expected continue");
    };
    assert_eq!(got.ttl, Duration::from_secs(120));
}

#[test]
fn x_cache_moved_to_the_host() {
    let e = instantiate::<CachePolicy>(r#"{"x_cache": false}"#)
        .err()
        .unwrap();
    assert!(e.contains("[server] x_cache"), "{e}");
    assert!(instantiate::<CachePolicy>(r#"{"x_cache": true}"#).is_ok());
}

#[test]
fn soft_purge_and_ban_go_through_the_host() {
    lacquer_plugin_sdk::testing::reset();
    let p = plugin("{}");
    let local = |method: &str, headers: &[(&str, &str)]| {
        let mut b = Request::builder()
            .method(method)
            .url("/a/b")
            .client_addr("127.0.0.1:5000")
            .header("host", "example.com");
        for (k, v) in headers {
            b = b.header(k, v);
        }
        p.on_recv(&b.build())
    };
    assert!(
        matches!(local("PURGE", &[("x-purge", "soft")]), RecvAction::Synth(s) if s.status == 200)
    );
    assert!(
        matches!(local("BAN", &[("x-ban-url", "^/a/")]), RecvAction::Synth(s) if s.status == 200)
    );
    assert!(matches!(local("BAN", &[]), RecvAction::Synth(s) if s.status == 400));
    let calls = lacquer_plugin_sdk::testing::invalidations();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[0].0,
        lacquer_plugin_sdk::host::Invalidation::SoftPurge
    );
    assert_eq!(calls[1].2, "^/a/");
}

/// The requests `skip_recv_for` lets the host answer `continue` for are
/// exactly ones `on_recv` continues for, untouched; and a request it acts on
/// (a cookie, credentials, another method) is never among them.
#[test]
fn the_skipped_requests_are_ones_on_recv_continues_for() {
    for config in [r#"{}"#, r#"{"pass_authorization": false}"#] {
        lacquer_plugin_sdk::testing::reset();
        let p = plugin(config);
        let (methods, unless) = lacquer_plugin_sdk::testing::recv_skip().expect("asked");
        let headers: [&[(&str, &str)]; 4] = [
            &[],
            &[("accept", "*/*")],
            &[("cookie", "_ga=1")],
            &[("authorization", "Basic eA==")],
        ];
        for method in ["GET", "HEAD", "POST", "PURGE", "BAN"] {
            for h in headers {
                let mut b = Request::builder().method(method).client_addr("127.0.0.1:1");
                for (n, v) in h {
                    b = b.header(n, v);
                }
                let req = b.build();
                let skipped = methods.iter().any(|m| m == method)
                    && !h
                        .iter()
                        .any(|(n, _)| unless.iter().any(|u| u.eq_ignore_ascii_case(n)));
                let before: Vec<_> = req.header_names();
                let action = recv(&p, &req);
                if skipped {
                    assert_eq!(action, RecvAction::Continue, "{config} {method} {h:?}");
                    assert_eq!(req.header_names(), before, "{config} {method} {h:?}");
                }
                if h.iter().any(|(n, _)| *n == "cookie") && method == "GET" {
                    assert!(!skipped, "a cookie is the policy's business: {config}");
                }
            }
        }
        assert!(methods.iter().all(|m| m == "GET" || m == "HEAD"));
    }
}
