//! Raw TCP peers for what a well-behaved HTTP library will not send: a
//! client writing bytes of its choosing (absolute-form targets, duplicate
//! or missing `Host`, half-sent heads), and an origin answering with bytes
//! of its choosing (conflicting framing, interim statuses).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Send `request` on a new connection and read until the server closes it
/// (or 30 s pass: then panic). Returns everything read.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write request");
    read_to_close(&mut s).await
}

/// [`exchange`] from a chosen local address (any 127.0.0.0/8 address works
/// on Linux's loopback): how a test is several clients at once.
pub async fn exchange_from(from: std::net::IpAddr, addr: SocketAddr, request: &[u8]) -> String {
    let socket = match from {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind the client address");
    let mut s = socket.connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write request");
    read_to_close(&mut s).await
}

/// Read until the peer closes (or 30 s pass: then panic).
pub async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    assert!(
        r.is_ok(),
        "the peer did not close within 30 s; read so far: {:?}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// Read off a kept-alive connection until one whole response has arrived,
/// framed as [`responses`] frames it (panics if the peer closes first or
/// 30 s pass).
pub async fn read_response(s: &mut TcpStream) -> Parsed {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = s.read(&mut buf).await.expect("read a response");
            assert!(
                n > 0,
                "closed before a whole response: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
            if let Some(r) = responses(&raw).0.into_iter().next() {
                return r;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("a whole response within 30 s")
}

/// Whether the server closes `s` within `limit` (reading and discarding
/// whatever it sends first).
pub async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let wait = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, wait).await.is_ok()
}

/// The status code of the first response in `raw` (0 if none).
pub fn status_of(raw: &str) -> u16 {
    raw.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A response read off a connection the way a client frames it.
#[derive(Debug)]
pub struct Parsed {
    /// Status.
    pub status: u16,
    /// Header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Parsed {
    /// Every value of a field.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Split what a connection carried into responses, framing each by its
/// `Content-Length` or chunked coding (heads parsed by `httparse`); the
/// second value is what is left over that frames no response.
pub fn responses(raw: &[u8]) -> (Vec<Parsed>, Vec<u8>) {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(n)) = r.parse(rest) else {
            return (out, rest.to_vec());
        };
        let status = r.code.unwrap_or(0);
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let mut body_rest = &rest[n..];
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let Some(eol) = body_rest.windows(2).position(|w| w == b"\r\n") else {
                    return (out, rest.to_vec());
                };
                let size =
                    usize::from_str_radix(String::from_utf8_lossy(&body_rest[..eol]).trim(), 16)
                        .unwrap_or(usize::MAX);
                if size == usize::MAX || body_rest.len() < eol + 2 + size + 2 {
                    return (out, rest.to_vec());
                }
                body.extend_from_slice(&body_rest[eol + 2..eol + 2 + size]);
                body_rest = &body_rest[eol + 2 + size + 2..];
                if size == 0 {
                    break;
                }
            }
        } else if let Some(len) = find("content-length") {
            let len: usize = len.trim().parse().unwrap_or(usize::MAX);
            if body_rest.len() < len {
                return (out, rest.to_vec());
            }
            body.extend_from_slice(&body_rest[..len]);
            body_rest = &body_rest[len..];
        } else if status >= 200 && status != 204 && status != 304 {
            body.extend_from_slice(body_rest);
            body_rest = &[];
        }
        out.push(Parsed {
            status,
            headers,
            body,
        });
        rest = body_rest;
        if rest.is_empty() {
            return (out, Vec::new());
        }
    }
}

/// An origin that answers every request with the same raw bytes and closes.
pub struct RawOrigin {
    /// Address.
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawOrigin {
    /// Start on 127.0.0.1:0, answering `response` to each request head.
    pub async fn start(response: &'static [u8]) -> RawOrigin {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw origin");
        let addr = l.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (h, seen) = (hits.clone(), heads.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                let (h, seen) = (h.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = s.write_all(response).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        RawOrigin {
            addr,
            hits,
            heads,
            task,
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The request heads received, as text.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
