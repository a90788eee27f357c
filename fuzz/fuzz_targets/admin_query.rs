//! The admin API's query strings (`host/src/admin/query.rs`, included as is):
//! `Query::parse` on arbitrary UTF-8, then `get` and `flag`.
//!
//! Input: the query string (the part after `?`); invalid UTF-8 is skipped
//! (the host only sees `&str` queries).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../host/src/admin/query.rs"]
mod query;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let q = match query::Query::parse(raw) {
        Ok(q) => q,
        Err(e) => {
            assert!(raw.len() > query::MAX_QUERY_BYTES, "refused {raw:?}: {e}");
            return;
        }
    };
    assert!(raw.len() <= query::MAX_QUERY_BYTES);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    names.extend([
        "url", "host", "prefix", "tag", "soft", "hard", "", "missing",
    ]);
    for name in names {
        let got = q.get(name);
        let want = pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        assert_eq!(got, want, "get({name:?}) of {raw:?}");
        assert_eq!(
            q.flag(name),
            matches!(got, Some("" | "1" | "true" | "yes")),
            "flag({name:?}) of {raw:?}"
        );
    }
});
