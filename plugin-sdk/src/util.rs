//! Small helpers that several plugins need.

/// Whether `host` matches `pattern`, case-insensitively: either the same name,
/// or, for a pattern `*.example.com`, any name ending in `.example.com`
/// (`a.example.com`, `a.b.example.com`, but not `example.com` itself).
///
/// ```
/// use lacquer_plugin_sdk::util::host_matches;
///
/// assert!(host_matches("Example.com", "example.COM"));
/// assert!(host_matches("*.example.com", "img.example.com"));
/// assert!(!host_matches("*.example.com", "example.com"));
/// assert!(!host_matches("*.example.com", "badexample.com"));
/// ```
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => {
            host.len() > suffix.len()
                && host.is_char_boundary(host.len() - suffix.len())
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
        _ => pattern.eq_ignore_ascii_case(host),
    }
}

/// The items of comma-separated header values (`Cache-Control`, `Vary`,
/// `Accept`...), trimmed, empty items skipped. Quoted commas are not
/// special-cased.
///
/// ```
/// let values = ["no-cache, max-age=0".to_string(), " private,".to_string()];
/// let items: Vec<_> = lacquer_plugin_sdk::util::list_items(&values).collect();
/// assert_eq!(items, ["no-cache", "max-age=0", "private"]);
/// ```
pub fn list_items(values: &[String]) -> impl Iterator<Item = &str> {
    values
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Escapes text for HTML element content and quoted attribute values.
///
/// ```
/// assert_eq!(
///     lacquer_plugin_sdk::util::html_escape(r#"<a href="x">&'</a>"#),
///     "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
/// );
/// ```
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
