//! `vigil demo`: a living deployment for newcomers. Simulated workers, queues, tasks
//! (with retries and failures) and a batch job ([`sim`]) report through the real ingest
//! API over HTTP, with a producer token signed by the server's own secret, exactly as
//! a Celery bridge would.

mod sim;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use vigil_core::auth::{self, Claims, Role};

pub use sim::Sim;

/// Time between simulation steps: fine enough for smooth progress bars.
const STEP: Duration = Duration::from_millis(250);
/// How long to wait for the server to come up (`./scripts/up --demo` starts both).
const STARTUP_WAIT: Duration = Duration::from_secs(60);
/// Lifetime of the producer token; a fresh one is signed well before it expires.
const TOKEN_TTL_SECS: u64 = 3600;
/// How often a one-line summary is printed.
const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// What `vigil demo` was asked to do.
pub struct DemoConfig {
    /// Base URL of a running Vigil, e.g. `http://127.0.0.1:3000`.
    pub url: String,
    /// The HS256 secret the server signs with.
    pub secret: String,
    /// New tasks per second.
    pub rate: f64,
    /// Stop after this long; `None` runs until interrupted.
    pub duration: Option<Duration>,
}

/// Runs the simulation against the server until `duration` passes (or forever).
pub async fn run(config: DemoConfig) -> anyhow::Result<()> {
    let client = Producer::new(&config)?;
    client.wait_until_up().await?;
    let seed = now_secs().to_bits();
    let mut sim = Sim::new(seed, config.rate);
    client.send(&sim.start(now_secs())).await?;
    println!("vigil demo: reporting to {} (Ctrl-C stops it)", config.url);
    let started = Instant::now();
    let (mut sent, mut refused) = (0u64, 0u64);
    let mut last_summary = Instant::now();
    let mut tick = tokio::time::interval(STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = now_secs();
    loop {
        tick.tick().await;
        if config.duration.is_some_and(|d| started.elapsed() >= d) {
            return Ok(());
        }
        let now = now_secs();
        let step = sim.step(now, now - last);
        last = now;
        for (id, event) in step.submissions {
            match client.submit(&event).await {
                Ok(true) => sent += 1,
                Ok(false) => {
                    refused += 1;
                    sim.refused(&id);
                }
                Err(e) => {
                    sim.refused(&id);
                    tracing::warn!("demo: {e:#}");
                }
            }
        }
        match client.send(&step.updates).await {
            Ok(()) => sent += step.updates.len() as u64,
            Err(e) => {
                // Most likely the server went away: wait for it (or give up) rather
                // than fail four times a second.
                tracing::warn!("demo: {e:#}; waiting for the server");
                client.wait_until_up().await?;
            }
        }
        if last_summary.elapsed() >= SUMMARY_EVERY {
            last_summary = Instant::now();
            println!(
                "vigil demo: {sent} events sent, {refused} submissions refused by an open breaker"
            );
        }
    }
}

/// The demo's HTTP side: a producer posting to `/api/v1/events`.
struct Producer {
    http: reqwest::Client,
    events_url: String,
    health_url: String,
    breaker_url: String,
    secret: String,
}

impl Producer {
    fn new(config: &DemoConfig) -> anyhow::Result<Self> {
        let base = config.url.trim_end_matches('/');
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--url must start with http:// or https://, not `{base}`");
        }
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .context("building the HTTP client")?,
            events_url: format!("{base}/api/v1/events"),
            health_url: format!("{base}/health"),
            breaker_url: format!("{base}/api/v1/queue/circuit-breaker-status"),
            secret: config.secret.clone(),
        })
    }

    /// A producer token, signed now (cheap: an HMAC), so a long demo never expires.
    fn token(&self) -> String {
        let now = now_secs() as u64;
        let claims = Claims::new("vigil-demo", Role::Producer, now, TOKEN_TTL_SECS);
        auth::sign(&claims, self.secret.as_bytes())
    }

    async fn wait_until_up(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_WAIT;
        loop {
            match self.http.get(&self.health_url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                _ if Instant::now() >= deadline => {
                    bail!(
                        "no Vigil answering at {} after {STARTUP_WAIT:?}",
                        self.health_url
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn post(&self, body: &Value) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .post(&self.events_url)
            .bearer_auth(self.token())
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {}", self.events_url))?;
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Sends a batch of events; an empty batch is not sent.
    async fn send(&self, events: &[Value]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let (status, body) = self.post(&Value::from(events.to_vec())).await?;
        if status != 202 {
            bail!("ingest answered {status}: {body}");
        }
        Ok(())
    }

    /// Submits one new task as an application with the bridge's publish guard does:
    /// `Ok(false)`, and nothing sent, while its queue's breaker is open. (Vigil records
    /// events of tasks that exist whatever the breaker; the guard is what stops new ones.)
    async fn submit(&self, event: &Value) -> anyhow::Result<bool> {
        let queue = event["routing_key"].as_str().unwrap_or("celery");
        if self.breaker_open(queue).await? {
            return Ok(false);
        }
        match self.post(event).await? {
            (202, _) => Ok(true),
            (status, body) => bail!("ingest answered {status}: {body}"),
        }
    }

    async fn breaker_open(&self, queue: &str) -> anyhow::Result<bool> {
        let url = reqwest::Url::parse_with_params(&self.breaker_url, [("queue", queue)])?;
        let resp = self
            .http
            .get(url)
            .bearer_auth(self.token())
            .send()
            .await
            .with_context(|| format!("GET {}", self.breaker_url))?;
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok(body["data"]["state"] == "open")
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
