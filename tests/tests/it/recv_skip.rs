//! `skip-recv-for`: the bundled `cache-policy` says it continues for a GET
//! or HEAD without cookies or credentials, so such requests (a plain cache
//! hit) are served without calling it; every other request still is.

use lacquer_tests::{Lacquer, Origin, Reply};

#[tokio::test]
async fn plain_hits_skip_cache_policy_and_the_rest_still_call_it() {
    let o = Origin::start(|_| Reply::ok("fine").header("cache-control", "max-age=60")).await;
    // The default bundle, with one cookie the policy strips and Varnish's
    // rule for credentials.
    let l = Lacquer::with_origin(
        &o.url(),
        "[[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n\
         config = { ignore_cookies = [\"_ga*\"], pass_authorization = true }\n\
         [[plugins]]\nname = \"error-pages\"\nbuiltin = \"error-pages\"\n",
    )
    .await;
    let skipped = "lacquer_plugin_skipped_total{plugin=\"cache-policy\",hook=\"on-recv\"}";

    assert_eq!(l.get("/a").await.header("x-cache"), "MISS");
    let hit = l.get("/a").await;
    assert_eq!((hit.status, hit.header("x-cache")), (200, "HIT"));
    assert_eq!(
        l.request("HEAD", "/a", &[], "").await.header("x-cache"),
        "HIT"
    );
    assert_eq!(l.plugin_calls("cache-policy", "on-recv").await, 0.0);
    assert_eq!(l.metric(skipped).await, 3.0);

    // A cookie is the policy's business: it is called, and passes.
    let with_cookie = l.request("GET", "/a", &[("cookie", "session=1")], "").await;
    assert_eq!(with_cookie.header("x-cache"), "PASS");
    assert_eq!(o.hits(), 2, "the pass went to the origin");
    // An ignored cookie is removed by the policy, so the request is a hit.
    let ignored = l.request("GET", "/a", &[("cookie", "_ga=7")], "").await;
    assert_eq!(ignored.header("x-cache"), "HIT");
    // Credentials pass too, and PURGE is still the policy's to allow.
    let auth = l
        .request("GET", "/a", &[("authorization", "Basic eA==")], "")
        .await;
    assert_eq!(auth.header("x-cache"), "PASS");
    let purge = l.request("PURGE", "/a", &[], "").await;
    assert_eq!(purge.status, 200, "{}", purge.text());
    assert_eq!(l.plugin_calls("cache-policy", "on-recv").await, 4.0);
    assert_eq!(l.metric(skipped).await, 3.0);
    assert_eq!(l.get("/a").await.header("x-cache"), "MISS", "purged");
}
