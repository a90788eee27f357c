//! `skip-recv-for`: the requests a plugin said its `on-recv` never acts on,
//! which the host then answers `continue` for without calling it.

use http::{HeaderName, Method};

use super::host_api::ReqState;

/// Most methods a plugin may name.
pub const MAX_METHODS: usize = 16;
/// Most header names a plugin may name.
pub const MAX_NAMES: usize = 32;

/// Skip `on-recv` for a request whose method is one of `methods` and that
/// carries none of `unless`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvSkip {
    methods: Vec<Method>,
    unless: Vec<HeaderName>,
}

impl RecvSkip {
    /// Check what a plugin gave (untrusted): counts, method tokens, field names.
    pub fn parse(methods: &[String], unless: &[String]) -> Result<Self, String> {
        if methods.len() > MAX_METHODS || unless.len() > MAX_NAMES {
            return Err(format!(
                "skip-recv-for takes at most {MAX_METHODS} methods and {MAX_NAMES} header names"
            ));
        }
        let methods = methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("skip-recv-for: {m:?} is not a method"))
            })
            .collect::<Result<_, _>>()?;
        let unless = unless
            .iter()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| format!("skip-recv-for: {n:?} is not a header name"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { methods, unless })
    }

    /// Whether the call for this request is skipped.
    pub fn skips(&self, req: &ReqState) -> bool {
        self.methods.contains(&req.method)
            && !self.unless.iter().any(|n| req.headers.contains_key(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&str, &str)]) -> ReqState {
        let mut r = ReqState {
            method,
            ..ReqState::default()
        };
        for (n, v) in headers {
            r.headers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        r
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_listed_methods_without_the_named_headers_are_skipped() {
        let s = RecvSkip::parse(&strings(&["GET", "HEAD"]), &strings(&["Cookie"])).unwrap();
        assert!(s.skips(&req(Method::GET, &[("accept", "*/*")])));
        assert!(s.skips(&req(Method::HEAD, &[])));
        assert!(!s.skips(&req(Method::POST, &[])));
        assert!(!s.skips(&req(Method::from_bytes(b"PURGE").unwrap(), &[])));
        // Names are case-insensitive, and an empty value still counts.
        assert!(!s.skips(&req(Method::GET, &[("cookie", "")])));
    }

    #[test]
    fn bad_input_is_refused_naming_it() {
        let e = RecvSkip::parse(&strings(&["GE T"]), &[]).unwrap_err();
        assert!(e.contains("\"GE T\" is not a method"), "{e}");
        let e = RecvSkip::parse(&strings(&["GET"]), &strings(&["bad name"])).unwrap_err();
        assert!(e.contains("\"bad name\" is not a header name"), "{e}");
        let many = strings(&["GET"; MAX_METHODS + 1]);
        assert!(RecvSkip::parse(&many, &[]).unwrap_err().contains("at most"));
    }
}
