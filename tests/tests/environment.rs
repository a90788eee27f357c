//! The harness is immune to `LACQUER_*` overrides in the environment of
//! whoever runs the tests: the host would honour them, the harness removes
//! them before each host starts. Alone in its test binary, because it sets
//! a variable of the process.

use lacquer_tests::{Lacquer, ParkedPort};

const STRAY: &str = "LACQUER_SERVER__DEBUG_HEADERS";

#[tokio::test]
async fn a_stray_override_does_not_change_a_tests_outcome() {
    // SAFETY: this binary's only test; nothing else runs in the process yet.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(STRAY, "true")
    };
    // The host reads it: a config parsed with it set has debug headers on.
    let dead = ParkedPort::new();
    let toml = format!("[[backends]]\nname = \"app\"\nurl = \"{}\"\n", dead.url());
    let seen = lacquer::Config::from_toml(&toml, "env-test", None).unwrap();
    assert!(
        seen.debug_headers,
        "the override is read from the environment"
    );
    // A mistaken override is blamed on the variable, not on the file.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("LACQUER_SERVER__LISN", "1")
    };
    let e = lacquer::Config::from_toml(&toml, "env-test", None)
        .unwrap_err()
        .to_string();
    #[allow(unsafe_code)]
    unsafe {
        std::env::remove_var("LACQUER_SERVER__LISN")
    };
    assert!(
        e.starts_with("environment (LACQUER_SERVER__DEBUG_HEADERS, LACQUER_SERVER__LISN): ")
            && e.contains("lisn"),
        "{e}"
    );

    // Through the harness it is gone: the default (no debug headers) holds.
    let l = Lacquer::with_origin(&dead.url(), "").await;
    assert!(std::env::var_os(STRAY).is_none(), "the harness removed it");
    let r = l.request("GET", "/", &[("accept", "text/html")], "").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.header("x-lacquer-error"),
        "",
        "debug_headers stays off: {:?}",
        r.headers
    );
    assert_eq!(
        l.fetch_failures("app", "connect-refused").await,
        1.0,
        "the cause, counted"
    );
}
