//! The axum app: the host's own push endpoints, and every other path served by the
//! manifest's Spin components.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{PushConfig, ServeConfig};
use crate::dispatch::DispatchComponent;
use crate::hub::Hub;
use crate::kv::Stores;
use crate::manifest::Manifest;
use crate::relay::Relay;
use crate::spin_http::HttpComponents;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    components: HttpComponents,
    hub: Hub,
    secret: String,
    push: PushConfig,
}

impl AppState {
    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }

    /// The HS256 secret.
    pub fn secret(&self) -> &[u8] {
        self.0.secret.as_bytes()
    }

    /// Push limits.
    pub fn push(&self) -> &PushConfig {
        &self.0.push
    }
}

/// The router: `/socket.io/` (Socket.IO, answered by its layer before any route),
/// `/events` (SSE), `/ws` (WebSocket), the rest to the components; and the Socket.IO
/// handle, to close its sockets on shutdown.
pub fn app(state: AppState) -> (Router, SocketIo) {
    let (socketio, io) = crate::push::socketio::layer(&state);
    let router = Router::new()
        .route("/events", get(crate::push::sse::events))
        .route("/ws", get(crate::push::ws::upgrade))
        .fallback(spin)
        .with_state(state)
        .layer(socketio);
    (router, io)
}

async fn spin(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    app.0.components.handle(req, client).await
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

/// Builds everything from `config` and starts serving; `signal` also stops it.
pub async fn start(
    config: ServeConfig,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let manifest = Manifest::load(&config.manifest)?;
    let app_dir = config.app_dir();
    let secret = crate::config::jwt_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
    let provided = HashMap::from([("jwt_secret".to_owned(), secret.clone())]);
    let app_vars = crate::variables::resolve_app(&manifest, &provided)?;
    let store_config =
        crate::runtime_config::load(config.runtime_config.as_deref(), &config.data_dir)?;
    let stores = Arc::new(Stores::open(&store_config)?);

    let engine = crate::engine::build()?;
    crate::engine::start_epoch_ticker(&engine);
    let components = HttpComponents::load(
        &engine,
        &manifest,
        &app_dir,
        &app_vars,
        stores.clone(),
        config.request_timeout,
    )?;
    let dispatch = DispatchComponent::load(&engine, &app_dir.join(&config.dispatch)).await?;
    let hub = Hub::start(dispatch, config.push.clone());

    let kv = stores
        .get("default")
        .context("no `default` key-value store configured")?;
    let relay = Relay::new(kv, hub.clone()).await?;
    tokio::spawn(relay.run(stores.published.clone(), config.outbox_poll));

    let state = AppState(Arc::new(Inner {
        components,
        hub: hub.clone(),
        secret,
        push: config.push.clone(),
    }));
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let (router, io) = app(state);
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                tokio::select! { _ = rx => {}, _ = signal => {} }
                // Push streams never end by themselves: end them so the drain completes.
                hub.close_all("server shutting down; reconnect").await;
                io.close().await;
            })
            .await
    });
    tracing::info!(%addr, "vigil listening");
    Ok(Running {
        addr,
        shutdown: Some(tx),
        task,
    })
}
