//! What the host gives plugins: the request/response handles (resources whose
//! data stays in the host) and the `host` interface (log, clock, health, kv).

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderName};
use http::{HeaderMap, Method, StatusCode, Uri};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::lacquer::plugin::{host, types};
use super::kv::Namespace;
use super::limits::{self, MAX_METHOD_BYTES, MAX_URL_BYTES};
use super::log::LogBudget;
use super::stdio::LogPipe;
use super::wait::block;
use crate::backend::BackendLookup;

/// Most cache-key inputs a request may have.
pub const MAX_KEY_INPUTS: usize = 32;
/// Longest cache-key input: 1 KiB.
pub const MAX_KEY_INPUT_BYTES: usize = 1024;

/// Host-side type behind the WIT `request` resource. The handle carries no
/// data: methods act on the request of the call in progress.
pub struct RequestHandle;
/// Host-side type behind the WIT `response` resource.
pub struct ResponseHandle;

/// The request as the host holds it while plugins look at it.
#[derive(Debug, Clone)]
pub struct ReqState {
    /// Method.
    pub method: Method,
    /// Path and query (origin form).
    pub uri: Uri,
    /// Header fields (hop-by-hop fields already removed).
    pub headers: HeaderMap,
    /// Host without port, lower case.
    pub host: String,
    /// Client address.
    pub client: SocketAddr,
    /// Request id (hex), also in logs and error pages.
    pub id: Arc<str>,
    /// Backend or director chosen by a plugin.
    pub backend: Option<String>,
    /// Extra cache-key inputs added by plugins.
    pub key_inputs: Vec<String>,
}

impl Default for ReqState {
    fn default() -> Self {
        Self {
            method: Method::GET,
            uri: Uri::from_static("/"),
            headers: HeaderMap::new(),
            host: String::new(),
            client: SocketAddr::from(([0, 0, 0, 0], 0)),
            id: Arc::from(""),
            backend: None,
            key_inputs: Vec::new(),
        }
    }
}

impl ReqState {
    /// Set (or append) a header field within the limits of
    /// [`limits::set_field`]. `Host` is one field, never two: setting it
    /// changes the host the cache key and the backend see (checked like a
    /// client's, see [`crate::http_util::parse_host`]).
    pub fn set_header(&mut self, name: &str, value: &str, append: bool) -> Result<(), String> {
        if name.eq_ignore_ascii_case("host") {
            let host = crate::http_util::parse_host(value)?;
            limits::set_field(&mut self.headers, header::HOST.as_str(), &host, false)?;
            self.host = host;
            return Ok(());
        }
        limits::set_field(&mut self.headers, name, value, append)
    }
}

/// A response's head while plugins look at it.
#[derive(Debug, Clone, Default)]
pub struct RespState {
    /// Status.
    pub status: StatusCode,
    /// Header fields.
    pub headers: HeaderMap,
}

/// Limits memory growth, and remembers whether it refused some.
pub struct Limiter {
    /// Bytes a memory may grow to.
    pub max_memory: usize,
    /// Set when a growth was refused (the fault is then "memory").
    pub denied: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory;
        self.denied |= !ok;
        Ok(ok)
    }
    fn table_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Per-plugin facts shared by all its instances.
pub struct PluginEnv {
    /// Plugin name (for log lines).
    pub name: Arc<str>,
    /// `[server] debug_headers`.
    pub debug_headers: bool,
    /// The plugin's key-value namespace.
    pub kv: Arc<Namespace>,
    /// Backend names and health.
    pub backends: Arc<dyn BackendLookup>,
    /// The cache, for `invalidate`.
    pub cache: Arc<crate::cache::Cache>,
    /// The plugin's log allowance.
    pub log: LogBudget,
    /// The cluster: counters and token buckets live in its Redis.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// `shared_kv`: `kv-get`/`kv-set` go to the cluster's Redis too.
    pub shared_kv: bool,
}

/// The data of one instance's store.
pub struct StoreState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) stdio: LogPipe,
    pub(crate) env: Arc<PluginEnv>,
    /// The request of the call in progress (boxed, so that moving it in
    /// and out of the store for each call moves a pointer).
    pub(crate) req: Box<ReqState>,
    /// The response of the call in progress, if the hook has one.
    pub(crate) resp: RespState,
    /// The first output the host refused during the call in progress: the
    /// call then ends in an `invalid-output` fault.
    pub(crate) violation: Option<String>,
    /// Bytes logged during the call in progress.
    pub(crate) logged: usize,
    /// CPU time the call in progress may still spend.
    pub(crate) cpu: super::cpu::CpuBudget,
    /// Whether `init` is running (`skip-recv-for` is only taken then).
    pub(crate) initialising: bool,
    /// What `init` asked with `skip-recv-for`.
    pub(crate) recv_skip: Option<super::recv_skip::RecvSkip>,
}

