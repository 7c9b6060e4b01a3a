//! Which node of a cluster is active (issue 22). Several `serve` processes share one database;
//! a lease row timed by the database's clock says which one writes. The active node renews it
//! every `renew_seconds`; a standby takes it once it ran out (`lease_seconds` after the active
//! node's last renewal). Every write is fenced in the database itself (see
//! `mediavault_store::Backend::begin_tx`), so what this loop believes never decides whether a
//! change commits: a node that lost the lease while it thought itself active commits nothing.
//! The loop decides what a node *does*: the active node runs the background work (broker,
//! watch, early warning, sweeps) and answers requests; a standby forwards them to the active one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::ClusterConfig;
use crate::store::{Fence, LeaseRow, Store, Writer};

/// What this node is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No `[cluster]`: the only node.
    Sole,
    /// The active node of the cluster, for this term.
    Active { term: i64 },
    /// A standby; `leader` is the node that held the lease when this one last looked (none while
    /// the lease is free).
    Standby { leader: Option<Leader> },
}

impl Role {
    /// Whether this node runs the vault's background work and answers requests itself.
    pub fn is_active(&self) -> bool {
        matches!(self, Role::Sole | Role::Active { .. })
    }
}

/// The active node, as a standby sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub node: String,
    pub address: String,
}

/// The lease loop's state, shared with the server (readiness, forwarding) and the background
/// supervisor.
#[derive(Debug)]
pub struct Cluster {
    store: Store,
    config: Option<ClusterConfig>,
    role: watch::Sender<Role>,
}

impl Cluster {
    /// A vault opened for a command (init, the admin CLI, audit verify) is the sole writer for the
    /// command's length: the database's own lock orders its writes with the active node's, and
    /// the chain's head is read inside each write. Only a served vault [`Self::join`]s the cluster.
    pub(crate) fn new(store: Store, config: Option<ClusterConfig>) -> Self {
        Self {
            store,
            config,
            role: watch::Sender::new(Role::Sole),
        }
    }

    /// Takes this node's part in its cluster (`mediavault serve`, before it answers anything): a
    /// standby, writing nothing, until the lease loop finds the lease free. No-op without
    /// `[cluster]`.
    pub fn join(&self) {
        if self.config.is_some() {
            self.store.set_writer(Writer::Standby);
            self.role.send_replace(Role::Standby { leader: None });
        }
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// Changes of role, for what must start or stop with it.
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// This node's name in the cluster (none for a single node).
    pub fn node(&self) -> Option<&str> {
        self.config.as_ref().map(|c| c.node.as_str())
    }

    /// Runs the lease loop until the task is aborted; returns at once unless the node joined a
    /// cluster. The first look is immediate, so a node that starts while the lease is free becomes
    /// active without waiting a period.
    pub async fn run(self: Arc<Self>) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let ttl_ms = i64::try_from(config.lease_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        let lease = Duration::from_secs(config.lease_seconds);
        let renew_every = Duration::from_secs(config.renew_seconds);
        // A standby looks every second, so it takes over at most a second after the lease ran
        // out (`lease_seconds` + 1 after the active node's last renewal).
        let look_every = Duration::from_secs(1).min(renew_every);
        // When the active node last renewed (by this process's monotonic clock, measured from
        // before the renewal was sent: the database's lease can only end later than this).
        let mut renewed_at = Instant::now();
        loop {
            let pause = match self.role() {
                Role::Active { term } => {
                    let fence = Fence {
                        node: config.node.clone(),
                        term,
                    };
                    let asked_at = Instant::now();
                    match tokio::time::timeout(renew_every, self.store.lease_renew(&fence, ttl_ms))
                        .await
                    {
                        Ok(Ok(true)) => renewed_at = asked_at,
                        Ok(Ok(false)) => {
                            self.step_down(&config, "the lease was taken or ran out")
                                .await;
                        }
                        Ok(Err(e)) if renewed_at.elapsed() >= lease => {
                            self.step_down(&config, &format!("cannot renew the lease: {e}"))
                                .await;
                        }
                        Err(_) if renewed_at.elapsed() >= lease => {
                            self.step_down(&config, "the database did not answer").await;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "lease renewal failed; retrying");
                        }
                        Err(_) => tracing::warn!("lease renewal timed out; retrying"),
                    }
                    renew_every
                }
                Role::Standby { .. } => {
                    let asked_at = Instant::now();
                    match self
                        .store
                        .lease_acquire(&config.node, &config.address, ttl_ms)
                        .await
                    {
                        Ok(Some(term)) => {
                            renewed_at = asked_at;
                            self.become_active(&config, term);
                            renew_every
                        }
                        Ok(None) => {
                            self.note_leader().await;
                            look_every
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the lease; staying a standby");
                            look_every
                        }
                    }
                }
                Role::Sole => return,
            };
            tokio::time::sleep(pause).await;
        }
    }

    fn become_active(&self, config: &ClusterConfig, term: i64) {
        self.store.set_writer(Writer::Active(Fence {
            node: config.node.clone(),
            term,
        }));
        // What this node cached while another one was active may be stale (a token revoked
        // there is still in this node's index): drop it.
        self.store.invalidate_token_caches();
        tracing::warn!(node = %config.node, term, "this node is now the active node");
        self.role.send_replace(Role::Active { term });
    }

    async fn step_down(&self, config: &ClusterConfig, why: &str) {
        // Fenced first; the role follows once the new leader is known, so requests meanwhile are
        // refused by the store rather than told that no node is active.
        self.store.set_writer(Writer::Standby);
        tracing::error!(node = %config.node, reason = why, "this node stepped down to standby");
        let leader = self.leader().await.unwrap_or(None);
        self.role.send_replace(Role::Standby { leader });
    }

    /// The node holding an unexpired lease, if any (None when the lease cannot be read).
    async fn leader(&self) -> Option<Option<Leader>> {
        match self.store.lease_current().await {
            Ok(LeaseRow {
                holder,
                address,
                remaining_ms,
                ..
            }) if remaining_ms > 0 && !holder.is_empty() => Some(Some(Leader {
                node: holder,
                address,
            })),
            Ok(_) => Some(None),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the lease");
                None
            }
        }
    }

    /// Records who leads, for readiness and forwarding.
    async fn note_leader(&self) {
        let Some(leader) = self.leader().await else {
            return;
        };
        self.role.send_if_modified(|role| {
            let next = Role::Standby { leader };
            if matches!(role, Role::Standby { .. }) && *role != next {
                *role = next;
                true
            } else {
                false
            }
        });
    }

    /// Whether this node may do something the database cannot fence (fetch a platform token):
    /// a single node always; an active node while its lease has at least `margin` left by the
    /// database's clock, so no other node can take over before the act is done.
    pub async fn confirm(&self, margin: Duration) -> bool {
        match self.store.writer() {
            Writer::Sole => true,
            Writer::Standby => false,
            Writer::Active(fence) => {
                let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
                self.store
                    .lease_confirm(&fence, margin_ms)
                    .await
                    .unwrap_or(false)
            }
        }
    }

    /// Ends this node's lease at once if it holds one (a clean stop), so a standby need not wait
    /// for it to run out.
    pub async fn release(&self) {
        if let Writer::Active(fence) = self.store.writer() {
            self.store.set_writer(Writer::Standby);
            if let Err(e) = self.store.lease_release(&fence).await {
                tracing::warn!(error = %e, "could not release the lease; a standby takes over when it runs out");
            }
        }
    }
}
