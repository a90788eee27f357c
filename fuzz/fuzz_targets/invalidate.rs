//! `invalidation_targets`: the URIs to invalidate after an unsafe request,
//! resolving the response's `Location` / `Content-Location` references
//! against the request URI (RFC 9111 §4.4, RFC 3986 §5.2).
//!
//! Input (see `src/lib.rs`): section 0 is the response; `:uri U` (default
//! `http://example.com/a/b/c?q=1`, skipped if `http` refuses it),
//! `:method M` (default POST), `:status N` (default 200).
//!
//! Invariants: nothing for safe methods or error statuses; otherwise the
//! request's own path comes first, targets are distinct, carry no fragment
//! and no dot segment; a reference `scheme:rest` with the request's scheme
//! and no authority means what `rest` means (RFC 3986 §5.2.2, non-strict
//! parsing, as the implementation documents).
#![no_main]

use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use lacquer_cache_semantics::invalidation_targets;
use lacquer_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fn check(method: &Method, status: StatusCode, uri: &Uri, resp: &HeaderMap) -> Vec<String> {
    let t = invalidation_targets(method, status, uri, resp);
    if method.is_safe() || !(status.is_success() || status.is_redirection()) {
        assert!(t.is_empty(), "{method} {status}: {t:?}");
        return t;
    }
    assert!(!t.is_empty() && t.len() <= 3, "{t:?}");
    for (i, target) in t.iter().enumerate() {
        assert!(!target.contains('#'), "fragment in {target:?}");
        assert!(!t[..i].contains(target), "duplicate {target:?} in {t:?}");
        let path = target.split('?').next().unwrap();
        if i > 0 || uri.path().starts_with('/') {
            assert!(path.starts_with('/'), "{target:?} from {uri} {resp:?}");
        }
        assert!(
            !path.split('/').skip(1).any(|s| s == "." || s == ".."),
            "dot segment left in {target:?} (request {uri}, {resp:?})"
        );
    }
    t
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let resp = input.section(0);
    let uri = match input.get("uri") {
        Some(u) => match Uri::try_from(u) {
            Ok(u) => u,
            Err(_) => return,
        },
        None => Uri::from_static("http://example.com/a/b/c?q=1"),
    };
    let method = input
        .get("method")
        .and_then(|m| Method::from_bytes(m).ok())
        .unwrap_or(Method::POST);
    let status = input
        .int::<u16>("status")
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let t = check(&method, status, &uri, &resp);
    check(&Method::GET, status, &uri, &resp);
    check(&Method::DELETE, StatusCode::NO_CONTENT, &uri, &resp);

    // `http:/x` (the request's scheme, no authority) is the reference `/x`.
    let Some(scheme) = uri.scheme_str() else {
        return;
    };
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(reference) = resp.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let reference = reference.trim();
        let Some((s, rest)) = reference.split_once(':') else {
            continue;
        };
        if !s.eq_ignore_ascii_case(scheme)
            || rest.starts_with("//")
            || rest.starts_with(|c: char| c.is_ascii_whitespace())
            // `http:a:b` without its scheme would read as scheme `a`.
            || rest.split(['/', '?', '#']).next().unwrap().contains(':')
        {
            continue;
        }
        let mut relative = resp.clone();
        relative.remove(LOCATION);
        relative.remove(CONTENT_LOCATION);
        let mut with_scheme = relative.clone();
        with_scheme.insert(&name, HeaderValue::from_str(reference).unwrap());
        relative.insert(&name, HeaderValue::from_str(rest).unwrap());
        assert_eq!(
            invalidation_targets(&method, status, &uri, &with_scheme),
            invalidation_targets(&method, status, &uri, &relative),
            "{name}: {reference:?} resolves unlike {rest:?} against {uri}"
        );
    }
    let _ = t;
});
