//! `vigil`: serve the platform, mint a token, or run the demo producer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use vigil::config::{self, ServeConfig};
use vigil_core::auth::{self, Claims, Role};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Real-time monitoring for task queues and batch jobs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (Spin components), SSE and WebSocket push.
    Serve(Box<ServeArgs>),
    /// Print a signed token.
    Token(TokenArgs),
    /// Simulate workers, queues, tasks and a batch job against a running server.
    Demo(DemoArgs),
}

/// Token verification beyond the HS256 secret, e.g. an identity provider's keys.
#[derive(clap::Args)]
struct JwtArgs {
    /// The one algorithm tokens must be signed with: HS256 (default), RS256, ES256, ….
    #[arg(long, env = "VIGIL_JWT_ALGORITHM")]
    jwt_algorithm: Option<String>,
    /// File with the identity provider's public key (PEM) or JWKS document, for RS*/ES*.
    #[arg(long, env = "VIGIL_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "VIGIL_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Accepted `aud` values, comma-separated.
    #[arg(long, env = "VIGIL_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
}

/// Limits on every connection.
#[derive(clap::Args)]
struct ConnectionArgs {
    /// Longest a client may take to send request headers; also bounds an idle
    /// keep-alive connection (e.g. 10s).
    #[arg(long, env = "VIGIL_HEADER_READ_TIMEOUT", default_value = "10s")]
    header_read_timeout: String,
    /// Longest a write may make no progress before the connection is closed (e.g. 30s).
    #[arg(long, env = "VIGIL_WRITE_TIMEOUT", default_value = "30s")]
    write_timeout: String,
    /// Most connections served at once; by default 10000, or less under `ulimit -n`.
    #[arg(long, env = "VIGIL_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VIGIL_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Directory for the embedded store and the generated JWT secret.
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = ".vigil")]
    data_dir: PathBuf,
    /// Spin manifest to serve.
    #[arg(long, env = "VIGIL_MANIFEST", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Spin-format runtime config choosing the key-value backend.
    #[arg(long, env = "VIGIL_RUNTIME_CONFIG")]
    runtime_config: Option<PathBuf>,
    /// The dispatch component, relative to the manifest's folder.
    #[arg(
        long,
        env = "VIGIL_DISPATCH",
        default_value = "target/wasm32-wasip2/release/vigil_dispatch.wasm"
    )]
    dispatch: PathBuf,
    /// HS256 secret; by default one is generated into the data directory.
    #[arg(long, env = "VIGIL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    #[command(flatten)]
    jwt: JwtArgs,
    /// REST requests per second per caller (token or address); 0 turns the limit off.
    #[arg(long, env = "VIGIL_REST_RATE", default_value_t = 100)]
    rest_rate: u32,
    #[command(flatten)]
    connections: ConnectionArgs,
    /// Messages per second per push connection before updates are batched.
    #[arg(long, env = "VIGIL_RATE_PER_SEC", default_value_t = 10)]
    rate_per_sec: u32,
    /// Events kept in the log for resume and the feed.
    #[arg(long, env = "VIGIL_HISTORY", default_value_t = vigil::relay::HISTORY)]
    history: u64,
    /// Oldest event a resuming client is replayed (e.g. 30m, 24h); older gaps get `reset`.
    #[arg(long, env = "VIGIL_HISTORY_MAX_AGE", default_value = "24h")]
    history_max_age: String,
    /// How often SSE clients get a `dashboard_update` when something changed (e.g. 10s).
    #[arg(long, env = "VIGIL_DASHBOARD_INTERVAL", default_value = "10s")]
    dashboard_interval: String,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// User id (`sub`).
    #[arg(long)]
    sub: String,
    /// admin, viewer or producer.
    #[arg(long)]
    role: String,
    /// Lifetime, e.g. 90s, 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Data directory holding the generated secret (same as `serve`).
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = ".vigil")]
    data_dir: PathBuf,
    /// HS256 secret, if the server was given one.
    #[arg(long, env = "VIGIL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Base URL of the running server.
    #[arg(long, env = "VIGIL_DEMO_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// New tasks per second, on average.
    #[arg(long, default_value_t = 3.0)]
    rate: f64,
    /// Stop after this long (e.g. 30s, 5m); runs until interrupted by default.
    #[arg(long)]
    duration: Option<String>,
    /// Data directory holding the generated secret (same as `serve`).
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = ".vigil")]
    data_dir: PathBuf,
    /// HS256 secret, if the server was given one.
    #[arg(long, env = "VIGIL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::Token(args) => token(args),
        Command::Demo(args) => demo(args).await,
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate <= 200.0) {
        bail!("--rate must be between 0 and 200 tasks per second");
    }
    let duration = match &args.duration {
        Some(d) => Some(parse_ttl(d).with_context(|| format!("--duration `{d}`"))?),
        None => None,
    };
    let secret = config::jwt_secret(args.jwt_secret.as_deref(), &args.data_dir)?;
    let config = vigil::demo::DemoConfig {
        url: args.url,
        secret,
        rate: args.rate,
        duration,
    };
    tokio::select! {
        r = vigil::demo::run(config) => r,
        _ = shutdown_signal() => Ok(()),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = ServeConfig::new(args.manifest, args.data_dir);
    config.listen = args.listen;
    config.runtime_config = args.runtime_config;
    config.dispatch = args.dispatch;
    config.jwt_secret = args.jwt_secret;
    config.jwt = config::JwtConfig {
        algorithm: args.jwt.jwt_algorithm,
        public_key: args.jwt.jwt_public_key,
        issuer: args.jwt.jwt_issuer,
        audience: args.jwt.jwt_audience,
    };
    config.push.rate_per_sec = args.rate_per_sec;
    config.history = args.history.max(1);
    config.push.history_max_age = parse_ttl(&args.history_max_age)
        .with_context(|| format!("--history-max-age `{}`", args.history_max_age))?;
    config.push.dashboard_interval = parse_ttl(&args.dashboard_interval)
        .with_context(|| format!("--dashboard-interval `{}`", args.dashboard_interval))?;
    config.rest_rate_per_sec = args.rest_rate;
    config.rest_burst = args.rest_rate.saturating_mul(2);
    let c = &args.connections;
    config.connections.header_read_timeout = parse_ttl(&c.header_read_timeout)
        .with_context(|| format!("--header-read-timeout `{}`", c.header_read_timeout))?;
    config.connections.write_timeout = parse_ttl(&c.write_timeout)
        .with_context(|| format!("--write-timeout `{}`", c.write_timeout))?;
    if let Some(n) = c.max_connections {
        anyhow::ensure!(n > 0, "--max-connections must be positive");
        config.connections.max_connections = n;
    }
    let running = vigil::server::start(config, shutdown_signal()).await?;
    println!("vigil listening on http://{}", running.addr);
    running.wait().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let Some(role) = Role::parse(&args.role) else {
        bail!(
            "--role must be admin, viewer or producer, not `{}`",
            args.role
        );
    };
    let ttl = parse_ttl(&args.ttl).with_context(|| format!("--ttl `{}`", args.ttl))?;
    let secret = config::jwt_secret(args.jwt_secret.as_deref(), &args.data_dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = Claims::new(args.sub, role, now, ttl.as_secs());
    println!("{}", auth::sign(&claims, secret.as_bytes()));
    Ok(())
}

/// `90s`, `30m`, `1h`, `7d`, or plain seconds.
fn parse_ttl(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .context("expected a number followed by s, m, h or d")?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => bail!("unknown unit `{unit}` (use s, m, h or d)"),
    };
    if secs == 0 {
        bail!("the lifetime must be positive");
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90").unwrap().as_secs(), 90);
        assert_eq!(parse_ttl("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_ttl("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_ttl("7d").unwrap().as_secs(), 604800);
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("0s").is_err());
    }
}
