//! Builds and runs the server and its background loops: [`start`] opens the store and serves,
//! [`start_with`] serves an already opened vault, and [`Running`] is the handle to the result. A
//! reload ([`reload`], what SIGHUP triggers in `mediavault serve`) lives here too, so tests can run
//! it in-process instead of signalling a child process.

use std::net::SocketAddr;
use std::sync::Arc;

use axum_server::Handle;

use crate::config::Config;
use crate::vault::Vault;
use crate::{Clock, http};

/// A running vault: its address, its shared state, and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub tls: bool,
    pub vault: Arc<Vault>,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<Result<(), http::serve::ServeError>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = match self.addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_loopback() => "localhost".to_owned(),
            ip => ip.to_string(),
        };
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    /// Stops accepting, lets in-flight requests finish, and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.handle.graceful_shutdown(Some(http::serve::GRACE));
        self.wait().await
    }

    /// Waits until the server stops (it does not, unless told), then stops the background tasks
    /// and closes the store, whatever the server's result.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.task.await;
        for t in &self.background {
            t.abort();
        }
        self.vault.close().await;
        served??;
        Ok(())
    }

    pub fn handle(&self) -> Handle<SocketAddr> {
        self.handle.clone()
    }

    /// Does what SIGHUP does to `mediavault serve`: see [`reload`].
    pub async fn reload(&self) -> Reloaded {
        reload(&self.vault).await
    }
}

/// What a reload did. A part that failed left the previous state in force.
#[derive(Debug)]
pub struct Reloaded {
    /// How many account policies are now in force, or why the new set was refused.
    pub policies: Result<usize, crate::error::Error>,
    /// Whether keyring terms added by another process (`mediavault keys rotate`) were picked up.
    pub keyring: anyhow::Result<()>,
}

/// Reloads the policy directory and picks up new keyring terms, logging each result. The SIGHUP
/// handler of `mediavault serve` and [`Running::reload`] both call this, so a test of one is a
/// test of the other.
pub async fn reload(vault: &Vault) -> Reloaded {
    // Audited as the system, success or not (see `Vault::reload_policies`).
    let policies = vault.reload_policies(&crate::actor::Actor::system()).await;
    match &policies {
        Ok(n) => tracing::info!(policies = n, "policies reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "policy reload failed; the previous policies stay in force")
        }
    }
    if let Err(e) = vault.reload_playbooks(&crate::actor::Actor::system()).await {
        tracing::error!(error = %e, "playbook reload not recorded");
    }
    let keyring = match vault.refresh_keyring().await {
        Ok(n) => {
            tracing::info!(new_terms = n, "keyring refreshed");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "keyring refresh failed");
            Err(anyhow::Error::new(e).context("keyring refresh failed"))
        }
    };
    Reloaded { policies, keyring }
}

/// Opens the store, binds the listen address and starts serving in the background.
pub async fn start(config: Arc<Config>, clock: Clock) -> anyhow::Result<Running> {
    let vault = Arc::new(Vault::open(Arc::clone(&config), clock).await?);
    start_with(vault).await
}

/// Serves an already opened vault.
pub async fn start_with(vault: Arc<Vault>) -> anyhow::Result<Running> {
    let bound = http::serve::bind(&vault.config).await?;
    let addr = bound.addr;
    let tls = bound.is_tls();
    let app = http::router(http::AppState::new(Arc::clone(&vault))?);
    let handle = Handle::new();
    // In a cluster, a standby until the lease says otherwise, before the first request.
    vault.cluster().join();
    let task = tokio::spawn(bound.serve(app, handle.clone()));
    let background = crate::vault::background::spawn(&vault);
    Ok(Running {
        addr,
        tls,
        vault,
        handle,
        task,
        background,
    })
}
