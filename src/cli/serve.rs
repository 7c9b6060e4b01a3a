//! `mediavault serve`: serves the API until SIGTERM or ctrl-c; SIGHUP reloads policies and keyring
//! terms through [`crate::app::reload`].

use std::sync::Arc;

use anyhow::Context;

use crate::Clock;
use crate::config::Config;

pub async fn run(config: Arc<Config>) -> anyhow::Result<()> {
    let running = crate::start(Arc::clone(&config), Clock::system())
        .await
        .context("cannot start")?;
    tracing::info!(addr = %running.addr, tls = running.tls, "mediavault serving");
    println!("mediavault serving on {}", running.base_url());
    let vault = Arc::clone(&running.vault);
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        // The same reload tests run in-process through `Running::reload`; it logs each result.
        while hup.recv().await.is_some() {
            crate::app::reload(&vault).await;
        }
    });
    let handle = running.handle();
    tokio::spawn(async move {
        crate::http::serve::shutdown_signal().await;
        tracing::info!("shutting down");
        handle.graceful_shutdown(Some(crate::http::serve::GRACE));
    });
    running.wait().await
}
