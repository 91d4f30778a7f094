//! The axum app: the host's own push endpoints, and every other path served by the
//! manifest's Spin components.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use vigil_kv::Stores;
use vigil_push::dispatch::DispatchComponent;
use vigil_push::hub::Hub;
use vigil_push::metrics::Metrics;
use vigil_push::PushState;
use vigil_runtime::http::HttpComponents;
use vigil_runtime::key_value::KeyValue;
use vigil_runtime::manifest::Manifest;
use vigil_runtime::park::ParkingLot;

use crate::config::ServeConfig;
use crate::rate_limit::RateLimiter;
use crate::relay::{OutboxTakeOver, Relay};
use vigil_core::auth::{KeyConfig, Verifier, HOST_TOKEN_VARIABLE};

/// The Celery domain metrics `/metrics` shows, fed by every event of the log.
pub type SharedCeleryMetrics = Arc<std::sync::Mutex<vigil_core::celery_metrics::CeleryMetrics>>;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    components: Arc<Components>,
    limiter: Option<RateLimiter>,
    push: PushState,
    /// The bearer of the host's own calls to the components (see `HOST_TOKEN_VARIABLE`).
    host_token: String,
    /// The Celery domain metrics (Flower's names), fed by the relay.
    celery: SharedCeleryMetrics,
    /// Long-polls waiting with no component instance (for `/metrics`).
    lot: Arc<ParkingLot>,
    /// Set once shutdown begins: `/ready` answers 503 from then on.
    draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// What the push connections share.
    pub fn push(&self) -> &PushState {
        &self.0.push
    }
}

/// The manifest's components, also as the push side asks them for snapshots.
struct Components(HttpComponents);

#[async_trait::async_trait]
impl vigil_push::state::Components for Components {
    async fn get_json(&self, path: &str, token: &str) -> Option<serde_json::Value> {
        let req = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .ok()?;
        let client = SocketAddr::from(([127, 0, 0, 1], 0));
        let resp = self.0.handle(req, client).await;
        if !resp.status().is_success() {
            tracing::debug!(path, status = %resp.status(), "internal request refused");
            return None;
        }
        let body = axum::body::to_bytes(resp.into_body(), INTERNAL_BODY_LIMIT)
            .await
            .ok()?;
        serde_json::from_slice(&body).ok()
    }
}

/// Largest component answer the host reads for itself (snapshots).
const INTERNAL_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The router: `/socket.io/` (Socket.IO), `/events` (SSE), `/ws` (WebSocket), the rest
/// to the components; and the Socket.IO server, to close its sessions on shutdown.
pub fn app(state: AppState) -> (Router, Arc<vigil_push::socketio::Server>) {
    let io = vigil_push::socketio::server(state.push());
    let socketio = Router::new()
        .route(
            vigil_push::socketio::PATH,
            axum::routing::any(vigil_push::socketio::endpoint),
        )
        .with_state(io.clone());
    let push = Router::new()
        .route("/events", get(vigil_push::sse::events))
        .route("/ws", get(vigil_push::ws::upgrade))
        .with_state(state.push().clone());
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .fallback(spin)
        .with_state(state)
        .merge(push)
        .merge(socketio)
        .layer(axum::middleware::from_fn(crate::refusals::json_refusals));
    (router, io)
}

async fn spin(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    if let Some(limiter) = &app.0.limiter {
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        let key = RateLimiter::key(auth, client.ip());
        if let Err(wait) = limiter.check(key, std::time::Instant::now()) {
            return too_many(wait);
        }
    }
    app.0.components.0.handle(req, client).await
}

/// `GET /metrics`: Prometheus text exposition — the transports, then the Celery domain.
async fn metrics(State(app): State<AppState>) -> Response {
    let mut text = app.push().metrics().render();
    render_lot(&app.0.lot, &mut text);
    if let Ok(celery) = app.0.celery.lock() {
        celery.render(&mut text);
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The parking lot's gauge and counter, in the exposition format.
fn render_lot(lot: &ParkingLot, out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP vigil_long_polls_parked Long-polls waiting with no component instance.\n# TYPE vigil_long_polls_parked gauge\nvigil_long_polls_parked {}",
        lot.parked()
    );
    let _ = writeln!(
        out,
        "# HELP vigil_long_poll_calls_total Component calls for long-polls that may park (one per woken group, not per long-poll).\n# TYPE vigil_long_poll_calls_total counter\nvigil_long_poll_calls_total {}",
        lot.calls()
    );
}

/// `GET /ready`: 200 while the store answers, the hub runs and shutdown has not begun;
/// 503 with the JSON error body otherwise, so a load balancer stops sending clients.
async fn ready(State(app): State<AppState>) -> Response {
    use vigil_core::error::ApiError;
    let problem = if app.0.draining.load(std::sync::atomic::Ordering::Relaxed) {
        Some("shutting down".to_owned())
    } else if app.push().hub().is_closed() {
        Some("the push hub has stopped".to_owned())
    } else if let Err(e) = app.push().log().head().await {
        Some(format!("the store does not answer: {e:#}"))
    } else {
        None
    };
    match problem {
        None => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Some(why) => {
            vigil_runtime::error::HttpError(ApiError::unavailable(why)).into_response_inner()
        }
    }
}

/// 429 with the JSON error body and `Retry-After` (whole seconds, at least 1).
fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let e = vigil_core::error::ApiError::rate_limited(secs);
    let mut resp = vigil_runtime::error::HttpError(e).into_response_inner();
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    resp
}

/// What the host asks the component to do periodically (components are stateless and
/// cannot run timers themselves): mark workers that stopped heartbeating offline, and
/// expire finished tasks the retention policy no longer keeps.
const PERIODIC: [&str; 2] = ["/api/v1/workers/sweep", "/api/v1/tasks/expire"];

