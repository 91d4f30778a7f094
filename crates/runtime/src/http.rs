//! Serving HTTP requests with the manifest's Spin components: each component is
//! compiled and pre-instantiated once at start; every request gets a fresh `Store`
//! with a deadline, the `spin-*` headers Spin sets, and the Spin interfaces.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use http_body_util::BodyExt;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::key_value::{KeyValue, Opened};
use crate::manifest::Manifest;
use crate::park::ParkingLot;
use crate::routes::{Route, Router};
use vigil_core::error::ApiError;

mod parked;

/// Host bindings of the Spin interfaces the components import.
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "vigil:platform/spin-host",
        path: "../../wit",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": crate::key_value::OpenStore,
            "wasi:keyvalue/store.bucket": crate::key_value::OpenStore,
            "wasi:keyvalue/atomics.cas": crate::wasi_keyvalue::Cas,
        },
    });
}

/// Share of the instance pool long-polls may hold, so short requests (ingest above all)
/// always find a slot however many clients wait. Parked long-polls hold a slot only
/// while the component is asked.
const LONG_POLL_SHARE: f64 = 0.75;
/// The longest wait a long-poll may ask for (the api component's `MAX_WAIT_SECS`, for
/// the event feed and seed 000's job wait). A long-poll's deadline is this plus the
/// short requests' deadline, so the component answers at its timeout (`pending`, or
/// the events) instead of being cut by the host.
const LONGEST_WAIT: Duration = Duration::from_secs(300);
/// How long a short request waits for a free instance before it is refused with 503.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Most resources (streams, fields, stores) one request may hold.
const MAX_RESOURCES: usize = 10_000;
/// Largest linear memory a request's instance may grow to.
const MAX_MEMORY_BYTES: usize = 128 << 20;

/// What a component is allowed, from the manifest.
pub struct ComponentInfo {
    /// Component id in the manifest.
    pub id: String,
    /// Store labels it may open.
    pub key_value_stores: Vec<String>,
    /// Its rendered variables.
    pub variables: HashMap<String, String>,
}

/// Per-request state of a component instance.
pub struct ComponentState {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    limits: StoreLimits,
    pub(crate) kv: Arc<KeyValue>,
    pub(crate) component: Arc<ComponentInfo>,
    /// The stores this request opened, synced before it is answered.
    pub(crate) opened: Arc<Opened>,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

struct Loaded {
    pre: ProxyPre<ComponentState>,
    info: Arc<ComponentInfo>,
}

/// The manifest's HTTP components, ready to serve.
pub struct HttpComponents {
    components: Vec<Loaded>,
    /// Slots for short requests.
    short: tokio::sync::Semaphore,
    /// Slots for long-polls (GET with a `timeout` parameter).
    long: tokio::sync::Semaphore,
    router: Router,
    kv: Arc<KeyValue>,
    timeout: Duration,
    /// Where long-polls wait without an instance, when the host parks them.
    lot: Option<Arc<ParkingLot>>,
}

/// A linker with WASI, wasi:http and the Spin interfaces.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<ComponentState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::fermyon::spin::key_value::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    bindings::fermyon::spin::variables::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    bindings::wasi::keyvalue::store::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    bindings::wasi::keyvalue::atomics::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    bindings::wasi::keyvalue::batch::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    Ok(linker)
}

