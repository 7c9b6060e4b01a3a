//! `mediavault serve`: serves the API until SIGTERM or ctrl-c; SIGHUP reloads policies and keyring
//! terms through [`crate::app::reload`].

use std::sync::Arc;

use anyhow::Context;

use crate::Clock;
use crate::config::Config;

pub async fn run(config: Arc<Config>) -> anyhow::Result<()> {
    let running = match crate::start_any(Arc::clone(&config), Clock::system())
        .await
        .context("cannot start")?
    {
        crate::Started::Open(running) => running,
        crate::Started::Sealed(sealed) => return run_sealed(sealed).await,
    };
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

/// Sealed mode: serves sealed until the custodians unseal it; SIGHUP reloads once unsealed.
async fn run_sealed(running: crate::SealedRunning) -> anyhow::Result<()> {
    tracing::info!(addr = %running.addr, tls = running.tls, "mediavault serving, sealed");
    println!(
        "mediavault serving on {} (sealed: the key custodians run `mediavault unseal`)",
        running.base_url()
    );
    let unsealer = Arc::clone(&running.unsealer);
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match unsealer.vault() {
                Some(vault) => {
                    crate::app::reload(vault).await;
                }
                None => tracing::warn!("SIGHUP while sealed: nothing to reload"),
            }
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
