//! Builds and runs the server and its background loops: [`start`] opens the store and serves,
//! [`start_with`] serves an already opened vault, and [`Running`] is the handle to the result. A
//! reload ([`reload`], what SIGHUP triggers in `mediavault serve`) lives here too, so tests can run
//! it in-process instead of signalling a child process.

use std::net::SocketAddr;
use std::sync::Arc;

use axum_server::Handle;

use crate::config::Config;
use crate::vault::Vault;
use crate::vault::seal::Unsealer;
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

/// Stops the server if the audit writer stops for good (see `Vault::audit_stopped`): a vault
/// that can record nothing refuses every request, and a node that stays up that way holds its
/// cluster lease while serving nothing. Stopped, it exits with an error (`wait`), its service
/// manager starts it again (`Restart=on-failure`), and a standby takes the released lease.
fn watch_writer(vault: &Arc<Vault>, handle: &Handle<SocketAddr>) -> tokio::task::JoinHandle<()> {
    let (vault, handle) = (Arc::clone(vault), handle.clone());
    tokio::spawn(async move {
        vault.audit_stopped().await;
        tracing::error!(
            "the audit writer stopped (a change panicked inside it, or its thread could not start): nothing can be recorded, so the server stops; restart it (systemd does)"
        );
        handle.graceful_shutdown(Some(http::serve::GRACE));
    })
}

/// What `wait` returns once the server stopped: an error if its audit writer had stopped.
fn writer_down_error(vault: &Vault) -> anyhow::Result<()> {
    if !vault.audit_writing() {
        anyhow::bail!("the audit writer stopped, so the server stopped (the log above says why)");
    }
    Ok(())
}

impl Running {
    pub fn base_url(&self) -> String {
        base_url(self.addr, self.tls)
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
        let writer = writer_down_error(&self.vault);
        self.vault.close().await;
        served??;
        writer
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

/// A sealed-mode server: health, the unseal API and page answer until the custodians' quorum
/// opens the vault; then the full router and the background loops take over.
pub struct SealedRunning {
    pub addr: SocketAddr,
    pub tls: bool,
    pub unsealer: Arc<Unsealer>,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<Result<(), http::serve::ServeError>>,
    background: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl SealedRunning {
    pub fn base_url(&self) -> String {
        base_url(self.addr, self.tls)
    }

    /// The vault, once unsealed.
    pub fn vault(&self) -> Option<Arc<Vault>> {
        self.unsealer.vault().cloned()
    }

    pub fn handle(&self) -> Handle<SocketAddr> {
        self.handle.clone()
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.handle.graceful_shutdown(Some(http::serve::GRACE));
        self.wait().await
    }

    /// Waits until the server stops, then stops the background tasks and closes the store if
    /// the vault was unsealed.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.task.await;
        if let Ok(tasks) = self.background.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
        let mut writer = Ok(());
        if let Some(vault) = self.unsealer.vault() {
            writer = writer_down_error(vault);
            vault.close().await;
        }
        served??;
        writer
    }
}

/// What [`start_any`] started.
pub enum Started {
    /// The root key is a file: open and serving.
    Open(Running),
    /// Sealed mode: serving sealed until unsealed.
    Sealed(SealedRunning),
}

/// Starts the server either way: sealed mode when the data dir has a seal file, else [`start`].
pub async fn start_any(config: Arc<Config>, clock: Clock) -> anyhow::Result<Started> {
    if crate::vault::seal::is_sealed_mode(&config) {
        Ok(Started::Sealed(start_sealed(config, clock).await?))
    } else {
        Ok(Started::Open(start(config, clock).await?))
    }
}

/// Binds and serves a sealed-mode vault, sealed (the store is not opened until unseal).
pub async fn start_sealed(config: Arc<Config>, clock: Clock) -> anyhow::Result<SealedRunning> {
    let bound = http::serve::bind(&config).await?;
    let addr = bound.addr;
    let tls = bound.is_tls();
    let open: http::sealed::Switch = Arc::default();
    let background: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
    let handle = Handle::new();
    // The unsealer is named by the full router too (its status answers there), so the hook
    // finds it through a cell filled right after it is made.
    let me: Arc<std::sync::OnceLock<Arc<Unsealer>>> = Arc::default();
    let on_open: crate::vault::seal::OnOpen = {
        let open = Arc::clone(&open);
        let background = Arc::clone(&background);
        let me = Arc::clone(&me);
        let handle = handle.clone();
        Box::new(move |vault: Arc<Vault>| {
            let mut app = http::router(http::AppState::new(Arc::clone(&vault))?);
            if let Some(u) = me.get() {
                app = http::sealed::opened(app, Arc::clone(u));
            }
            vault.cluster().join();
            let mut tasks = crate::vault::background::spawn(&vault);
            tasks.push(watch_writer(&vault, &handle));
            if let Ok(mut held) = background.lock() {
                held.extend(tasks);
            }
            open.set(app)
                .map_err(|_| anyhow::anyhow!("the vault was already unsealed"))
        })
    };
    let unsealer = Arc::new(Unsealer::new(Arc::clone(&config), clock, on_open)?);
    let _ = me.set(Arc::clone(&unsealer));
    let app = http::sealed::router(Arc::clone(&unsealer), open);
    let task = tokio::spawn(bound.serve(app, handle.clone()));
    Ok(SealedRunning {
        addr,
        tls,
        unsealer,
        handle,
        task,
        background,
    })
}

fn base_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_loopback() => "localhost".to_owned(),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}:{}", addr.port())
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
    let mut background = crate::vault::background::spawn(&vault);
    background.push(watch_writer(&vault, &handle));
    Ok(Running {
        addr,
        tls,
        vault,
        handle,
        task,
        background,
    })
}