impl HttpComponents {
    /// Compiles and pre-instantiates every component an HTTP route names.
    pub fn load(
        engine: &Engine,
        manifest: &Manifest,
        app_dir: &Path,
        app_vars: &HashMap<String, String>,
        kv: Arc<KeyValue>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let linker = linker(engine)?;
        let mut components = Vec::new();
        let mut index = HashMap::new();
        let mut routes = Vec::new();
        for trigger in &manifest.trigger.http {
            let id = &trigger.component;
            if !index.contains_key(id) {
                let decl = &manifest.component[id];
                let path = app_dir.join(&decl.source);
                let component = Component::from_file(engine, &path)
                    .map_err(anyhow::Error::from)
                    .with_context(|| {
                        format!(
                            "loading component `{id}` from {} (run ./scripts/build-wasm)",
                            path.display()
                        )
                    })?;
                let pre = ProxyPre::new(linker.instantiate_pre(&component)?)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("component `{id}` is not a wasi:http component"))?;
                let info = ComponentInfo {
                    id: id.clone(),
                    key_value_stores: decl.key_value_stores.clone(),
                    variables: crate::variables::render_component(&decl.variables, app_vars)
                        .with_context(|| format!("component `{id}`"))?,
                };
                index.insert(id.clone(), components.len());
                components.push(Loaded {
                    pre,
                    info: Arc::new(info),
                });
            }
            routes.push(Route::new(&trigger.route, index[id]));
        }
        // One slot stays for the dispatch component's instance.
        let pool = crate::engine::pool_instances() as usize - 1;
        let long = (pool as f64 * LONG_POLL_SHARE) as usize;
        Ok(Self {
            components,
            short: tokio::sync::Semaphore::new(pool - long),
            long: tokio::sync::Semaphore::new(long),
            router: Router::new(routes),
            kv,
            timeout,
            lot: None,
        })
    }

    /// Parks long-polls in `lot` instead of letting them wait in an instance; the
    /// caller feeds `lot` every published event ([`ParkingLot::observe`]).
    pub fn with_parking(mut self, lot: Arc<ParkingLot>) -> Self {
        self.lot = Some(lot);
        self
    }

    /// Serves `req` with the component its route names, or a JSON 404.
    pub async fn handle(
        &self,
        req: http::Request<Body>,
        client: SocketAddr,
    ) -> axum::response::Response {
        match self.serve(req, client).await {
            Ok(resp) => resp,
            Err(e) => crate::error::HttpError(e).into_response_inner(),
        }
    }

    async fn serve(
        &self,
        mut req: http::Request<Body>,
        client: SocketAddr,
    ) -> Result<axum::response::Response, ApiError> {
        let path = req.uri().path().to_owned();
        let m = self
            .router
            .find(&path)
            .ok_or_else(|| ApiError::not_found(format!("no route for {path}")))?;
        set_spin_headers(&mut req, &m, client);
        // Only the host may tell a component it can park, and where (see `parked`).
        req.headers_mut().remove(vigil_rules::park::PARK_HEADER);
        req.headers_mut().remove(vigil_rules::park::SINCE_HEADER);
        let long_poll = is_long_poll(req.method(), req.uri());
        match (&self.lot, long_poll) {
            (Some(lot), true) => self.serve_parked(lot, req, m.component).await,
            // Boxed, so that parked requests' futures are not sized for a call.
            _ => Box::pin(self.invoke(req, m.component, long_poll)).await,
        }
    }

    /// One call of the component `component`, in a pool slot, under the deadline.
    async fn invoke(
        &self,
        req: http::Request<Body>,
        component: usize,
        long_poll: bool,
    ) -> Result<axum::response::Response, ApiError> {
        let _slot = self.slot(long_poll).await?;
        let loaded = &self.components[component];
        let started = std::time::Instant::now();
        let deadline = match long_poll {
            true => self.timeout + LONGEST_WAIT,
            false => self.timeout,
        };
        let result = tokio::time::timeout(deadline, self.run(loaded, req, deadline)).await;
        let result = result.unwrap_or_else(|_| Err(anyhow::anyhow!("request timed out")));
        tracing::debug!(component = %loaded.info.id, elapsed = ?started.elapsed(), "served");
        result.map_err(|e| {
            tracing::error!(component = %loaded.info.id, error = %format!("{e:#}"), "component failed");
            ApiError::internal("the component failed to handle the request")
        })
    }

    /// A pool slot for a call: long-polls take one of theirs, others one of the rest.
    /// A long-poll that waits in its instance (no parking) is refused at once when
    /// none is free; other calls wait briefly for one.
    async fn slot(&self, long_poll: bool) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        let pool = match long_poll {
            true if self.lot.is_none() => {
                return self.long.try_acquire().map_err(|_| {
                    ApiError::unavailable("too many concurrent long-polls; retry shortly")
                })
            }
            true => &self.long,
            false => &self.short,
        };
        match tokio::time::timeout(QUEUE_WAIT, pool.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::unavailable("the server is busy; retry shortly")),
        }
    }

    async fn run(
        &self,
        loaded: &Loaded,
        req: http::Request<Body>,
        deadline: Duration,
    ) -> anyhow::Result<axum::response::Response> {
        let opened = Arc::new(Opened::default());
        let state = ComponentState {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(MAX_MEMORY_BYTES)
                .table_elements(MAX_RESOURCES)
                .build(),
            kv: self.kv.clone(),
            component: loaded.info.clone(),
            opened: opened.clone(),
        };
        let mut store = Store::new(loaded.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(crate::engine::ticks(deadline));
        store.epoch_deadline_trap();
        let req = req.map(|body| body.map_err(|e| ErrorCode::InternalError(Some(e.to_string()))));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = loaded.pre.clone();
        // The guest may keep writing the body after it has sent the headers, so it runs
        // on its own task.
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(resp)) => {
                // What the answer acknowledges is durable before it leaves.
                opened
                    .sync()
                    .await
                    .context("syncing the request's writes")?;
                Ok(resp.map(Body::new))
            }
            Ok(Err(e)) => Err(anyhow::anyhow!("component returned an error: {e:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(anyhow::anyhow!("component sent no response")),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// Paths whose GET waits when no `timeout` is given: seed 000's job wait (60 s) and the
/// event feed (30 s, as long as the short deadline: it must not race it).
const WAITS_BY_DEFAULT: [&str; 2] = ["/wait", "/api/v1/events"];

/// Whether a request is a long-poll: a GET with a non-zero `timeout` query parameter,
/// or one of [`WAITS_BY_DEFAULT`] without one. (The host also serves these off its HTTP
/// server while they wait.)
pub fn is_long_poll(method: &http::Method, uri: &http::Uri) -> bool {
    let query = uri.query().unwrap_or("");
    let timeout = query.split('&').find_map(|p| p.strip_prefix("timeout="));
    let path = uri.path();
    method == http::Method::GET
        && match timeout {
            Some(t) => t != "0",
            None => WAITS_BY_DEFAULT.iter().any(|w| path.ends_with(w)),
        }
}

/// The headers Spin adds to every request it hands a component.
fn set_spin_headers(
    req: &mut http::Request<Body>,
    m: &crate::routes::Match<'_>,
    client: SocketAddr,
) {
    // wasi:http needs an authority; HTTP/1.0 clients may send no Host.
    if !req.headers().contains_key(http::header::HOST) && req.uri().authority().is_none() {
        let localhost = http::HeaderValue::from_static("localhost");
        req.headers_mut().insert(http::header::HOST, localhost);
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let full_url = format!("http://{host}{}", req.uri());
    let mut pairs = vec![
        ("spin-full-url".to_owned(), full_url),
        ("spin-path-info".to_owned(), m.path_info.clone()),
        ("spin-matched-route".to_owned(), m.pattern.to_owned()),
        ("spin-base-path".to_owned(), "/".to_owned()),
        ("spin-raw-component-route".to_owned(), m.pattern.to_owned()),
        ("spin-component-route".to_owned(), m.base.clone()),
        ("spin-client-addr".to_owned(), client.to_string()),
    ];
    for (name, value) in &m.params {
        pairs.push((format!("spin-path-match-{name}"), value.clone()));
    }
    let headers = req.headers_mut();
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::try_from(name),
            http::HeaderValue::try_from(value),
        ) {
            headers.insert(n, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_polls_are_told_from_short_requests() {
        let get = |uri: &str| is_long_poll(&http::Method::GET, &uri.parse().unwrap());
        assert!(get("/api/v1/events?since=3&timeout=35"));
        assert!(get("/api/v1/events?since=3"));
        assert!(get("/api/admin/celery/jobs/j/wait"));
        assert!(!get("/api/v1/events?timeout=0"));
        assert!(!get("/api/v1/tasks"));
        let post = "/api/v1/events".parse().unwrap();
        assert!(!is_long_poll(&http::Method::POST, &post));
    }
}
