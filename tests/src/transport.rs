//! The transport a backend is reached over, as a test parameter: one test
//! body, run once over TCP and once over a Unix domain socket.
//!
//! ```ignore
//! async fn connect_refused(t: Transport) { let port = t.parked(); ... }
//! lacquer_tests::both_transports!(connect_refused);
//! // tests `connect_refused::tcp` and `connect_refused::unix`
//! ```

use std::fmt;

use crate::origin::{Origin, ParkedPort, Reply, Seen, TempDir, UnixOrigin};

/// How the host reaches a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `http://127.0.0.1:port`.
    Tcp,
    /// `unix:/path.sock`.
    Unix,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        })
    }
}

impl Transport {
    /// A backend name unique to this test and transport (tests share one
    /// log capture, so their lines are told apart by backend name).
    pub fn name(self, base: &str) -> String {
        format!("{base}_{self}")
    }

    /// A real HTTP origin over this transport, answering with `f`.
    pub async fn origin(self, f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> AnyOrigin {
        match self {
            Transport::Tcp => AnyOrigin::Tcp(Origin::start(f).await),
            Transport::Unix => AnyOrigin::Unix(UnixOrigin::start(f)),
        }
    }

    /// An address that refuses connections until [`Parked::listen`]: a TCP
    /// port bound but not listening, or a socket path nothing is bound to.
    pub fn parked(self) -> Parked {
        match self {
            Transport::Tcp => Parked::Tcp(ParkedPort::new()),
            Transport::Unix => {
                let dir = TempDir::new();
                let path = dir.path.join("parked.sock");
                Parked::Unix { dir, path }
            }
        }
    }

    /// An origin that reads a request head, writes `answer` raw and closes.
    pub async fn raw_origin(self, answer: &'static [u8]) -> RawAny {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        async fn answer_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
            mut s: S,
            answer: &[u8],
        ) {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = s.write_all(answer).await;
            let _ = s.shutdown().await;
        }
        match self {
            Transport::Tcp => {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let url = format!("http://{}", l.local_addr().unwrap());
                let task = tokio::spawn(async move {
                    while let Ok((s, _)) = l.accept().await {
                        tokio::spawn(answer_one(s, answer));
                    }
                });
                RawAny {
                    url,
                    task,
                    _dir: None,
                }
            }
            Transport::Unix => {
                let dir = TempDir::new();
                let path = dir.path.join("raw.sock");
                let l = tokio::net::UnixListener::bind(&path).unwrap();
                let task = tokio::spawn(async move {
                    while let Ok((s, _)) = l.accept().await {
                        tokio::spawn(answer_one(s, answer));
                    }
                });
                RawAny {
                    url: format!("unix:{}", path.display()),
                    task,
                    _dir: Some(dir),
                }
            }
        }
    }
}

/// An origin over either transport.
pub enum AnyOrigin {
    /// Over TCP.
    Tcp(Origin),
    /// Over a Unix domain socket.
    Unix(UnixOrigin),
}

impl AnyOrigin {
    /// The backend `url` to configure.
    pub fn url(&self) -> String {
        match self {
            AnyOrigin::Tcp(o) => o.url(),
            AnyOrigin::Unix(o) => o.url(),
        }
    }
    /// Requests served so far.
    pub fn hits(&self) -> usize {
        match self {
            AnyOrigin::Tcp(o) => o.hits(),
            AnyOrigin::Unix(o) => o.hits(),
        }
    }
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        match self {
            AnyOrigin::Tcp(o) => o.connections(),
            AnyOrigin::Unix(o) => o.connections(),
        }
    }
    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        match self {
            AnyOrigin::Tcp(o) => o.seen(),
            AnyOrigin::Unix(o) => o.seen(),
        }
    }
}

/// An address that refuses connections until it is turned into an origin.
pub enum Parked {
    /// A TCP port, bound and not listening.
    Tcp(ParkedPort),
    /// A socket path in a fresh directory, nothing bound to it.
    Unix {
        /// Holds the directory.
        dir: TempDir,
        /// The socket path.
        path: std::path::PathBuf,
    },
}

impl Parked {
    /// The backend `url` to configure.
    pub fn url(&self) -> String {
        match self {
            Parked::Tcp(p) => p.url(),
            Parked::Unix { path, .. } => format!("unix:{}", path.display()),
        }
    }

    /// Start serving: from now on the address is an origin answering with `f`.
    pub fn listen(self, f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> ParkedOrigin {
        match self {
            Parked::Tcp(p) => ParkedOrigin {
                origin: AnyOrigin::Tcp(p.listen(f)),
                _dir: None,
            },
            Parked::Unix { dir, path } => ParkedOrigin {
                origin: AnyOrigin::Unix(UnixOrigin::bind(path, f)),
                _dir: Some(dir),
            },
        }
    }
}

/// An origin that was a [`Parked`] address (derefs to [`AnyOrigin`]).
pub struct ParkedOrigin {
    origin: AnyOrigin,
    _dir: Option<TempDir>,
}

impl std::ops::Deref for ParkedOrigin {
    type Target = AnyOrigin;
    fn deref(&self) -> &AnyOrigin {
        &self.origin
    }
}

/// A raw origin (see [`Transport::raw_origin`]); stops when dropped.
pub struct RawAny {
    /// The backend `url` to configure.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<TempDir>,
}

impl Drop for RawAny {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Run an `async fn(Transport)` as two tests, `<name>::tcp` and `<name>::unix`.
#[macro_export]
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn tcp() {
                super::$name($crate::Transport::Tcp).await
            }
            #[tokio::test]
            async fn unix() {
                super::$name($crate::Transport::Unix).await
            }
        }
    )*};
}
