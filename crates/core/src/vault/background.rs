//! The vault's own work on a schedule, beside the requests it serves: the expiry sweep, platform
//! heartbeats and the leak canary, the broker's security events, the publication watch and the
//! early-warning rules, and in a cluster the lease loop. [`spawn`] starts them all; the server
//! (`mediavault serve`) stops them with itself.

use std::sync::Arc;

use super::Vault;
use crate::{accounts, audit, notify, platforms};

/// Starts every background loop of a served vault; the handles stop them (abort) when the server
/// stops. In a cluster, the lease loop runs on every node and the vault's own work only on the
/// active one: it starts when the node becomes active and stops when it steps down.
pub fn spawn(vault: &Arc<Vault>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut background = vec![
        tokio::spawn(Arc::clone(vault.cluster()).run()),
        tokio::spawn(supervise(Arc::clone(vault))),
    ];
    let taken = vault
        .security_events
        .lock()
        .ok()
        .and_then(|mut rx| rx.take());
    if let Some(rx) = taken {
        // Events come from the broker, which only the active node's work drives.
        background.push(tokio::spawn(security_events(Arc::clone(vault), rx)));
    }
    background
}

/// Tasks aborted when this is dropped: the supervisor's children stop with it.
struct Children(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Children {
    fn drop(&mut self) {
        for t in self.0.drain(..) {
            t.abort();
        }
    }
}

/// Runs the active node's work while this node is active.
async fn supervise(vault: Arc<Vault>) {
    let mut roles = vault.cluster().subscribe();
    let mut running = Children(Vec::new());
    loop {
        let active = roles.borrow_and_update().is_active();
        if active && running.0.is_empty() {
            running.0 = spawn_active(&vault);
        } else if !active && !running.0.is_empty() {
            running = Children(Vec::new());
        }
        if roles.changed().await.is_err() {
            return;
        }
    }
}

/// The work only the active node does: the expiry sweep, platform heartbeats and the leak
/// canary (they fetch platform tokens), early warning and the publication watch.
fn spawn_active(vault: &Arc<Vault>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut active = vec![
        tokio::spawn(sweep_expired(Arc::clone(vault))),
        tokio::spawn(heartbeats(Arc::clone(vault))),
        tokio::spawn(early_warning(Arc::clone(vault))),
    ];
    if vault.config.watch.enabled {
        active.push(tokio::spawn(publication_watch(Arc::clone(vault))));
    }
    let v = Arc::clone(vault);
    active.push(Arc::clone(&vault.broker).spawn_canary(move || {
        let v = Arc::clone(&v);
        async move {
            v.accounts()
                .platform_credentials(accounts::Platform::Wechat)
                .await
        }
    }));
    active
}

/// Checks every account's credential against its platform on a schedule; a refusal becomes a
/// security event inside the broker. Each round learns the platform tokens' expiry and sends the
/// credential lifetime reminders.
async fn heartbeats(vault: Arc<Vault>) {
    let every =
        std::time::Duration::from_secs(vault.config.platforms.heartbeat_interval_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        for platform in [accounts::Platform::Wechat, accounts::Platform::Weibo] {
            for (account, cred) in vault.accounts().platform_credentials(platform).await {
                if let Ok(Some(left)) = vault.broker.heartbeat(&account, platform, &cred).await {
                    vault.accounts().learn_token_expiry(&account, left).await;
                }
            }
        }
        // After the round, so a token's expiry just learnt is reminded of at once.
        if let Err(e) = vault.accounts().lifetime_reminders().await {
            tracing::error!(error = %e, "credential lifetime reminders not sent");
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
            to: None,
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
