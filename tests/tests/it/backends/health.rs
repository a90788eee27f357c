//! Active health: probes, the operator's override, and probes removed on reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lacquer_tests::{Lacquer, Transport, both_transports, log_lines, wait_until};

use super::{PROBE, assert_branded_503, assert_logged, backend, get, health_origin, start};

async fn probes_mark_sick_then_healthy_then_sick(t: Transport) {
    let name = t.name("probed");
    let up = Arc::new(AtomicBool::new(false));
    let origin = t.origin(health_origin(up.clone())).await;
    let l = start(&[backend(&name, &origin.url(), PROBE)]).await;

    // initial = 0 < threshold: sick from the start, and requests fail without a fetch.
    let r = get(&l, "/a").await;
    assert_branded_503(&r, "backend-unhealthy", &name);
    assert_eq!(l.fetch_failures(&name, "backend-unhealthy").await, 1.0);
    assert_logged(&name, "backend-unhealthy");
    assert!(
        origin.seen().iter().all(|s| s.uri == "/health"),
        "only probes reached the origin"
    );
    let healthy = format!("lacquer_backend_healthy{{backend=\"{name}\"}}");
    assert_eq!(l.metric(&healthy).await, 0.0);

    wait_until(
        Duration::from_secs(10),
        "bad probes in the history",
        || async {
            l.backends().await["backends"][0]["probes"]
                .as_array()
                .is_some_and(|p| p.len() >= 2)
        },
    )
    .await;
    let b = l.backends().await;
    let me = &b["backends"][0];
    assert_eq!(me["name"], name.as_str());
    assert_eq!(me["healthy"], false);
    assert_eq!(me["probe"]["path"], "/health");
    let probes = me["probes"].as_array().unwrap();
    assert!(probes.iter().all(|p| p["ok"] == false), "{probes:?}");
    assert!(
        probes[0]["detail"].as_str().unwrap().starts_with("500"),
        "{probes:?}"
    );

    // Recovery: two good probes (threshold 2) bring traffic back.
    up.store(true, Ordering::SeqCst);
    let recovered = wait_until(Duration::from_secs(10), "traffic returns", || async {
        get(&l, "/b").await.got.status == 200
    })
    .await;
    println!("MEASURE {t} probes: recovery (origin up -> traffic) in {recovered:?}");
    assert_eq!(l.backends().await["backends"][0]["healthy"], true);
    assert_eq!(l.metric(&healthy).await, 1.0);
    assert!(
        log_lines("backend healthy")
            .iter()
            .any(|x| x.contains(&name))
    );
    let b = l.backends().await;
    assert!(
        b["backends"][0]["probes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ok"] == true && p["detail"].as_str().unwrap().starts_with("200")),
        "{b}"
    );

    // Detection: two bad probes in the window of 3 make it sick again.
    up.store(false, Ordering::SeqCst);
    let detected = wait_until(Duration::from_secs(10), "sick detected", || async {
        let r = get(&l, "/c").await;
        r.got.status == 503
            && r.got.header("x-lacquer-error") == format!("backend-unhealthy backend={name}")
    })
    .await;
    println!("MEASURE {t} probes: detection (origin sick -> fail fast) in {detected:?}");
    assert!(log_lines("backend sick").iter().any(|x| x.contains(&name)));
}

async fn forced_health_overrides_probes(t: Transport) {
    let name = t.name("forced");
    let up = Arc::new(AtomicBool::new(false));
    let origin = t.origin(health_origin(up.clone())).await;
    let l = start(&[backend(&name, &origin.url(), PROBE)]).await;
    assert_branded_503(&get(&l, "/a").await, "backend-unhealthy", &name);

    l.force_health(&name, "healthy").await;
    let r = get(&l, "/b").await;
    assert_eq!(
        (r.got.status, r.got.text().as_str()),
        (200, "app"),
        "forced healthy"
    );
    let b = l.backends().await;
    assert_eq!(b["backends"][0]["forced"], "healthy");
    assert_eq!(b["backends"][0]["healthy"], true);

    up.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(10), "probes report healthy", || async {
        l.backends().await["backends"][0]["probes"]
            .as_array()
            .is_some_and(|p| p.iter().rev().take(2).all(|x| x["ok"] == true))
    })
    .await;
    l.force_health(&name, "sick").await;
    assert_branded_503(&get(&l, "/c").await, "backend-unhealthy", &name);
    assert_eq!(l.backends().await["backends"][0]["healthy"], false);
    let healthy = format!("lacquer_backend_healthy{{backend=\"{name}\"}}");
    assert_eq!(l.metric(&healthy).await, 0.0);

    l.force_health(&name, "auto").await;
    assert_eq!(
        get(&l, "/d").await.got.status,
        200,
        "auto: the probes (now good) decide"
    );

    let bad = l
        .admin("POST", &format!("/backends/{name}/health"), "poorly")
        .await;
    assert_eq!(bad.status, 400);
    let missing = l.admin("POST", "/backends/nope/health", "sick").await;
    assert_eq!(missing.status, 404);
}

async fn removing_a_probe_on_reload_forgets_its_verdict(t: Transport) {
    let name = t.name("reprobe");
    let origin = t
        .origin(health_origin(Arc::new(AtomicBool::new(false))))
        .await;
    let head = "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\ndebug_headers = true\n";
    let l = Lacquer::start(&format!("{head}{}", backend(&name, &origin.url(), PROBE)))
        .await
        .unwrap();
    assert_branded_503(&get(&l, "/a").await, "backend-unhealthy", &name);
    l.write_config(&format!("{head}{}", backend(&name, &origin.url(), "")));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(&l, "/b").await;
    assert_eq!(
        (r.got.status, r.got.text().as_str()),
        (200, "app"),
        "no probe, no sick verdict"
    );
    assert_eq!(l.backends().await["backends"][0]["healthy"], true);
}

both_transports!(
    probes_mark_sick_then_healthy_then_sick,
    forced_health_overrides_probes,
    removing_a_probe_on_reload_forgets_its_verdict,
);
