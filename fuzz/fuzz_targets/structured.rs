//! Targeted fields parsed as RFC 8941 Structured Field Dictionaries
//! (`CacheControl::parse_targeted`, and `response_directives`, which picks
//! the targeted field or falls back to `Cache-Control`).
//!
//! Input: each line (split on `\n`) is one `CDN-Cache-Control` field line;
//! lines `http` refuses as a field value are skipped.
#![no_main]

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue};
use lacquer_cache_semantics::{
    CDN_CACHE_CONTROL, CacheControl, DirectiveSource, Options, response_directives,
};
use lacquer_fuzz::{check_cc, lines};
use libfuzzer_sys::fuzz_target;

fn targeted(values: &[&[u8]]) -> Option<CacheControl> {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(CDN_CACHE_CONTROL, HeaderValue::from_bytes(v).unwrap());
    }
    CacheControl::parse_targeted(&h, &CDN_CACHE_CONTROL)
}

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = lines(data)
        .filter(|l| HeaderValue::from_bytes(l).is_ok())
        .collect();
    let mut h = HeaderMap::new();
    for v in &values {
        h.append(CDN_CACHE_CONTROL, HeaderValue::from_bytes(v).unwrap());
    }
    let whole = CacheControl::parse_targeted(&h, &CDN_CACHE_CONTROL);
    if let Some(cc) = &whole {
        check_cc(cc);
        assert!(!cc.is_empty(), "Some(empty) for {values:?}");
    }

    // A field is a Dictionary when every (non-blank) line is: the lines are
    // then one Dictionary, as if joined with commas (RFC 8941 §4.2).
    let non_blank: Vec<&[u8]> = values
        .iter()
        .copied()
        .filter(|v| !v.trim_ascii().is_empty())
        .collect();
    let each: Vec<Option<CacheControl>> = non_blank.iter().map(|v| targeted(&[v])).collect();
    if each.iter().any(Option::is_none) {
        assert_eq!(
            whole, None,
            "an invalid line in {values:?} did not void the field"
        );
    } else if !non_blank.is_empty() {
        assert!(whole.is_some(), "valid lines {values:?} gave no dictionary");
        let joined = non_blank.join(&b", "[..]);
        assert_eq!(
            targeted(&[&joined]),
            whole,
            "lines {non_blank:?} parse differently once joined"
        );
    } else {
        assert_eq!(whole, None);
    }

    let d = response_directives(&h, &Options::default());
    match (&whole, &d.source) {
        (Some(cc), DirectiveSource::Targeted(name)) => {
            assert_eq!(*name, CDN_CACHE_CONTROL);
            assert_eq!(d.cc, *cc);
        }
        (None, DirectiveSource::CacheControl) => {
            assert_eq!(d.cc, CacheControl::parse(&h, &CACHE_CONTROL));
        }
        (w, s) => panic!("parse_targeted gave {w:?} but response_directives chose {s:?}"),
    }
    let none = Options {
        targeted_fields: Vec::new(),
        ..Options::default()
    };
    assert_eq!(
        response_directives(&h, &none).source,
        DirectiveSource::CacheControl
    );
});
