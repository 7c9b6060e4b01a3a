//! Builds and runs the server and its background loops: [`start`] opens the store and serves,
//! [`start_with`] serves an already opened vault, and [`Running`] is the handle to the result. A
//! reload ([`reload`], what SIGHUP triggers in `mediavault serve`) lives here too, so tests can run
//! it in-process instead of signalling a child process.

use std::net::SocketAddr;
use std::sync::Arc;

use axum_server::Handle;

use crate::config::Config;
use crate::vault::Vault;
use crate::{Clock, accounts, audit, http, notify, platforms};

/// A running vault: its address, its shared state, and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub tls: bool,
    pub vault: Arc<Vault>,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<Result<(), http::serve::ServeError>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// Checks every account's credential against its platform on a schedule; a refusal becomes a
/// security event inside the broker.
async fn heartbeats(vault: Arc<Vault>) {
    let every =
        std::time::Duration::from_secs(vault.config.platforms.heartbeat_interval_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        for platform in [accounts::Platform::Wechat, accounts::Platform::Weibo] {
            for (account, cred) in vault.accounts().platform_credentials(platform).await {
                let _ = vault.broker.heartbeat(&account, platform, &cred).await;
            }
        }
    }
}

/// Turns the broker's security events into an audit record and a notice to every channel.
async fn security_events(
    vault: Arc<Vault>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<platforms::SecurityEvent>,
) {
    while let Some(ev) = rx.recv().await {
        tracing::warn!(account = %ev.account, event = ev.kind.as_str(), detail = %ev.detail, "security event");
        vault
            .metrics
            .security_events
            .get_or_create(&crate::telemetry::KindLabels {
                kind: ev.kind.as_str(),
            })
            .inc();
        audit_security_event(&vault, &ev).await;
        let kind = match ev.kind {
            platforms::SecurityEventKind::CanaryTripped => crate::config::RuleKind::CanaryTripped,
            platforms::SecurityEventKind::TokenCancelledExternally => {
                crate::config::RuleKind::TokenCancelled
            }
            platforms::SecurityEventKind::HeartbeatFailed => {
                crate::config::RuleKind::HeartbeatFailed
            }
        };
        if let Err(e) = vault.incidents().evaluate_rules(Some(kind)).await {
            tracing::error!(error = %e, "early-warning rules not evaluated");
        }
        vault.notifier.send(notify::Notice {
            event: ev.kind.as_str().to_owned(),
            account: ev.account.clone(),
            summary: format!(
                "安全事件 security event {} on {}: {}",
                ev.kind.as_str(),
                ev.account,
                ev.detail
            ),
            checkout_id: None,
            incident_id: None,
        });
    }
}

/// A security event becomes an audit record, retried: losing one would hide exactly what
/// security staff must see.
async fn audit_security_event(vault: &Vault, ev: &platforms::SecurityEvent) {
    let entry = || {
        audit::NewEntry::system(ev.kind.as_str(), &ev.account, audit::Outcome::Denied)
            .detail("detail", ev.detail.clone())
    };
    for attempt in 0..10u64 {
        match vault.audit.record_event(entry()).await {
            Ok(_) => break,
            Err(e) => {
                tracing::error!(error = %e, attempt, "security event not yet audited; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
}

/// The publication watch: every `watch.interval_seconds`, what is live on each account against
/// what the vault published (first round after one interval).
async fn publication_watch(vault: Arc<Vault>) {
    let every = std::time::Duration::from_secs(vault.config.watch.interval_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = vault.incidents().watch_round().await {
            tracing::warn!(error = %e, "publication watch round failed");
        }
    }
}

/// The counting early-warning rules (TOTP failures, refused checkouts, reveals, hand-outs), on a
/// schedule; event rules also run right after their event.
async fn early_warning(vault: Arc<Vault>) {
    let every = std::time::Duration::from_secs(vault.config.early_warning.interval_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = vault.incidents().evaluate_rules(None).await {
            tracing::warn!(error = %e, "early-warning round failed");
        }
    }
}

/// Marks expired checkouts and tells the notification channels, so nobody waits unknowingly.
async fn sweep_expired(vault: Arc<Vault>) {
    let every = std::time::Duration::from_secs(vault.config.checkout.expiry_sweep_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = vault
            .checkouts()
            .sweep_expired(&crate::actor::Actor::system())
            .await
        {
            tracing::warn!(error = %e, "expiry sweep failed");
        }
    }
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
    let app = http::router(http::AppState {
        vault: Arc::clone(&vault),
    });
    let handle = Handle::new();
    let task = tokio::spawn(bound.serve(app, handle.clone()));
    let mut background = vec![
        tokio::spawn(sweep_expired(Arc::clone(&vault))),
        tokio::spawn(heartbeats(Arc::clone(&vault))),
        tokio::spawn(early_warning(Arc::clone(&vault))),
    ];
    if vault.config.watch.enabled {
        background.push(tokio::spawn(publication_watch(Arc::clone(&vault))));
    }
    let taken = vault
        .security_events
        .lock()
        .ok()
        .and_then(|mut rx| rx.take());
    if let Some(rx) = taken {
        background.push(tokio::spawn(security_events(Arc::clone(&vault), rx)));
    }
    let v = Arc::clone(&vault);
    background.push(Arc::clone(&vault.broker).spawn_canary(move || {
        let v = Arc::clone(&v);
        async move {
            v.accounts()
                .platform_credentials(accounts::Platform::Wechat)
                .await
        }
    }));
    Ok(Running {
        addr,
        tls,
        vault,
        handle,
        task,
        background,
    })
}
