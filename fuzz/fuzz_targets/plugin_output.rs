//! What the host accepts from a plugin (`host/src/plugin/limits.rs`, included
//! as is): `header_pair`, `set_field`, `synth_headers`, `final_status`.
//!
//! Input: one operation a line.
//!
//! ```text
//! +name: value   set_field(append = true)
//! =name: value   set_field(append = false), replacing every line of name
//! !name: value   add (name, value) to the synthetic response's fields
//! #N             repeat each following operation N times (at most 300)
//! *N             repeat each following value N times (at most 300 KiB,
//!                640 KiB an input with the repeats of #N)
//! ?N             final_status(N) (N taken modulo 65536)
//! ```
//!
//! Invariants: after any sequence of calls, successful or not, the section
//! has at most `MAX_HEADER_FIELDS` fields and `MAX_HEADER_BYTES` bytes and no
//! framing field; a refused call leaves its size unchanged; `synth_headers` obeys
//! the same limits; `final_status` is `Ok` exactly for 200..=599.
#![no_main]

use http::HeaderMap;
use lacquer_fuzz::{lines, split_once};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../host/src/plugin/limits.rs"]
mod limits;

fn check(h: &HeaderMap) {
    assert!(h.len() <= limits::MAX_HEADER_FIELDS, "{} fields", h.len());
    let cost = limits::section_cost(h);
    assert!(cost <= limits::MAX_HEADER_BYTES, "{cost} bytes");
    for name in h.keys() {
        assert!(!limits::is_framing(name), "framing field {name} set");
    }
}

fn number(s: &str) -> usize {
    s.trim()
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0usize, |n, d| {
            n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        })
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut synth: Vec<(String, String)> = Vec::new();
    let mut synth_bytes = 0usize;
    let mut bytes_left: usize = 640 * 1024;
    let (mut times, mut copies) = (1usize, 1usize);
    for line in lines(data) {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Some(op) = line.chars().next() else {
            continue;
        };
        let rest = &line[op.len_utf8()..];
        match op {
            '#' => times = number(rest).clamp(1, 300),
            '*' => copies = number(rest).max(1),
            '?' => {
                let status = (number(rest) % 65_536) as u16;
                let r = limits::final_status(status);
                assert_eq!(r.is_ok(), (200..=599).contains(&status), "{status}: {r:?}");
                if let Ok(s) = r {
                    assert_eq!(s.as_u16(), status);
                }
            }
            '+' | '=' | '!' => {
                let (name, value) =
                    split_once(rest.as_bytes(), b':').unwrap_or((rest.as_bytes(), b""));
                let name = std::str::from_utf8(name).unwrap();
                let value = std::str::from_utf8(value).unwrap();
                let value = value.strip_prefix(' ').unwrap_or(value);
                // One value of at most 300 KiB, 640 KiB an input in all with
                // the repeats (enough to overflow a section twice; checking
                // values costs most of the time).
                let budget = (300 * 1024).min(bytes_left / times);
                let copies = copies.min(budget / value.len().max(1)).max(1);
                let value = value.repeat(copies);
                bytes_left = bytes_left.saturating_sub(value.len() * times);
                match limits::header_pair(name, &value) {
                    Ok((n, v)) => {
                        assert!(!limits::is_framing(&n));
                        assert_eq!(n.as_str(), name.to_ascii_lowercase());
                        assert_eq!(v.as_bytes(), value.as_bytes());
                    }
                    Err(e) => assert!(!e.is_empty()),
                }
                for _ in 0..times {
                    if op == '!' {
                        // Past these, synth_headers refuses anyway.
                        if synth.len() <= limits::MAX_HEADER_FIELDS
                            && synth_bytes <= 2 * limits::MAX_HEADER_BYTES
                        {
                            synth_bytes += name.len() + value.len();
                            synth.push((name.to_string(), value.clone()));
                        }
                        continue;
                    }
                    let before = (headers.len(), limits::section_cost(&headers));
                    match limits::set_field(&mut headers, name, &value, op == '+') {
                        Ok(()) => {
                            let n = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
                            let lines = headers.get_all(&n).iter().count();
                            if op == '=' {
                                assert_eq!(lines, 1, "set left {lines} lines of {n}");
                            }
                            assert_eq!(
                                headers.get_all(&n).iter().next_back().unwrap(),
                                value.as_str()
                            );
                        }
                        Err(e) => {
                            assert!(!e.is_empty());
                            let after = (headers.len(), limits::section_cost(&headers));
                            assert_eq!(after, before, "a refused set_field changed the section");
                        }
                    }
                    check(&headers);
                }
            }
            _ => {}
        }
    }
    match limits::synth_headers(&synth) {
        Ok(h) => {
            assert_eq!(h.len(), synth.len());
            check(&h);
        }
        Err(e) => assert!(!e.is_empty()),
    }
    assert!(
        limits::clip(std::str::from_utf8(data).unwrap_or(""))
            .chars()
            .count()
            <= 64
    );
});