/// Runs the [`PERIODIC`] calls every `every`.
async fn sweep_workers(app: AppState, every: std::time::Duration) {
    let client = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if app.push().hub().is_closed() {
            return;
        }
        let token = &app.0.host_token;
        for path in PERIODIC {
            let req = http::Request::post(path)
                .header(http::header::HOST, "localhost")
                .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(axum::body::Body::empty());
            if let Ok(req) = req {
                let resp = app.0.components.0.handle(req, client).await;
                if !resp.status().is_success() {
                    tracing::warn!(status = %resp.status(), path, "periodic call failed");
                }
            }
        }
    }
}

/// A started server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        Ok(self.task.await??)
    }

    /// Waits until the server ends (e.g. on a signal passed to [`start`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        Ok(self.task.await??)
    }
}

/// The application variables: the token settings and the host's credential provided
/// by the host, `SPIN_VARIABLE_*` overriding them, manifest defaults for the rest.
fn app_variables(
    config: &ServeConfig,
    manifest: &Manifest,
) -> anyhow::Result<HashMap<String, String>> {
    /// Bytes of the host's per-start credential.
    const HOST_TOKEN_BYTES: usize = 32;
    let secret = crate::config::jwt_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
    let mut provided = config.jwt.variables()?;
    if let Some(name) = provided
        .keys()
        .find(|n| !manifest.variables.contains_key(*n))
    {
        anyhow::bail!(
            "the manifest declares no variable `{name}`, so the components would not see it"
        );
    }
    provided.insert(KeyConfig::SECRET.to_owned(), secret);
    let host_token = crate::config::random_hex(HOST_TOKEN_BYTES)?;
    provided.insert(HOST_TOKEN_VARIABLE.to_owned(), host_token);
    vigil_runtime::variables::resolve_app(manifest, &provided)
}

/// Builds everything from `config` and starts serving; `signal` also stops it.
pub async fn start(
    config: ServeConfig,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let manifest = Manifest::load(&config.manifest)?;
    let app_dir = config.app_dir();
    let app_vars = app_variables(&config, &manifest)?;
    let verifier = Verifier::new(&KeyConfig::from_variables(|n| app_vars.get(n).cloned()))
        .context("token verification settings (jwt_*)")?;
    let host_token = app_vars
        .get(HOST_TOKEN_VARIABLE)
        .cloned()
        .unwrap_or_default();
    let store_config = vigil_kv::config::load(config.runtime_config.as_deref(), &config.data_dir)?;
    let stores = Stores::open(&store_config).await?;
    let store = stores
        .get("default")
        .context("no `default` key-value store configured")?;
    let log = vigil_log::open(&store_config["default"], store.clone(), config.history).await?;
    let takeover = Arc::new(OutboxTakeOver(log.clone()));
    let kv = Arc::new(KeyValue::new(stores).take_over(
        "default",
        vigil_core::keys::OUTBOX_PREFIX,
        takeover,
    ));

    let engine = vigil_runtime::engine::build()?;
    vigil_runtime::engine::start_epoch_ticker(&engine);
    let components = HttpComponents::load(
        &engine,
        &manifest,
        &app_dir,
        &app_vars,
        kv.clone(),
        config.request_timeout,
    )?;
    let lot = Arc::new(ParkingLot::default());
    let components = components.with_parking(lot.clone());
    let dispatch = DispatchComponent::load(&engine, &app_dir.join(&config.dispatch)).await?;
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::start(dispatch, config.push.clone(), metrics.clone());

    let celery = SharedCeleryMetrics::default();
    let observe = {
        let (celery, lot) = (celery.clone(), lot.clone());
        move |events: &[Arc<vigil_push::hub::Published>]| {
            let e = events.iter().map(|p| &p.event);
            lot.observe(e.map(|e| (e.seq, e.topic.as_str(), e.key.as_deref())));
            if let Ok(mut m) = celery.lock() {
                events.iter().for_each(|p| m.observe(&p.event));
            }
        }
    };
    tokio::spawn(vigil_push::follow::follow(
        log.clone(),
        hub.clone(),
        observe,
    ));
    let relay = Relay::new(store, log.clone());
    let until_hub_stops = {
        let hub = hub.clone();
        async move { hub.closed().await }
    };
    tokio::spawn(relay.run(config.outbox_poll, config.outbox_sweep, until_hub_stops));

    let components = Arc::new(Components(components));
    let push = PushState::new(
        hub.clone(),
        log,
        verifier,
        config.push.clone(),
        metrics,
        components.clone(),
    );
    let state = AppState(Arc::new(Inner {
        components,
        limiter: (config.rest_rate_per_sec > 0)
            .then(|| RateLimiter::new(config.rest_rate_per_sec, config.rest_burst)),
        push,
        host_token,
        celery,
        lot: lot.clone(),
        draining: Default::default(),
    }));
    tokio::spawn(sweep_workers(state.clone(), config.sweep_interval));
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let (router, io) = app(state.clone());
    let push = state.push().clone();
    let shutdown = async move {
        tokio::select! { _ = rx => {}, _ = signal => {} }
        state
            .0
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // Push streams never end by themselves: end them so the drain completes.
        hub.close_all("server shutting down; reconnect").await;
        // Parked long-polls give their timeout answer now rather than at their timeout.
        lot.close();
        io.close_all("server shutting down; reconnect");
    };
    let limits = config.connections.clone();
    let task = tokio::spawn(crate::connections::serve(
        listener, router, push, limits, shutdown,
    ));
    tracing::info!(%addr, "vigil listening");
    Ok(Running {
        addr,
        shutdown: Some(tx),
        task,
    })
}
