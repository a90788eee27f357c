//! Storing and freshening: `storable`, `strip_connection_headers` (the
//! `Connection` list), `remove_unstorable_fields` (qualified `no-cache` /
//! `private` lists), `merge_not_modified`, `freshen_from_head`,
//! `ensure_date`.
//!
//! Input (see `src/lib.rs`): section 0 is the request, section 1 the
//! response to store, section 2 a `304` (or `HEAD` response) for it;
//! `:method M` (default GET), `:status N` (default 200), `:head-status N`
//! (default 200), `:time S` (the response time, seconds since the epoch).
#![no_main]

use http::header::{AGE, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, DATE};
use http::{HeaderMap, HeaderName, Method, StatusCode};
use lacquer_cache_semantics::{
    CacheControl, HeadUpdate, Options, VarySpec, ensure_date, freshen_from_head,
    merge_not_modified, parse_http_date, remove_unstorable_fields, response_directives, storable,
    strip_connection_headers, vary_names,
};
use lacquer_fuzz::{Input, at, values};
use libfuzzer_sys::fuzz_target;

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Every field of `after` is in `before` with the same lines.
fn subset(after: &HeaderMap, before: &HeaderMap) {
    for name in after.keys() {
        assert_eq!(values(after, name), values(before, name), "{name} changed");
    }
}

fn no_hop_by_hop(h: &HeaderMap) {
    for n in HOP_BY_HOP {
        assert!(!h.contains_key(n), "{n} left in {h:?}");
    }
}

/// Whether `name` cannot be among the names `Connection` lists in `h`.
fn surely_unlisted(h: &HeaderMap, name: &HeaderName) -> bool {
    h.get_all(CONNECTION).iter().all(|v| {
        let v = v.as_bytes().to_ascii_lowercase();
        !v.windows(name.as_str().len())
            .any(|w| w == name.as_str().as_bytes())
    })
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let req = input.section(0);
    let resp = input.section(1);
    let other = input.section(2);
    let method = input
        .get("method")
        .and_then(|m| Method::from_bytes(m).ok())
        .unwrap_or(Method::GET);
    let status = |name| {
        input
            .int::<u16>(name)
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK)
    };
    let (status, head_status) = (status("status"), status("head-status"));
    let opts = Options::default();

    if storable(&method, &req, status, &resp, &opts).is_ok() {
        let d = response_directives(&resp, &opts);
        assert_eq!(method, Method::GET);
        assert!(
            !status.is_informational() && status != 206 && status != 304,
            "{status}"
        );
        assert!(!CacheControl::parse(&req, &CACHE_CONTROL).no_store);
        assert!(
            !d.cc.private && (d.cc.must_understand || !d.cc.no_store),
            "{d:?}"
        );
        assert_ne!(vary_names(&resp), VarySpec::Any);
    }

    let mut stripped = resp.clone();
    strip_connection_headers(&mut stripped);
    subset(&stripped, &resp);
    no_hop_by_hop(&stripped);

    let mut clean = resp.clone();
    remove_unstorable_fields(&mut clean, &opts);
    subset(&clean, &resp);
    no_hop_by_hop(&clean);
    for n in [
        "proxy-authenticate",
        "proxy-authentication-info",
        "proxy-authorization",
    ] {
        assert!(!clean.contains_key(n));
    }
    let mut again = clean.clone();
    remove_unstorable_fields(&mut again, &opts);
    assert_eq!(again, clean, "remove_unstorable_fields is not idempotent");

    let mut merged = clean.clone();
    merge_not_modified(&mut merged, &other);
    for name in merged.keys().chain(other.keys()).chain(clean.keys()) {
        let plain = !HOP_BY_HOP.contains(&name.as_str())
            && *name != CONTENT_LENGTH
            && !name.as_str().starts_with("proxy-auth")
            && surely_unlisted(&other, name);
        if other.contains_key(name) && plain {
            assert_eq!(
                values(&merged, name),
                values(&other, name),
                "{name} not updated"
            );
        } else if !other.contains_key(name) && *name != AGE {
            assert_eq!(
                values(&merged, name),
                values(&clean, name),
                "{name} changed"
            );
        }
    }
    if !other.contains_key(AGE) {
        assert!(!merged.contains_key(AGE), "stale Age kept");
    }

    let mut headed = clean.clone();
    match freshen_from_head(head_status, &mut headed, &other) {
        HeadUpdate::Ignored => {
            assert_ne!(head_status, StatusCode::OK);
            assert_eq!(headed, clean);
        }
        HeadUpdate::Stale => assert_eq!(headed, clean),
        HeadUpdate::Updated => assert_eq!(headed, merged),
    }

    let time = input.time("time").unwrap_or(at(1_700_000_000));
    let mut dated = merged.clone();
    ensure_date(&mut dated, time);
    let date = dated.get(DATE).expect("ensure_date adds a Date");
    assert!(
        parse_http_date(date.as_bytes()).is_some(),
        "invalid Date {date:?}"
    );
    if merged
        .get(DATE)
        .is_some_and(|d| parse_http_date(d.as_bytes()).is_some())
    {
        assert_eq!(dated, merged);
    }
});
