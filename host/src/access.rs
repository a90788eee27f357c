//! The access log: one record per request, written off the request path.
//!
//! A request hands its record to a bounded channel and never waits: when the
//! writer falls behind, records are dropped and counted in
//! `lacquer_access_log_dropped_total`. One thread drains the channel into
//! stdout or a file (reopened on SIGUSR1, for logrotate), in NCSA combined
//! format with Lacquer's fields appended, or as JSON lines. The same records
//! go to live followers (`GET /log` on the admin listener) when there are any.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, Version};
use prometheus_client::metrics::counter::Counter;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::LogFormat;
use crate::kinds::State;

/// Records queued for the writer at most; more are dropped.
const QUEUE: usize = 16 * 1024;
/// Records buffered for each live follower; a slow one misses records.
const FOLLOW_QUEUE: usize = 1024;

/// What one request did.
#[derive(Debug, Clone)]
pub struct Record {
    /// When the response head was ready.
    pub time: SystemTime,
    /// Request id (also in `x-request-id`).
    pub id: Arc<str>,
    /// Client address (after the PROXY header and `trusted_proxies`).
    pub client: IpAddr,
    /// "https" for a request over the TLS listener, else "http".
    pub scheme: &'static str,
    /// Method.
    pub method: Method,
    /// Host the cache key used.
    pub host: String,
    /// Path and query.
    pub url: String,
    /// HTTP version of the request.
    pub version: Version,
    /// Status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the request's arrival to the body's end.
    pub duration: Duration,
    /// How it was answered.
    pub state: State,
    /// The backend that answered or failed, if one was asked.
    pub backend: Option<String>,
    /// The status the backend answered (a 5xx here with a 200 sent is a
    /// stored copy served on error).
    pub backend_status: Option<u16>,
    /// The fetch failure's kind, if the fetch failed.
    pub fetch_error: Option<&'static str>,
    /// A fail-closed plugin fault, as `plugin/hook/kind`.
    pub fault: Option<String>,
    /// `Referer`, if any.
    pub referer: Option<String>,
    /// `User-Agent`, if any.
    pub user_agent: Option<String>,
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Quote for the combined format: `"` and `\` escaped, controls as `\xNN`.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[10/Oct/2000:13:55:36 +0000]`, in UTC.
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "[{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000]",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Record {
    /// NCSA combined, then `key=value` fields: request id, cache state,
    /// duration, backend, fetch error, plugin fault, backend status (`-`
    /// when none), scheme.
    pub fn combined(&self) -> String {
        let dash = |v: &Option<String>| v.as_deref().map_or("-".into(), quoted);
        format!(
            "{} - - {} {} {} {} {} {} id={} state={} duration_ms={:.3} backend={} fetch_error={} fault={} backend_status={} scheme={}",
            self.client,
            clf_time(self.time),
            quoted(&format!(
                "{} {} {}",
                self.method,
                self.url,
                version(self.version)
            )),
            self.status,
            self.bytes,
            dash(&self.referer),
            dash(&self.user_agent),
            self.id,
            self.state.as_str(),
            self.duration.as_secs_f64() * 1000.0,
            self.backend.as_deref().unwrap_or("-"),
            self.fetch_error.unwrap_or("-"),
            self.fault.as_deref().unwrap_or("-"),
            self.backend_status
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            self.scheme,
        )
    }

    /// One JSON object.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "time": humantime::format_rfc3339_millis(self.time).to_string(),
            "id": &*self.id,
            "client": self.client.to_string(),
            "scheme": self.scheme,
            "method": self.method.as_str(),
            "host": self.host,
            "url": self.url,
            "version": version(self.version),
            "status": self.status,
            "bytes": self.bytes,
            "duration_ms": (self.duration.as_secs_f64() * 1e6).round() / 1e3,
            "state": self.state.as_str(),
            "backend": self.backend,
            "backend_status": self.backend_status,
            "fetch_error": self.fetch_error,
            "fault": self.fault,
            "referer": self.referer,
            "user_agent": self.user_agent,
        })
    }

    /// Whether the request failed: a 5xx, a fetch failure or a plugin fault.
    pub fn is_error(&self) -> bool {
        self.status >= 500 || self.fetch_error.is_some() || self.fault.is_some()
    }
}

/// One live follower, counted while held.
pub struct Following(pub(crate) Arc<AtomicUsize>);

