//! `vary_names` (the `Vary` of a response) and `vary_key` (a request's
//! secondary cache key).
//!
//! Input (see `src/lib.rs`): section 0 is the response (`vary` lines),
//! sections 1 and 2 are two requests.
#![no_main]

use http::header::VARY;
use http::{HeaderMap, HeaderName, HeaderValue};
use lacquer_cache_semantics::{VarySpec, vary_key, vary_names};
use lacquer_fuzz::{Input, values};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let resp = input.section(0);
    let a = input.section(1);
    let b = input.section(2);

    let spec = vary_names(&resp);
    // Several Vary lines mean the same as one line joining them.
    let lines = values(&resp, &VARY);
    let mut joined = HeaderMap::new();
    if !lines.is_empty() {
        joined.insert(
            VARY,
            HeaderValue::from_bytes(&lines.join(&b","[..])).unwrap(),
        );
    }
    assert_eq!(vary_names(&joined), spec, "Vary lines {lines:?}");

    // Names from the response, plus the request fields, so keys see values.
    let mut names: Vec<HeaderName> = match &spec {
        VarySpec::Names(n) => {
            assert!(!n.is_empty());
            for w in n.windows(2) {
                assert!(
                    w[0].as_str() < w[1].as_str(),
                    "not sorted or duplicated: {n:?}"
                );
            }
            n.clone()
        }
        VarySpec::None => {
            assert!(
                lines
                    .iter()
                    .all(|l| l.split(|&c| c == b',').all(|m| m.trim_ascii().is_empty()))
            );
            Vec::new()
        }
        VarySpec::Any => Vec::new(),
    };
    for k in a.keys().chain(b.keys()) {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }

    let ka = vary_key(&names, &a);
    let kb = vary_key(&names, &b);
    assert_eq!(vary_key(&names, &a.clone()), ka);
    // The key of several fields is equal iff the key of each field is.
    let each_equal = names
        .iter()
        .all(|n| vary_key(std::slice::from_ref(n), &a) == vary_key(std::slice::from_ref(n), &b));
    assert_eq!(ka == kb, each_equal, "names {names:?}: {a:?} vs {b:?}");
    // Fields not named do not matter.
    let mut a2 = a.clone();
    a2.append("x-unrelated-fuzz", HeaderValue::from_static("1"));
    let named_unrelated = names.iter().any(|n| n == "x-unrelated-fuzz");
    if !named_unrelated {
        assert_eq!(vary_key(&names, &a2), ka);
    }
    // Presence matters: a named field absent from one request only.
    for n in &names {
        if a.contains_key(n) != b.contains_key(n) {
            assert_ne!(ka, kb, "{n} present in one request only");
        }
    }
});
