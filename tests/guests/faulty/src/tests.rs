use std::time::{Duration, Instant};

use lacquer_plugin_sdk::host::Invalidation;
use lacquer_plugin_sdk::{CacheState, Level, instantiate, testing};

use super::*;

fn faulty(config: &str) -> Faulty {
    instantiate(config).unwrap_or_else(|err| panic!("{config}: {err}"))
}

fn init_error(config: &str) -> String {
    match instantiate::<Faulty>(config) {
        Ok(_) => panic!("{config}: init succeeded"),
        Err(err) => err,
    }
}

/// Runs `f`'s on-recv for `/boom` on a request with host `example.com`,
/// returning the action and the request afterwards.
fn recv(f: &Faulty) -> (RecvAction, Request<'static>) {
    let req = Request::builder()
        .url("/boom")
        .header("host", "example.com")
        .build();
    (f.on_recv(&req), req)
}

/// Runs `f`'s on-deliver for `/boom` on a plain 200, returning the action and
/// the response afterwards.
fn deliver(f: &Faulty) -> (DeliverAction, Response<'static>) {
    let req = Request::builder().url("/boom").build();
    let resp = Response::builder().build();
    let action = f.on_deliver(&req, &resp, &DeliverInfo::new(CacheState::Miss));
    (action, resp)
}

fn recv_synth(f: &Faulty) -> SynthResponse {
    match recv(f).0 {
        RecvAction::Synth(resp) => resp,
        other => panic!("expected a synth, got {other:?}"),
    }
}

