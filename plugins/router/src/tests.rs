use lacquer_plugin_sdk::{Plugin, RecvAction, Request, instantiate, testing};

use super::Router;

fn router(config: &str) -> Router {
    for backend in ["api", "images", "app", "www"] {
        testing::add_backend(backend, true);
    }
    instantiate(config).unwrap()
}

/// Routes a request and returns (backend, url after routing).
fn route(router: &Router, host: &str, url: &str) -> (Option<String>, String) {
    let req = Request::builder().header("host", host).url(url).build();
    assert_eq!(router.on_recv(&req), RecvAction::Continue);
    (req.backend(), req.url())
}

const RULES: &str = r#"{"rules": [
    {"host": "api.example.com", "backend": "api"},
    {"host": "*.example.org", "path_prefix": "/v1/", "strip_prefix": true, "backend": "api"},
    {"regex": "^/img/.*\\.png$", "backend": "images"},
    {"path_prefix": "/www", "backend": "www"},
    {"backend": "app"}
]}"#;

#[test]
fn first_matching_rule_wins() {
    let r = router(RULES);
    assert_eq!(
        route(&r, "API.example.com:8080", "/x"),
        (Some("api".into()), "/x".into())
    );
    assert_eq!(
        route(&r, "a.example.org", "/v1/users?id=1"),
        (Some("api".into()), "/users?id=1".into())
    );
    assert_eq!(
        route(&r, "a.example.org", "/v1"),
        (Some("api".into()), "/".into())
    );
    assert_eq!(
        route(&r, "example.org", "/v1/users").0.as_deref(),
        Some("app")
    );
    assert_eq!(route(&r, "x", "/img/a/b.png").0.as_deref(), Some("images"));
    assert_eq!(route(&r, "x", "/img/a/b.png?v=2").0.as_deref(), Some("app"));
    assert_eq!(route(&r, "x", "/www/index.html").0.as_deref(), Some("www"));
    assert_eq!(route(&r, "x", "/www?x=1").0.as_deref(), Some("www"));
    assert_eq!(route(&r, "x", "/wwwx").0.as_deref(), Some("app"));
    assert_eq!(route(&r, "", "/").0.as_deref(), Some("app"));
}

#[test]
fn no_match_leaves_the_backend_alone() {
    let r = router(r#"{"rules": [{"path_prefix": "/api", "backend": "api"}]}"#);
    assert_eq!(route(&r, "x", "/other"), (None, "/other".into()));
    assert_eq!(route(&router("{}"), "x", "/"), (None, "/".into()));
}

#[test]
fn init_errors_name_the_rule_and_key() {
    let err = |config: &str| instantiate::<Router>(config).err().unwrap();
    router("{}");
    assert!(
        err(r#"{"rules": [{"backend": "app"}, {"regex": "(", "backend": "app"}]}"#)
            .starts_with("rules[1].regex: invalid regex")
    );
    assert_eq!(
        err(r#"{"rules": [{"backend": "nope"}]}"#),
        "rules[0].backend: unknown backend or director \"nope\""
    );
    assert!(
        err(r#"{"rules": [{"path_prefix": "api", "backend": "app"}]}"#)
            .starts_with("rules[0].path_prefix")
    );
    assert!(
        err(r#"{"rules": [{"strip_prefix": true, "backend": "app"}]}"#)
            .starts_with("rules[0].strip_prefix")
    );
    assert!(
        err(r#"{"rules": [{"backend": "app", "hots": "x"}]}"#).contains("unknown field `hots`")
    );
    assert!(err(r#"{"rules": [{"host": "x"}]}"#).contains("missing field `backend`"));
}

#[test]
fn perl_classes_and_case_folding_work() {
    let r = router(r#"{"rules": [{"regex": "(?i)^/user/\\d+$", "backend": "api"}]}"#);
    assert_eq!(route(&r, "x", "/USER/42").0.as_deref(), Some("api"));
    assert_eq!(route(&r, "x", "/user/abc").0, None);
}
