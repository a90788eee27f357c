//! The server: binds the listeners, builds the first generation, runs the
//! periodic maintenance, and shuts down. The shared state and generations
//! live in [`crate::state`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::config::ConfigSource;
use crate::listener::{Role, Wire};
pub use crate::state::{FailureRecord, Generation, ServeError, Shared};

/// A running Lacquer.
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Load the config and plugins, bind the listeners and start serving.
    pub async fn start(source: ConfigSource) -> Result<Server, ServeError> {
        let config = source.load()?;
        let (listen, admin_listen) = (config.listen, config.admin_listen);
        let tls_listen = config.tls.as_ref().map(|t| (t.listen, t.proxy_protocol));
        let plain = Wire {
            proxy_protocol: config.proxy_protocol,
            tls: false,
        };
        let shared = Shared::new(source, &config);
        let access = crate::access::AccessLog::start(
            crate::access::Target::parse(&config.log.access),
            config.log.format,
            shared.metrics.access_log_dropped.clone(),
        )
        .map_err(ServeError::AccessLog)?;
        let _ = shared.access.set(access);
        if let Some(c) = &config.cluster {
            let cluster = crate::cluster::Cluster::start(
                c.clone(),
                shared.cache.clone(),
                shared.metrics.cluster.clone(),
            )
            .map_err(ServeError::Cluster)?;
            let _ = shared.cluster.set(cluster);
        }
        #[cfg(unix)]
        {
            // SIGUSR1: reopen the access log (after logrotate moved it).
            use tokio::signal::unix::{SignalKind, signal};
            let weak = Arc::downgrade(&shared);
            if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
                tokio::spawn(async move {
                    while usr1.recv().await.is_some() {
                        let Some(s) = weak.upgrade() else { return };
                        if let Some(a) = s.access.get() {
                            a.reopen();
                        }
                    }
                });
            }
        }
        let me = shared.clone();
        let g = tokio::task::spawn_blocking(move || {
            tokio::runtime::Handle::current().block_on(me.build(config, 1))
        })
        .await
        .expect("load task does not panic")?;
        g.backends.activate(&shared.metrics);
        shared.generation.store(Arc::new(g));

        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|cause| ServeError::Bind { addr, cause })
        };
        let listener = bind(listen).await?;
        let addr = listener.local_addr().map_err(|cause| ServeError::Bind {
            addr: listen,
            cause,
        })?;
        let (stop, stop_rx) = watch::channel(false);
        // `[server] max_connections` holds for both client listeners together.
        let clients = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![tokio::spawn(crate::listener::serve(
            listener,
            shared.clone(),
            stop_rx.clone(),
            Role::Proxy,
            plain,
            clients.clone(),
        ))];
        let tls_addr = match tls_listen {
            Some((a, proxy_protocol)) => {
                let l = bind(a).await?;
                let local = l
                    .local_addr()
                    .map_err(|cause| ServeError::Bind { addr: a, cause })?;
                let wire = Wire {
                    proxy_protocol,
                    tls: true,
                };
                tasks.push(tokio::spawn(crate::listener::serve(
                    l,
                    shared.clone(),
                    stop_rx.clone(),
                    Role::Proxy,
                    wire,
                    clients,
                )));
                Some(local)
            }
            None => None,
        };
        let admin_addr = match admin_listen {
            Some(a) => {
                let l = bind(a).await?;
                let local = l
                    .local_addr()
                    .map_err(|cause| ServeError::Bind { addr: a, cause })?;
                let _ = shared.admin_bound.set(local);
                tasks.push(tokio::spawn(crate::listener::serve(
                    l,
                    shared.clone(),
                    stop_rx.clone(),
                    Role::Admin,
                    Wire::default(),
                    Arc::default(),
                )));
                Some(local)
            }
            None => None,
        };
        let sweeper = Arc::downgrade(&shared);
        let mut sweep_stop = stop_rx;
        tasks.push(tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = t.tick() => {}
                    _ = sweep_stop.changed() => return,
                }
                // Sweeping checks objects against bans: off the async workers.
                match sweeper.upgrade() {
                    Some(s) => {
                        let _ = tokio::task::spawn_blocking(move || s.maintain()).await;
                    }
                    None => return,
                }
            }
        }));
        let admin = admin_addr.map_or_else(|| "none".into(), |a| a.to_string());
        let tls = tls_addr.map_or_else(|| "none".into(), |a| a.to_string());
        tracing::info!(%addr, %tls, %admin, "lacquer serving");
        Ok(Server {
            shared,
            addr,
            tls_addr,
            admin_addr,
            stop,
            tasks,
        })
    }

    /// The client listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS listener's address (with `[server.tls]`).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Shared state (for embedding and tests).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Reload the config (as SIGHUP does).
    pub async fn reload(&self) -> Result<u64, ServeError> {
        self.shared.reload().await
    }

    /// Stop accepting, let in-flight requests finish (up to the drain timeout).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(c) = self.shared.cluster.get() {
            c.stop();
        }
        // An open `GET /log` would otherwise hold the drain until its timeout.
        if let Some(a) = self.shared.access.get() {
            a.close_followers();
        }
        let drain = self.shared.generation.load().config.drain_timeout;
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(drain, t).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(c) = self.shared.cluster.get() {
            c.stop();
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}