#[test]
fn config_selects_mode_hook_and_prefix() {
    let f: Faulty =
        instantiate(r#"{"mode": "crlf", "hook": "deliver", "path_prefix": "/x"}"#).unwrap();
    assert_eq!(
        (f.mode, f.hook, f.path_prefix.as_str()),
        (Mode::Crlf, Hook::Deliver, "/x")
    );
    let f: Faulty = instantiate(r#"{"mode": "huge-body"}"#).unwrap();
    assert_eq!((f.hook, f.path_prefix.as_str()), (Hook::Recv, "/boom"));
    assert_eq!(
        instantiate::<Faulty>(r#"{"mode": "bad-init"}"#)
            .err()
            .unwrap(),
        "faulty: bad-init requested"
    );
    assert!(instantiate::<Faulty>(r#"{"mode": "nope"}"#).is_err());
}

#[test]
fn misbehaves_only_under_the_prefix_and_in_its_hook() {
    let f: Faulty = instantiate(r#"{"mode": "crlf"}"#).unwrap();
    let fine = Request::builder().url("/fine").build();
    assert_eq!(f.on_recv(&fine), RecvAction::Continue);
    let boom = Request::builder().url("/boom/x").build();
    let RecvAction::Synth(bad) = f.on_recv(&boom) else {
        panic!("expected a synth")
    };
    assert!(bad.header_value("x-injected").unwrap().contains("\r\n"));
    let resp = Response::builder().build();
    assert_eq!(
        f.on_deliver(&boom, &resp, &DeliverInfo::new(CacheState::Miss)),
        DeliverAction::Continue
    );
}

#[test]
fn ok_mode_marks_every_response() {
    let f: Faulty = instantiate(r#"{"mode": "ok"}"#).unwrap();
    let resp = Response::builder().build();
    f.on_deliver(
        &Request::builder().build(),
        &resp,
        &DeliverInfo::new(CacheState::Hit),
    );
    assert_eq!(resp.header("x-faulty").as_deref(), Some("ok"));
}

#[test]
fn every_new_mode_name_parses() {
    for (name, mode) in [
        ("framing", Mode::Framing),
        ("framing-edit", Mode::FramingEdit),
        ("status-101", Mode::Status101),
        ("set-status-101", Mode::SetStatus101),
        ("header-flood", Mode::HeaderFlood),
        ("synth-header-flood", Mode::SynthHeaderFlood),
        ("log-flood", Mode::LogFlood),
        ("print-flood", Mode::PrintFlood),
        ("ban-flood", Mode::BanFlood),
        ("sleep", Mode::Sleep),
        ("cache-key-flood", Mode::CacheKeyFlood),
        ("url-flood", Mode::UrlFlood),
    ] {
        assert_eq!(faulty(&format!(r#"{{"mode": "{name}"}}"#)).mode, mode);
    }
    assert!(instantiate::<Faulty>(r#"{"mode": "status101"}"#).is_err());
}

#[test]
fn numeric_settings_default_per_mode() {
    let knobs = |config: &str| {
        let f = faulty(config);
        (f.count, f.size, f.sleep, f.status)
    };
    let zero = Duration::ZERO;
    assert_eq!(knobs(r#"{"mode": "header-flood"}"#), (40_000, 16, zero, 0));
    assert_eq!(
        knobs(r#"{"mode": "synth-header-flood"}"#),
        (40_000, 16, zero, 0)
    );
    assert_eq!(knobs(r#"{"mode": "log-flood"}"#), (20_000, 1024, zero, 0));
    assert_eq!(knobs(r#"{"mode": "print-flood"}"#), (20_000, 1024, zero, 0));
    assert_eq!(knobs(r#"{"mode": "ban-flood"}"#), (100_000, 0, zero, 0));
    assert_eq!(
        knobs(r#"{"mode": "cache-key-flood"}"#),
        (1_000, 1 << 20, zero, 0)
    );
    assert_eq!(knobs(r#"{"mode": "url-flood"}"#), (0, 1 << 20, zero, 0));
    assert_eq!(
        knobs(r#"{"mode": "sleep"}"#),
        (0, 0, Duration::from_secs(600), 0)
    );
    assert_eq!(knobs(r#"{"mode": "status-101"}"#), (0, 0, zero, 101));
    assert_eq!(knobs(r#"{"mode": "set-status-101"}"#), (0, 0, zero, 101));
    assert_eq!(knobs(r#"{"mode": "framing"}"#), (0, 0, zero, 0));
}

#[test]
fn numeric_settings_override_the_defaults() {
    let f = faulty(r#"{"mode": "header-flood", "count": 400, "size": 1048576}"#);
    assert_eq!((f.count, f.size), (400, 1 << 20));
    assert_eq!(
        faulty(r#"{"mode": "sleep", "sleep_ms": 25}"#).sleep,
        Duration::from_millis(25)
    );
    assert_eq!(
        faulty(r#"{"mode": "status-101", "status": 103}"#).status,
        103
    );
}

#[test]
fn settings_a_mode_does_not_read_fail_init() {
    assert_eq!(
        init_error(r#"{"mode": "crlf", "count": 1}"#),
        "faulty: mode Crlf does not read `count`"
    );
    assert!(init_error(r#"{"mode": "ban-flood", "size": 1}"#).contains("`size`"));
    assert!(init_error(r#"{"mode": "log-flood", "sleep_ms": 1}"#).contains("`sleep_ms`"));
    assert!(init_error(r#"{"mode": "framing", "status": 101}"#).contains("`status`"));
    assert!(init_error(r#"{"mode": "sleep", "cont": 1}"#).contains("unknown field `cont`"));
    assert!(init_error(r#"{"mode": "header-flood", "count": -1}"#).contains("count"));
}

#[test]
fn framing_answers_with_contradictory_framing() {
    let resp = recv_synth(&faulty(r#"{"mode": "framing"}"#));
    assert_eq!(resp.status, 200);
    for (name, value) in [
        ("content-length", "3"),
        ("transfer-encoding", "chunked"),
        ("connection", "keep-alive, x-evil"),
        ("upgrade", "websocket"),
    ] {
        assert_eq!(resp.header_value(name), Some(value), "{name}");
    }
    assert_eq!(resp.body.len(), 60);
    let body = resp.body_str().unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-smuggled: 1\r\n\r\nevil!"));
}

#[test]
fn framing_edit_rewrites_the_real_response() {
    let f = faulty(r#"{"mode": "framing-edit", "hook": "deliver"}"#);
    let (action, resp) = deliver(&f);
    assert_eq!(action, DeliverAction::Continue);
    for (name, value) in [
        ("content-length", "3"),
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("upgrade", "h2c"),
    ] {
        assert_eq!(resp.header(name).as_deref(), Some(value), "{name}");
    }
    // In a hook without a response it does nothing.
    let f = faulty(r#"{"mode": "framing-edit"}"#);
    let (action, req) = recv(&f);
    assert_eq!(action, RecvAction::Continue);
    assert_eq!(req.header("content-length"), None);
}

#[test]
fn status_modes_answer_or_set_the_status() {
    let resp = recv_synth(&faulty(r#"{"mode": "status-101"}"#));
    assert_eq!((resp.status, resp.body_str()), (101, Some("switch\n")));
    let resp = recv_synth(&faulty(r#"{"mode": "status-101", "status": 103}"#));
    assert_eq!(resp.status, 103);

    let f = faulty(r#"{"mode": "set-status-101", "hook": "backend-response"}"#);
    let req = Request::builder().url("/boom").build();
    let resp = Response::builder().build();
    let proposal = Proposal::cache(Duration::from_secs(1));
    assert_eq!(
        f.on_backend_response(&req, &resp, proposal.clone()),
        BackendResponseAction::Continue(proposal)
    );
    assert_eq!(resp.status(), 101);
    // An invalid status is refused by the host; the plugin goes on.
    let f = faulty(r#"{"mode": "set-status-101", "hook": "deliver", "status": 5}"#);
    let (action, resp) = deliver(&f);
    assert_eq!((action, resp.status()), (DeliverAction::Continue, 200));
}

#[test]
fn header_flood_floods_the_response_or_the_request() {
    let f = faulty(r#"{"mode": "header-flood", "hook": "deliver", "count": 5, "size": 3}"#);
    let (action, resp) = deliver(&f);
    assert_eq!(action, DeliverAction::Continue);
    assert_eq!(resp.header_all("x-flood"), vec!["xxx"; 5]);

    let f = faulty(r#"{"mode": "header-flood", "count": 4, "size": 2}"#);
    let (action, req) = recv(&f);
    assert_eq!(action, RecvAction::Continue);
    assert_eq!(req.header_all("x-flood"), vec!["xx"; 4]);
}

#[test]
fn synth_header_flood_answers_with_many_headers() {
    let resp = recv_synth(&faulty(
        r#"{"mode": "synth-header-flood", "count": 3, "size": 4}"#,
    ));
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers,
        vec![("x-flood".to_owned(), "xxxx".to_owned()); 3]
    );
    assert_eq!(
        recv_synth(&faulty(r#"{"mode": "synth-header-flood"}"#))
            .headers
            .len(),
        40_000
    );
}

#[test]
fn log_flood_logs_numbered_lines_of_the_size() {
    testing::reset();
    let f = faulty(r#"{"mode": "log-flood", "count": 3, "size": 40}"#);
    assert_eq!(recv(&f).0, RecvAction::Continue);
    let logs = testing::logs();
    assert_eq!(logs.len(), 3);
    for (i, (level, line)) in logs.iter().enumerate() {
        assert_eq!(*level, Level::Info);
        assert_eq!(line.len(), 40);
        assert!(line.starts_with(&format!("faulty flood {i} x")), "{line}");
    }
    // A size shorter than the number cuts it.
    testing::reset();
    let f = faulty(r#"{"mode": "log-flood", "count": 1, "size": 6}"#);
    recv(&f);
    assert_eq!(testing::logs()[0].1, "faulty");
}

#[test]
fn print_flood_continues() {
    let f = faulty(r#"{"mode": "print-flood", "count": 2, "size": 10}"#);
    assert_eq!(recv(&f).0, RecvAction::Continue);
    assert!(testing::logs().is_empty());
}

#[test]
fn ban_flood_bans_numbered_urls_on_the_host() {
    testing::reset();
    let f = faulty(r#"{"mode": "ban-flood", "count": 3}"#);
    assert_eq!(recv(&f).0, RecvAction::Continue);
    let expected: Vec<_> = (0..3)
        .map(|i| {
            (
                Invalidation::Ban,
                "example.com".to_owned(),
                format!("^/banned/{i}$"),
            )
        })
        .collect();
    assert_eq!(testing::invalidations(), expected);
}

#[test]
fn sleep_sleeps_then_continues() {
    let f = faulty(r#"{"mode": "sleep", "hook": "fetch-error", "sleep_ms": 30}"#);
    let req = Request::builder().url("/boom/slow").build();
    let error = FetchError::new(lacquer_plugin_sdk::FetchErrorKind::ConnectRefused, "b");
    let started = Instant::now();
    assert_eq!(
        f.on_fetch_error(&req, &error, false),
        FetchErrorAction::Continue
    );
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn cache_key_flood_adds_inputs() {
    let f = faulty(r#"{"mode": "cache-key-flood", "count": 3, "size": 5}"#);
    let (action, req) = recv(&f);
    assert_eq!(action, RecvAction::Continue);
    assert_eq!(req.cache_key_inputs(), vec!["xxxxx"; 3]);
}

#[test]
fn url_flood_sets_a_long_url() {
    let f = faulty(r#"{"mode": "url-flood", "size": 8}"#);
    let (action, req) = recv(&f);
    assert_eq!(action, RecvAction::Continue);
    assert_eq!(req.url(), "/aaaaaaa");
    let (_, req) = recv(&faulty(r#"{"mode": "url-flood", "size": 0}"#));
    assert_eq!(req.url(), "/");
    assert_eq!(flood::long_url(1 << 20).len(), 1 << 20);
}

#[test]
fn new_modes_keep_to_their_hook_and_prefix() {
    testing::reset();
    let f = faulty(r#"{"mode": "log-flood", "count": 2, "hook": "deliver"}"#);
    recv(&f);
    let req = Request::builder().url("/fine").build();
    let resp = Response::builder().build();
    f.on_deliver(&req, &resp, &DeliverInfo::new(CacheState::Hit));
    assert!(testing::logs().is_empty());
    deliver(&f);
    assert_eq!(testing::logs().len(), 2);

    let f = faulty(r#"{"mode": "header-flood", "count": 2, "hook": "deliver"}"#);
    let (action, req) = recv(&f);
    assert_eq!(action, RecvAction::Continue);
    assert!(req.header_all("x-flood").is_empty());
}

#[test]
fn filler_is_exactly_the_size() {
    assert_eq!(flood::filler("ab", 5), "abxxx");
    assert_eq!(flood::filler("abcdef", 3), "abc");
    assert_eq!(flood::filler("", 0), "");
}