impl Drop for Following {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl Target {
    /// `[log] access`: `None` for "off".
    pub fn parse(access: &str) -> Option<Target> {
        match access {
            "off" => None,
            "stdout" => Some(Target::Stdout),
            path => Some(Target::File(PathBuf::from(path))),
        }
    }
}

/// The log's sending side, shared by every request.
pub struct AccessLog {
    tx: Option<mpsc::Sender<Record>>,
    follow: broadcast::Sender<Arc<Record>>,
    /// Live followers, counted here: the broadcast channel's own count
    /// takes its lock, and every request asks.
    followers: Arc<AtomicUsize>,
    /// Becomes true when followers should end their streams (shutdown).
    closing: watch::Sender<bool>,
    dropped: Counter,
    reopen: Arc<AtomicBool>,
}

impl AccessLog {
    /// Start the writer for `target` (none: records only reach followers).
    /// The file is opened now, so a bad path is an error at start.
    pub fn start(
        target: Option<Target>,
        format: LogFormat,
        dropped: Counter,
    ) -> std::io::Result<AccessLog> {
        let reopen = Arc::new(AtomicBool::new(false));
        let tx = match target {
            None => None,
            Some(t) => {
                let out = open(&t)?;
                let (tx, rx) = mpsc::channel(QUEUE);
                let flag = reopen.clone();
                std::thread::Builder::new()
                    .name("lacquer-access-log".into())
                    .spawn(move || write_loop(rx, t, out, format, flag))?;
                Some(tx)
            }
        };
        Ok(AccessLog {
            tx,
            follow: broadcast::channel(FOLLOW_QUEUE).0,
            followers: Arc::default(),
            closing: watch::channel(false).0,
            dropped,
            reopen,
        })
    }

    /// Whether anyone reads records (so a request need not build one).
    pub fn wanted(&self) -> bool {
        self.tx.is_some() || self.followers.load(Ordering::Relaxed) > 0
    }

    /// Hand a record over; never waits.
    pub fn send(&self, r: Record) {
        if self.followers.load(Ordering::Relaxed) > 0 {
            let _ = self.follow.send(Arc::new(r.clone()));
        }
        if let Some(tx) = &self.tx
            && tx.try_send(r).is_err()
        {
            self.dropped.inc();
        }
    }

    /// Follow records live (a slow follower misses some, never slows requests).
    /// Keep the [`Following`] as long as the receiver: records are sent
    /// only while one is held.
    pub fn follow(&self) -> (broadcast::Receiver<Arc<Record>>, Following) {
        self.followers.fetch_add(1, Ordering::Relaxed);
        (self.follow.subscribe(), Following(self.followers.clone()))
    }

    /// Ask every live follower to end its stream, now and from now on, so
    /// an open `GET /log` does not hold a shutdown for its drain timeout.
    pub fn close_followers(&self) {
        self.closing.send_replace(true);
    }

    /// Changes to true once [`AccessLog::close_followers`] was called.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Reopen the file before the next write (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

fn open(t: &Target) -> std::io::Result<Box<dyn Write + Send>> {
    Ok(match t {
        Target::Stdout => Box::new(std::io::stdout()),
        Target::File(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?,
        ),
    })
}

fn write_loop(
    mut rx: mpsc::Receiver<Record>,
    target: Target,
    out: Box<dyn Write + Send>,
    format: LogFormat,
    reopen: Arc<AtomicBool>,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut batch = Vec::with_capacity(256);
    while rx.blocking_recv_many(&mut batch, 256) > 0 {
        if reopen.swap(false, Ordering::Relaxed) {
            let _ = out.flush();
            match open(&target) {
                Ok(f) => out = std::io::BufWriter::with_capacity(64 * 1024, f),
                Err(e) => tracing::error!("cannot reopen the access log: {e}"),
            }
        }
        for r in batch.drain(..) {
            let line = match format {
                LogFormat::Combined => r.combined(),
                LogFormat::Json => r.json().to_string(),
            };
            let _ = writeln!(out, "{line}");
        }
        if rx.is_empty() {
            let _ = out.flush();
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A failed request's record, for tests here and of followers.
    pub(crate) fn record() -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_secs(971_186_136),
            id: "ab-1".into(),
            client: "192.0.2.1".parse().unwrap(),
            scheme: "https",
            method: Method::GET,
            host: "example.com".into(),
            url: "/a \"b\"".into(),
            version: Version::HTTP_11,
            status: 503,
            bytes: 12,
            duration: Duration::from_micros(1500),
            state: State::Miss,
            backend: Some("app".into()),
            backend_status: None,
            fetch_error: Some("connect-refused"),
            fault: None,
            referer: None,
            user_agent: Some("curl/8".into()),
        }
    }

    #[test]
    fn combined_format_quotes_and_appends_lacquer_fields() {
        assert_eq!(
            record().combined(),
            "192.0.2.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /a \\\"b\\\" HTTP/1.1\" 503 12 - \"curl/8\" id=ab-1 state=miss duration_ms=1.500 backend=app fetch_error=connect-refused fault=- backend_status=- scheme=https"
        );
        assert!(record().is_error());
    }

    #[test]
    fn json_names_every_field() {
        let j = record().json();
        assert_eq!(j["status"], 503);
        assert_eq!(j["fetch_error"], "connect-refused");
        assert_eq!(j["time"], "2000-10-10T13:55:36.000Z");
        assert_eq!(j["duration_ms"], 1.5);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let dropped = Counter::default();
        let (tx, _rx) = mpsc::channel(1);
        let log = AccessLog {
            tx: Some(tx),
            follow: broadcast::channel(1).0,
            followers: Arc::default(),
            closing: watch::channel(false).0,
            dropped: dropped.clone(),
            reopen: Arc::default(),
        };
        log.send(record());
        log.send(record());
        assert_eq!(dropped.get(), 1);
    }
}
