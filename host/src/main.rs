//! `vigil`: serve the platform, mint a token, or run the demo producer (the command
//! line itself is `vigil::cli`).

use anyhow::bail;
use clap::Parser;
use vigil::cli::{Cli, Command, DemoArgs, ServeArgs, TokenArgs};
use vigil::config;
use vigil_core::auth::{self, Claims, Role};

/// jemalloc rather than glibc's malloc: waking 10 000 parked long-polls spent 43 % of
/// its CPU in glibc coalescing the small chunks each request frees (README,
/// Benchmarks); jemalloc keeps them in per-size runs and does not.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    let duration = args.duration.map(|d| d.0);
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
    let running = vigil::server::start(args.into_config()?, shutdown_signal()).await?;
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
    let ttl = args.ttl.0;
    let secret = config::jwt_secret(args.jwt_secret.as_deref(), &args.data_dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = Claims::new(args.sub, role, now, ttl.as_secs());
    println!("{}", auth::sign(&claims, secret.as_bytes()));
    Ok(())
}
