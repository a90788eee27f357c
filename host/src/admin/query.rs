//! Query strings of admin requests (`?url=/a%20b&host=example.com`), decoded
//! as `application/x-www-form-urlencoded` by the `form_urlencoded` crate.
//!
//! This file depends only on `form_urlencoded` (the fuzz targets include it as is).

/// Longest query string read: 8 KiB. A longer one is refused, not truncated.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// A decoded query string.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decode `raw` (the part after `?`); `Err` names the limit when it is too long.
    pub fn parse(raw: &str) -> Result<Query, String> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "query string of {} bytes: at most {MAX_QUERY_BYTES}",
                raw.len()
            ));
        }
        Ok(Query {
            pairs: form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        })
    }

    /// The first value of `name`, decoded.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present with a true value (`1`, `true`, `yes`, or empty).
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| matches!(v, "" | "1" | "true" | "yes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        let q = Query::parse("url=%2Fa%20b+c&host=Example.com&soft=1&x").unwrap();
        assert_eq!(q.get("url"), Some("/a b c"));
        assert_eq!(q.get("host"), Some("Example.com"));
        assert!(q.flag("soft"));
        assert!(q.flag("x"));
        assert!(!q.flag("hard"));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn bad_escapes_and_utf8_do_not_fail() {
        let q = Query::parse("url=%zz%e9%&a=%").unwrap();
        assert!(q.get("url").unwrap().starts_with("%zz"));
    }

    #[test]
    fn long_queries_are_refused() {
        let e = Query::parse(&"a".repeat(MAX_QUERY_BYTES + 1)).unwrap_err();
        assert!(e.contains("at most"), "{e}");
    }
}
