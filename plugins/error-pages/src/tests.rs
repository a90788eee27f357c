use lacquer_plugin_sdk::{
    FetchError, FetchErrorAction, FetchErrorKind, Plugin, Request, SynthResponse, instantiate,
    testing,
};
use serde_json::Value;

use super::ErrorPages;

fn error() -> FetchError {
    let mut error = FetchError::new(FetchErrorKind::ConnectRefused, "app");
    error.detail = "Connection refused <os error 111>".into();
    error
}

fn page(config: &str, req: &Request<'_>, stale: bool) -> FetchErrorAction {
    instantiate::<ErrorPages>(config)
        .unwrap()
        .on_fetch_error(req, &error(), stale)
}

fn synth(config: &str, req: &Request<'_>) -> SynthResponse {
    match page(config, req, false) {
        FetchErrorAction::Synth(resp) => resp,
        other => panic!("expected a synth, got {other:?}"),
    }
}

#[test]
fn stale_copies_are_served_when_allowed() {
    let req = Request::builder().build();
    assert_eq!(page("{}", &req, true), FetchErrorAction::ServeStale);
    assert!(matches!(
        page(r#"{"serve_stale": false}"#, &req, true),
        FetchErrorAction::Synth(_)
    ));
}

#[test]
fn html_page_by_default() {
    let req = Request::builder().id("req-42").build();
    let resp = synth("{}", &req);
    assert_eq!(resp.status, 503);
    assert_eq!(
        resp.header_value("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.header_value("retry-after"), Some("5"));
    assert_eq!(resp.header_value("cache-control"), Some("no-store"));
    assert_eq!(resp.header_value("x-lacquer-error"), None);
    let body = resp.body_str().unwrap();
    assert!(body.starts_with("<!doctype html>"));
    assert!(body.contains("Lacquer"));
    assert!(body.contains("The application server is not answering."));
    assert!(body.contains("req-42"));
    assert!(!body.contains("connect-refused"), "no cause without debug");
    assert!(!body.contains("Guru Meditation"));
}

#[test]
fn debug_shows_the_cause_escaped() {
    testing::set_debug_headers(true);
    let resp = synth("{}", &Request::builder().build());
    assert_eq!(
        resp.header_value("x-lacquer-error"),
        Some("connect-refused backend=app")
    );
    let body = resp.body_str().unwrap();
    assert!(body.contains("connect-refused backend=app"));
    assert!(body.contains("Connection refused &lt;os error 111&gt;"));
}

#[test]
fn everything_interpolated_is_escaped() {
    let config = r#"{"brand": "<b>Shop</b>", "message": "a & b"}"#;
    let req = Request::builder().id("<script>").build();
    let body = String::from_utf8(synth(config, &req).body).unwrap();
    assert!(body.contains("&lt;b&gt;Shop&lt;/b&gt;"));
    assert!(body.contains("a &amp; b"));
    assert!(body.contains("&lt;script&gt;"));
    assert!(!body.contains("<script>") && !body.contains("<b>"));
}

#[test]
fn json_when_the_client_wants_json_only() {
    let json_req = |accept: &str| Request::builder().header("accept", accept).id("r1").build();
    let resp = synth("{}", &json_req("application/json"));
    assert_eq!(resp.header_value("content-type"), Some("application/json"));
    let doc: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "status": 503,
            "error": "connect-refused",
            "message": "The application server is not answering.",
            "request_id": "r1",
        })
    );
    for accept in [
        "application/problem+json",
        "application/json, text/html;q=0",
    ] {
        assert_eq!(
            synth("{}", &json_req(accept)).header_value("content-type"),
            Some("application/json")
        );
    }
    for accept in [
        "text/html, application/json",
        "*/*",
        "application/json;q=0",
        "",
    ] {
        let resp = synth("{}", &json_req(accept));
        assert_eq!(
            resp.header_value("content-type"),
            Some("text/html; charset=utf-8"),
            "{accept:?}"
        );
    }

    testing::set_debug_headers(true);
    let doc: Value =
        serde_json::from_slice(&synth("{}", &json_req("application/json")).body).unwrap();
    assert_eq!(doc["backend"], "app");
    assert_eq!(doc["detail"], "Connection refused <os error 111>");
}

#[test]
fn status_retry_after_and_overrides() {
    let config = r#"{
        "status": 502, "retry_after": "1500ms", "brand": "Shop", "message": "Down for a bit.",
        "per_host": {"*.api.example.com": {"brand": "Shop API"}, "example.com": {"message": "Back soon."}}
    }"#;
    let host = |host: &str| synth(config, &Request::builder().header("host", host).build());
    let resp = host("other.org");
    assert_eq!(resp.status, 502);
    assert_eq!(resp.header_value("retry-after"), Some("2"));
    let body = resp.body_str().unwrap().to_owned();
    assert!(
        body.contains("Shop") && body.contains("Down for a bit.") && body.contains("Bad Gateway")
    );
    let body = String::from_utf8(host("eu.api.example.com").body).unwrap();
    assert!(body.contains("Shop API") && body.contains("Down for a bit."));
    let body = String::from_utf8(host("example.com").body).unwrap();
    assert!(body.contains("Back soon.") && !body.contains("Shop API"));

    let resp = synth(r#"{"retry_after": 0}"#, &Request::builder().build());
    assert_eq!(resp.header_value("retry-after"), None);
}

#[test]
fn each_kind_has_its_own_message() {
    let plugin: ErrorPages = instantiate("{}").unwrap();
    let mut seen = Vec::new();
    for kind in FetchErrorKind::ALL {
        let req = Request::builder().build();
        let FetchErrorAction::Synth(resp) =
            plugin.on_fetch_error(&req, &FetchError::new(kind, "app"), false)
        else {
            panic!("expected a synth");
        };
        let message = super::page::message(kind);
        assert!(resp.body_str().unwrap().contains(message));
        assert!(!seen.contains(&message), "{kind} repeats a message");
        seen.push(message);
    }
}

#[test]
fn bad_config_is_refused() {
    assert!(
        instantiate::<ErrorPages>(r#"{"status": 200}"#)
            .err()
            .unwrap()
            .starts_with("status:")
    );
    assert!(instantiate::<ErrorPages>(r#"{"retry_after": "soon"}"#).is_err());
    assert!(instantiate::<ErrorPages>(r#"{"per_host": {"a": {"colour": "red"}}}"#).is_err());
    assert!(instantiate::<ErrorPages>(r#"{"brnad": "x"}"#).is_err());
}

#[test]
fn unusable_answers_are_502_by_default() {
    let req = Request::builder().build();
    let p = instantiate::<ErrorPages>("{}").unwrap();
    for (kind, status) in [
        (FetchErrorKind::ProtocolError, 502),
        (FetchErrorKind::ResponseTooLarge, 502),
        (FetchErrorKind::FirstByteTimeout, 503),
        (FetchErrorKind::ConnectRefused, 503),
    ] {
        match p.on_fetch_error(&req, &FetchError::new(kind, "app"), false) {
            FetchErrorAction::Synth(resp) => assert_eq!(resp.status, status, "{kind:?}"),
            other => panic!("expected a synth, got {other:?}"),
        }
    }
    let fixed = instantiate::<ErrorPages>(r#"{"status": 500}"#).unwrap();
    match fixed.on_fetch_error(
        &req,
        &FetchError::new(FetchErrorKind::ProtocolError, "app"),
        false,
    ) {
        FetchErrorAction::Synth(resp) => assert_eq!(resp.status, 500),
        other => panic!("expected a synth, got {other:?}"),
    }
}
