//! The command line: `vigil serve`, `vigil token`, `vigil demo`. Every default comes
//! from [`crate::config::defaults`] or the push crate's constants, so the command
//! line, [`ServeConfig`] and (checked by a test) the README agree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::config::{defaults, ServeConfig};

/// `vigil`.
#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Real-time monitoring for task queues and batch jobs"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve the REST API (Spin components), SSE and WebSocket push.
    Serve(Box<ServeArgs>),
    /// Print a signed token.
    Token(TokenArgs),
    /// Simulate workers, queues, tasks and a batch job against a running server.
    Demo(DemoArgs),
}

/// `vigil serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VIGIL_LISTEN", default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// Directory for the embedded store and the generated JWT secret.
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// Spin manifest to serve.
    #[arg(long, env = "VIGIL_MANIFEST", default_value = defaults::MANIFEST)]
    pub manifest: PathBuf,
    /// Spin-format runtime config choosing the key-value backend (e.g. Redis).
    #[arg(long, env = "VIGIL_RUNTIME_CONFIG")]
    pub runtime_config: Option<PathBuf>,
    /// The dispatch component, relative to the manifest's folder.
    #[arg(long, env = "VIGIL_DISPATCH", default_value = defaults::DISPATCH)]
    pub dispatch: PathBuf,
    /// HS256 secret; by default one is generated into the data directory.
    #[arg(long, env = "VIGIL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Token verification beyond the HS256 secret.
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// REST requests per second per caller (token or address); 0 turns the limit off.
    #[arg(long, env = "VIGIL_REST_RATE", default_value_t = defaults::REST_RATE)]
    pub rest_rate: u32,
    /// Limits on every connection.
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// Messages per second per push connection before updates are batched.
    #[arg(long, env = "VIGIL_RATE_PER_SEC", default_value_t = vigil_push::config::RATE_PER_SEC)]
    pub rate_per_sec: u32,
    /// Events kept in the log for resume and the feed.
    #[arg(long, env = "VIGIL_HISTORY", default_value_t = defaults::HISTORY)]
    pub history: u64,
    /// Oldest event a resuming client is replayed (e.g. 30m, 24h); older gaps get `reset`.
    #[arg(long, env = "VIGIL_HISTORY_MAX_AGE", default_value_t = Ttl(vigil_push::config::HISTORY_MAX_AGE))]
    pub history_max_age: Ttl,
    /// How often SSE clients get a `dashboard_update` when something changed (e.g. 10s).
    #[arg(long, env = "VIGIL_DASHBOARD_INTERVAL", default_value_t = Ttl(vigil_push::config::DASHBOARD_INTERVAL))]
    pub dashboard_interval: Ttl,
}

/// Token verification beyond the HS256 secret, e.g. an identity provider's keys.
#[derive(clap::Args)]
pub struct JwtArgs {
    /// The one algorithm tokens must be signed with: HS256 (default), RS256, ES256, ….
    #[arg(long, env = "VIGIL_JWT_ALGORITHM")]
    pub jwt_algorithm: Option<String>,
    /// File with the identity provider's public key (PEM) or JWKS document, for RS*/ES*.
    #[arg(long, env = "VIGIL_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "VIGIL_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Accepted `aud` values, comma-separated.
    #[arg(long, env = "VIGIL_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
}

/// Limits on every connection.
#[derive(clap::Args)]
pub struct ConnectionArgs {
    /// Longest a client may take to send request headers; also bounds an idle
    /// keep-alive connection (e.g. 10s).
    #[arg(long, env = "VIGIL_HEADER_READ_TIMEOUT", default_value_t = Ttl(defaults::HEADER_READ_TIMEOUT))]
    pub header_read_timeout: Ttl,
    /// Longest a write may make no progress before the connection is closed (e.g. 30s).
    #[arg(long, env = "VIGIL_WRITE_TIMEOUT", default_value_t = Ttl(defaults::WRITE_TIMEOUT))]
    pub write_timeout: Ttl,
    /// Most connections served at once; by default 10000, or less under `ulimit -n`.
    #[arg(long, env = "VIGIL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

impl ServeArgs {
    /// The configuration these arguments describe.
    pub fn into_config(self) -> anyhow::Result<ServeConfig> {
        let mut config = ServeConfig::new(self.manifest, self.data_dir);
        config.listen = self.listen;
        config.runtime_config = self.runtime_config;
        config.dispatch = self.dispatch;
        config.jwt_secret = self.jwt_secret;
        config.jwt = crate::config::JwtConfig {
            algorithm: self.jwt.jwt_algorithm,
            public_key: self.jwt.jwt_public_key,
            issuer: self.jwt.jwt_issuer,
            audience: self.jwt.jwt_audience,
        };
        config.push.rate_per_sec = self.rate_per_sec;
        config.history = self.history.max(1);
        config.push.history_max_age = self.history_max_age.0;
        config.push.dashboard_interval = self.dashboard_interval.0;
        config.rest_rate_per_sec = self.rest_rate;
        config.rest_burst = self.rest_rate.saturating_mul(2);
        let c = &self.connections;
        config.connections.header_read_timeout = c.header_read_timeout.0;
        config.connections.write_timeout = c.write_timeout.0;
        if let Some(n) = c.max_connections {
            anyhow::ensure!(n > 0, "--max-connections must be positive");
            config.connections.max_connections = n;
        }
        Ok(config)
    }
}

/// `vigil token`.
#[derive(clap::Args)]
pub struct TokenArgs {
    /// User id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// admin, viewer or producer.
    #[arg(long)]
    pub role: String,
    /// Lifetime, e.g. 90s, 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    pub ttl: Ttl,
    /// Data directory holding the generated secret (same as `serve`).
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// HS256 secret, if the server was given one.
    #[arg(long, env = "VIGIL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// `vigil demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Base URL of the running server.
    #[arg(long, env = "VIGIL_DEMO_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// New tasks per second, on average.
    #[arg(long, default_value_t = 3.0)]
    pub rate: f64,
    /// Stop after this long (e.g. 30s, 5m); runs until interrupted by default.
    #[arg(long)]
    pub duration: Option<Ttl>,
    /// Data directory holding the generated secret (same as `serve`).
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// HS256 secret, if the server was given one.
    #[arg(long, env = "VIGIL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// A positive duration on the command line: `90s`, `30m`, `1h`, `7d`, or plain seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(pub Duration);

impl std::str::FromStr for Ttl {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
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
            bail!("the duration must be positive");
        }
        Ok(Self(Duration::from_secs(secs)))
    }
}

impl std::fmt::Display for Ttl {
    /// The largest whole unit up to hours: `24h`, `30m`, `90s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.as_secs();
        match [(3600, "h"), (60, "m")]
            .into_iter()
            .find(|(unit, _)| s > 0 && s % unit == 0)
        {
            Some((unit, name)) => write!(f, "{}{name}", s / unit),
            None => write!(f, "{s}s"),
        }
    }
}

#[cfg(test)]
mod tests;
