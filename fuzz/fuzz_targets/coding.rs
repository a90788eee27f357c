//! `accepts_gzip`, `may_compress`, `coded_etag`, `vary_accept_encoding`
//! (the cache's own gzip) and `stored_content_range`, `combinable`
//! (stored 206 pieces).
//!
//! Input (see `src/lib.rs`): section 0 is a request (`accept-encoding`),
//! sections 1 and 2 are two responses (`etag`, `content-range`,
//! `content-encoding`, `cache-control`, `vary`).
//! Invariants: several `Accept-Encoding` lines mean the same as one line
//! joining them; a coded tag parses, keeps weakness and differs from the
//! original; `Vary` names `Accept-Encoding` (or `*`) after
//! `vary_accept_encoding`, added at most once; a stored range has
//! `start <= end < complete_len`; `combinable` is symmetric.
#![no_main]

use http::header::{ACCEPT_ENCODING, ETAG, VARY};
use http::{HeaderMap, HeaderValue};
use lacquer_cache_semantics::{
    accepts_gzip, coded_etag, combinable, may_compress, stored_content_range, vary_accept_encoding,
};
use lacquer_fuzz::{Input, values};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let req = input.section(0);
    let a = input.section(1);
    let b = input.section(2);

    let gzip = accepts_gzip(&req);
    let lines = values(&req, &ACCEPT_ENCODING);
    let mut joined = HeaderMap::new();
    if !lines.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(&lines.join(&b","[..]))
    {
        joined.insert(ACCEPT_ENCODING, v);
        assert_eq!(
            accepts_gzip(&joined),
            gzip,
            "Accept-Encoding lines {lines:?}"
        );
    }

    let _ = may_compress(&a);
    if let Some(tag) = a.get(ETAG)
        && let Some(coded) = coded_etag(tag, "gzip")
    {
        assert_ne!(coded, tag);
        let weak = tag.as_bytes().trim_ascii().starts_with(b"W/");
        assert_eq!(
            coded.as_bytes().starts_with(b"W/"),
            weak,
            "{tag:?} -> {coded:?}"
        );
        assert!(coded.as_bytes().ends_with(b"-gzip\""), "{coded:?}");
    }
    let mut varied = a.clone();
    vary_accept_encoding(&mut varied);
    let before = a.get_all(VARY).iter().count();
    let after = varied.get_all(VARY).iter().count();
    assert!(after == before || after == before + 1);
    vary_accept_encoding(&mut varied);
    assert_eq!(varied.get_all(VARY).iter().count(), after, "added once");

    if let Some(cr) = stored_content_range(&a) {
        assert!(cr.start <= cr.end && cr.end < cr.complete_len, "{cr:?}");
        assert_eq!(cr.len(), cr.end - cr.start + 1);
    }
    assert_eq!(combinable(&a, &b), combinable(&b, &a));
});
