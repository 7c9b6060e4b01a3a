//! The incidents service: an incident runs a playbook on one account. It owns who may open, work
//! and close an incident, what each automated step does, and that a close needs two different
//! people.
//!
//! Opening is one transaction with its audit entry: the incident, its steps (copied from the
//! playbook), and the steps that only change vault state (freeze, revoke tokens, mark the
//! credential compromised, seal an audit checkpoint), so the account is frozen and every token
//! dead the moment the incident exists. The steps that leave the vault (cancel platform tokens,
//! fetch the post as evidence, notify) follow, each recorded in the audit log before it is sent;
//! a notification channel that is down never holds anything up (see `crate::notify`).
//!
//! - `open`: opening an incident and the steps that run inside its transaction.
//! - `auto`: the automated steps that leave the vault, run after the opening commits.
//! - `platform`: the platform calls the vault makes on its own behalf (evidence, deletion).
//! - `manual`: completing a manual step, and the TOTP-confirmed deletion of posts.
//! - `close`: the two-person close.
//! - `views`: what the API and the console show (views, lists, playbooks).
//! - [`report`]: the Markdown and JSON export.
//! - [`watch`]: the publication watch and the early-warning rules.

mod auto;
mod close;
mod manual;
mod open;
mod platform;
pub mod report;
mod views;
pub mod watch;

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::Role;
use crate::store::incidents::IncidentRow;

pub use close::{CLOSE_SIGNATURES, CloseOutcome};
pub use open::{OpenIncident, Trigger};
pub use views::{
    EvidenceView, IncidentQuery, IncidentSummary, IncidentView, SignatureView, StepView,
    TimelineView,
};

/// Who may open, read and close incidents.
const RESPONDERS: &[Role] = &[Role::Admin, Role::Auditor];

fn text(field: &str, s: &str, max: usize, allow_empty: bool) -> Result<String> {
    let t = s.trim();
    if (!allow_empty && t.is_empty()) || t.chars().count() > max {
        let min = if allow_empty { 0 } else { 1 };
        return Err(Error::invalid(
            field,
            format!("{field} must be {min}-{max} characters"),
        ));
    }
    Ok(t.to_owned())
}

/// The incidents service; `vault.incidents()`.
#[derive(Clone)]
pub struct Incidents {
    pub(crate) store: crate::store::Store,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) audit: crate::audit::AuditWriter,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) config: std::sync::Arc<crate::config::Config>,
    pub(crate) accounts: crate::accounts::service::Accounts,
    pub(crate) people: crate::identity::users::People,
    pub(crate) broker: std::sync::Arc<crate::platforms::Broker>,
    pub(crate) notifier: crate::notify::Notifier,
    pub(crate) policies: std::sync::Arc<crate::policy::Live>,
    /// When each early-warning (rule, key) last fired, by audit timestamp (ms); in memory only.
    pub(crate) alerts_fired:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(String, String), i64>>>,
}

/// How the actor is named in steps and the timeline.
fn who(actor: &Actor) -> String {
    let (kind, id) = actor.audit_id();
    match kind {
        crate::audit::context::ActorKind::User => id,
        _ => format!("{}:{id}", kind.as_str()),
    }
}

impl Incidents {
    async fn row(&self, id: &str) -> Result<IncidentRow> {
        self.store
            .incident_get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("incident {id:?}")))
    }
}
