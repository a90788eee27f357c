//! Waiting for a condition without sleeping as synchronisation: poll it
//! until it holds, failing the test past a generous limit.

use std::time::{Duration, Instant};

/// Poll `cond` every 20 ms until it holds or `limit` passes (then panic
/// naming `what`); returns the time taken.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