impl StoreState {
    /// Remember a refused output (the first one names the fault) and hand
    /// the refusal back to the guest.
    fn refuse<T>(&mut self, r: Result<T, String>) -> Result<T, String> {
        if let Err(e) = &r
            && self.violation.is_none()
        {
            self.violation = Some(e.clone());
        }
        r
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn get_all(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

fn names(headers: &HeaderMap) -> Vec<String> {
    headers.keys().map(|k| k.as_str().to_owned()).collect()
}

/// Remove a field; framing fields are the host's and stay.
fn remove(headers: &mut HeaderMap, name: &str) {
    if let Ok(n) = HeaderName::from_bytes(name.as_bytes())
        && !limits::is_framing(&n)
    {
        headers.remove(n);
    }
}

impl types::Host for StoreState {}

impl types::HostRequest for StoreState {
    fn method(&mut self, _: Resource<RequestHandle>) -> String {
        self.req.method.as_str().to_owned()
    }
    fn set_method(&mut self, _: Resource<RequestHandle>, method: String) -> Result<(), String> {
        let m = if method.len() > MAX_METHOD_BYTES {
            Err(format!("method longer than {MAX_METHOD_BYTES} bytes"))
        } else {
            Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("invalid method {:?}", limits::clip(&method)))
        };
        self.req.method = self.refuse(m)?;
        Ok(())
    }
    fn url(&mut self, _: Resource<RequestHandle>) -> String {
        self.req
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned()
    }
    fn set_url(&mut self, _: Resource<RequestHandle>, url: String) -> Result<(), String> {
        let uri = if url.len() > MAX_URL_BYTES {
            Err(format!("url longer than {MAX_URL_BYTES} bytes"))
        } else if !url.starts_with('/') {
            Err(format!("url must start with '/': {:?}", limits::clip(&url)))
        } else {
            url.parse::<Uri>()
                .map_err(|e| format!("invalid url {:?}: {e}", limits::clip(&url)))
        };
        self.req.uri = self.refuse(uri)?;
        Ok(())
    }
    fn host(&mut self, _: Resource<RequestHandle>) -> String {
        self.req.host.clone()
    }
    fn header(&mut self, _: Resource<RequestHandle>, name: String) -> Option<String> {
        get(&self.req.headers, &name)
    }
    fn header_all(&mut self, _: Resource<RequestHandle>, name: String) -> Vec<String> {
        get_all(&self.req.headers, &name)
    }
    fn header_names(&mut self, _: Resource<RequestHandle>) -> Vec<String> {
        names(&self.req.headers)
    }
    fn set_header(
        &mut self,
        _: Resource<RequestHandle>,
        name: String,
        value: String,
    ) -> Result<(), String> {
        let r = self.req.set_header(&name, &value, false);
        self.refuse(r)
    }
    fn append_header(
        &mut self,
        _: Resource<RequestHandle>,
        name: String,
        value: String,
    ) -> Result<(), String> {
        let r = self.req.set_header(&name, &value, true);
        self.refuse(r)
    }
    fn remove_header(&mut self, _: Resource<RequestHandle>, name: String) {
        remove(&mut self.req.headers, &name)
    }
    fn client_addr(&mut self, _: Resource<RequestHandle>) -> String {
        self.req.client.to_string()
    }
    fn id(&mut self, _: Resource<RequestHandle>) -> String {
        self.req.id.to_string()
    }
    fn set_backend(&mut self, _: Resource<RequestHandle>, name: String) -> Result<(), String> {
        if self.env.backends.healthy(&name).is_none() {
            return Err(format!("unknown backend or director {name:?}"));
        }
        self.req.backend = Some(name);
        Ok(())
    }
    fn backend(&mut self, _: Resource<RequestHandle>) -> Option<String> {
        self.req.backend.clone()
    }
    fn add_cache_key(&mut self, _: Resource<RequestHandle>, data: String) {
        let r = if self.req.key_inputs.len() >= MAX_KEY_INPUTS {
            Err(format!(
                "at most {MAX_KEY_INPUTS} cache-key inputs per request"
            ))
        } else if data.len() > MAX_KEY_INPUT_BYTES {
            Err(format!(
                "cache-key input longer than {MAX_KEY_INPUT_BYTES} bytes"
            ))
        } else {
            self.req.key_inputs.push(data);
            Ok(())
        };
        let _ = self.refuse(r);
    }
    fn drop(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl types::HostResponse for StoreState {
    fn status(&mut self, _: Resource<ResponseHandle>) -> u16 {
        self.resp.status.as_u16()
    }
    fn set_status(&mut self, _: Resource<ResponseHandle>, status: u16) -> Result<(), String> {
        self.resp.status = self.refuse(limits::final_status(status))?;
        Ok(())
    }
    fn header(&mut self, _: Resource<ResponseHandle>, name: String) -> Option<String> {
        get(&self.resp.headers, &name)
    }
    fn header_all(&mut self, _: Resource<ResponseHandle>, name: String) -> Vec<String> {
        get_all(&self.resp.headers, &name)
    }
    fn header_names(&mut self, _: Resource<ResponseHandle>) -> Vec<String> {
        names(&self.resp.headers)
    }
    fn set_header(
        &mut self,
        _: Resource<ResponseHandle>,
        name: String,
        value: String,
    ) -> Result<(), String> {
        let r = limits::set_field(&mut self.resp.headers, &name, &value, false);
        self.refuse(r)
    }
    fn append_header(
        &mut self,
        _: Resource<ResponseHandle>,
        name: String,
        value: String,
    ) -> Result<(), String> {
        let r = limits::set_field(&mut self.resp.headers, &name, &value, true);
        self.refuse(r)
    }
    fn remove_header(&mut self, _: Resource<ResponseHandle>, name: String) {
        remove(&mut self.resp.headers, &name)
    }
    fn drop(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl host::Host for StoreState {
    fn log(&mut self, level: types::Level, message: String) {
        let env = &self.env;
        env.log
            .line(&mut self.logged, &env.name, &self.req.id, level, &message);
    }
    fn debug_headers(&mut self) -> bool {
        self.env.debug_headers
    }
    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
    fn backend_healthy(&mut self, name: String) -> Option<bool> {
        self.env.backends.healthy(&name)
    }
    fn counter_add(&mut self, key: String, delta: i64, ttl_ms: u64) -> wasmtime::Result<i64> {
        let hop = super::shared_state::hop(self);
        block(
            self.env.counter_add(hop, &key, delta, ttl_ms),
            self.cpu.deadline(),
        )
    }
    fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        block(self.env.kv_get(&key), self.cpu.deadline())
    }
    fn kv_set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> wasmtime::Result<Result<(), String>> {
        block(self.env.kv_set(key, value, ttl_ms), self.cpu.deadline())
    }
    fn invalidate(
        &mut self,
        how: host::Invalidation,
        host: String,
        url: String,
    ) -> Result<u32, String> {
        let cache = &self.env.cache;
        let host = crate::http_util::normalize_host(&host);
        let n = match how {
            host::Invalidation::Purge => cache.purge(crate::cache::key(&host, &url, &[])),
            host::Invalidation::SoftPurge => cache.soft_purge(crate::cache::key(&host, &url, &[])),
            host::Invalidation::Ban => {
                // A refused ban (bad pattern, or max_bans active) is told to the plugin.
                cache.ban(crate::cache::Ban::new(Some(&host), &url)?)?
            }
        };
        tracing::info!(
            plugin = &*self.env.name,
            req = &*self.req.id,
            "{how:?} host={host} url={url}: {n}"
        );
        Ok(n as u32)
    }
    fn take_token(
        &mut self,
        key: String,
        rate: f64,
        burst: u32,
    ) -> wasmtime::Result<Result<(), u64>> {
        let hop = super::shared_state::hop(self);
        block(
            self.env.take_token(hop, &key, rate, burst),
            self.cpu.deadline(),
        )
    }
    fn skip_recv_for(
        &mut self,
        methods: Vec<String>,
        unless_headers: Vec<String>,
    ) -> Result<(), String> {
        if !self.initialising {
            return Err("skip-recv-for is only taken during init".into());
        }
        self.recv_skip = Some(super::recv_skip::RecvSkip::parse(
            &methods,
            &unless_headers,
        )?);
        Ok(())
    }
}
