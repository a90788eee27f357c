//! `evaluate_conditionals` (If-Match, If-None-Match, If-Modified-Since,
//! If-Unmodified-Since against a stored response) and
//! `conditional_request_headers` (the validators sent when revalidating).
//!
//! Input (see `src/lib.rs`): section 0 is the request, section 1 the stored
//! response (`etag`, `last-modified`, `date`); `:method M` (default GET) and
//! `:status N` (default 200) of the stored response.
#![no_main]

use http::header::{
    ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
};
use http::{HeaderMap, Method, StatusCode};
use lacquer_cache_semantics::{
    Conditional, conditional_request_headers, evaluate_conditionals, parse_http_date,
};
use lacquer_fuzz::Input;
use libfuzzer_sys::fuzz_target;

/// `entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE` (RFC 9110 §8.8.3).
fn well_formed_etag(v: &[u8]) -> bool {
    let v = v.strip_prefix(b"W/").unwrap_or(v);
    matches!(v, [b'"', inner @ .., b'"'] if inner.iter().all(|&b| b == 0x21 || b >= 0x23 && b != 0x7f))
}

fn check(method: &Method, req: &HeaderMap, status: StatusCode, resp: &HeaderMap) -> Conditional {
    let c = evaluate_conditionals(method, req, status, resp);
    if !status.is_success() {
        assert_eq!(
            c,
            Conditional::None,
            "a {status} is not subject to preconditions"
        );
    }
    let get_or_head = *method == Method::GET || *method == Method::HEAD;
    if c == Conditional::NotModified {
        assert!(get_or_head, "304 for {method}");
        assert!(req.contains_key(IF_NONE_MATCH) || req.contains_key(IF_MODIFIED_SINCE));
    }
    if ![
        IF_MATCH,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_UNMODIFIED_SINCE,
    ]
    .iter()
    .any(|n| req.contains_key(n))
    {
        assert_eq!(c, Conditional::None, "no precondition, yet {c:?}");
    }
    c
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let req = input.section(0);
    let resp = input.section(1);
    let method = input
        .get("method")
        .and_then(|m| Method::from_bytes(m).ok())
        .unwrap_or(Method::GET);
    let status = input
        .int::<u16>("status")
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let c = check(&method, &req, status, &resp);
    let head = check(&Method::HEAD, &req, status, &resp);
    if method == Method::GET {
        assert_eq!(c, head, "GET and HEAD differ");
    }
    check(&Method::POST, &req, status, &resp);

    // Revalidation requests carry the stored validators, and the stored
    // response satisfies its own validators.
    let reval = conditional_request_headers(&resp);
    assert_eq!(reval.contains_key(IF_NONE_MATCH), resp.contains_key(ETAG));
    let lm_valid = resp
        .get(LAST_MODIFIED)
        .is_some_and(|lm| parse_http_date(lm.as_bytes()).is_some());
    assert_eq!(reval.contains_key(IF_MODIFIED_SINCE), lm_valid);
    let etag_ok = resp
        .get(ETAG)
        .is_some_and(|e| well_formed_etag(e.as_bytes().trim_ascii()));
    if etag_ok || (!resp.contains_key(ETAG) && lm_valid) {
        assert_eq!(
            check(&Method::GET, &reval, StatusCode::OK, &resp),
            Conditional::NotModified,
            "revalidation headers {reval:?} do not match {resp:?}"
        );
    }
});
