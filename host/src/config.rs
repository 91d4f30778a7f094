//! Configuration of `vigil serve`, the JWT secret and the rest of token verification.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// Where the secret is kept when none is configured, inside the data directory.
const SECRET_FILE: &str = "jwt_secret";

/// The defaults of `vigil serve`, in one place: [`ServeConfig::new`] and the command
/// line (`crate::cli`) both use them, and a test checks the README's table against
/// the command line.
pub mod defaults {
    /// Loopback only until told otherwise.
    pub const LISTEN: &str = "127.0.0.1:3000";
    /// The embedded store and the generated secret, next to where Vigil runs.
    pub const DATA_DIR: &str = ".vigil";
    /// The repository's manifest, as `spin up` reads it.
    pub const MANIFEST: &str = "spin.toml";
    /// Where `scripts/build-wasm` puts the dispatch component.
    pub const DISPATCH: &str = "target/wasm32-wasip2/release/vigil_dispatch.wasm";
    /// REST requests per second per caller: far above a dashboard's or a worker's
    /// needs, low enough that one runaway client cannot take the host.
    pub const REST_RATE: u32 = 100;
    /// Events kept in the log for resume and the feed.
    pub const HISTORY: u64 = 10_000;
    /// Longest a client may take to send a request's headers (also the idle keep-alive
    /// limit): long enough for a slow mobile link, short enough that slowloris
    /// connections go before they pile up.
    pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    /// Longest a write may make no progress: a push client that stopped reading loses
    /// its socket after this, well past any healthy reader's pause.
    pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
}

/// Everything `vigil serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Directory for the embedded store and the generated secret.
    pub data_dir: PathBuf,
    /// The Spin manifest whose HTTP routes are served.
    pub manifest: PathBuf,
    /// Spin-format runtime config choosing the key-value backend; `None` = embedded default.
    pub runtime_config: Option<PathBuf>,
    /// The dispatch component; relative paths are relative to the manifest's folder.
    pub dispatch: PathBuf,
    /// HS256 secret; `None` = read or create `<data-dir>/jwt_secret`.
    pub jwt_secret: Option<String>,
    /// How tokens are verified besides the secret (algorithm, public key, iss, aud).
    pub jwt: JwtConfig,
    /// Longest a component may run for one request before it is stopped.
    pub request_timeout: Duration,
    /// How often the relay looks for events published by components it did not run
    /// (e.g. components under `spin up` sharing the store), on a store that cannot
    /// notify of writes (SQLite).
    pub outbox_poll: Duration,
    /// On a store that notifies of writes (Redis), how often the relay still sweeps the
    /// outbox for entries whose notification was lost: a full `SCAN`, so seldom.
    pub outbox_sweep: Duration,
    /// Events kept in the log for resume and the feed; a client further behind gets `reset`.
    pub history: u64,
    /// How often the host asks the component to mark silent workers offline and to
    /// expire finished tasks the retention policy no longer keeps.
    pub sweep_interval: Duration,
    /// REST requests per second per caller (bearer token, or address); 0 = unlimited.
    pub rest_rate_per_sec: u32,
    /// Burst of REST requests a caller may make at once.
    pub rest_burst: u32,
    /// Push tuning.
    pub push: vigil_push::config::PushConfig,
    /// Timeouts and the cap on connections.
    pub connections: crate::connections::ConnectionLimits,
}

impl ServeConfig {
    /// Defaults for serving `manifest` with data in `data_dir`.
    pub fn new(manifest: PathBuf, data_dir: PathBuf) -> Self {
        Self {
            listen: defaults::LISTEN
                .parse()
                .expect("the default address parses"),
            data_dir,
            manifest,
            runtime_config: None,
            dispatch: PathBuf::from(defaults::DISPATCH),
            jwt_secret: None,
            jwt: JwtConfig::default(),
            request_timeout: Duration::from_secs(30),
            outbox_poll: Duration::from_millis(200),
            outbox_sweep: Duration::from_secs(30),
            history: defaults::HISTORY,
            sweep_interval: Duration::from_secs(5),
            rest_rate_per_sec: defaults::REST_RATE,
            rest_burst: defaults::REST_RATE * 2,
            push: Default::default(),
            connections: Default::default(),
        }
    }

    /// The folder relative paths in the manifest are resolved against.
    pub fn app_dir(&self) -> PathBuf {
        self.manifest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// Token verification settings beyond the HS256 secret. They reach the components as
/// the `jwt_*` Spin variables, and the host verifies push connections with the same.
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    /// The one algorithm tokens must use; `None` = the manifest's default (HS256).
    pub algorithm: Option<String>,
    /// File holding the identity provider's public key (PEM) or JWKS document.
    pub public_key: Option<PathBuf>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values, comma-separated.
    pub audience: Option<String>,
}

impl JwtConfig {
    /// The Spin variables these settings provide (the key file read).
    pub fn variables(&self) -> anyhow::Result<HashMap<String, String>> {
        use vigil_core::auth::KeyConfig;
        let mut vars = HashMap::new();
        let mut set = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                vars.insert(name.to_owned(), v);
            }
        };
        set(KeyConfig::ALGORITHM, self.algorithm.clone());
        set(KeyConfig::ISSUER, self.issuer.clone());
        set(KeyConfig::AUDIENCE, self.audience.clone());
        if let Some(path) = &self.public_key {
            let key = std::fs::read_to_string(path)
                .with_context(|| format!("reading the JWT public key {}", path.display()))?;
            set(KeyConfig::PUBLIC_KEY, Some(key));
        }
        Ok(vars)
    }
}

/// `bytes` random bytes as hex.
pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The configured secret, or the one kept in the data directory (created on first use).
pub fn jwt_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(s) = configured.filter(|s| !s.is_empty()) {
        return Ok(s.to_owned());
    }
    let path = data_dir.join(SECRET_FILE);
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().to_owned());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    /// Bytes of a generated secret: HS256's full strength (its hash size).
    const SECRET_BYTES: usize = 32;
    let secret = random_hex(SECRET_BYTES)?;
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("vigil-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = jwt_secret(None, &dir).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(jwt_secret(None, &dir).unwrap(), a);
        assert_eq!(jwt_secret(Some("given"), &dir).unwrap(), "given");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
