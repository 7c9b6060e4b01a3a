//! Incidents: their steps, timeline, close signatures and captured evidence; credential versions
//! marked compromised; posts the publication watch has reported.

use crate::Result;
use crate::types::{IncidentStatus, StepStatus};
use async_trait::async_trait;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IncidentRow {
    pub id: String,
    pub account_id: String,
    pub playbook: String,
    pub title: String,
    pub summary: String,
    pub status: IncidentStatus,
    pub trigger: String,
    pub opened_by: String,
    pub opened_at: i64,
    pub opened_ms: i64,
    pub checkpoint: Option<String>,
    pub closed_at: Option<i64>,
    pub review: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepRow {
    pub n: i64,
    pub kind: String,
    pub action: Option<String>,
    pub title: String,
    pub owner_role: Option<String>,
    pub due_at: Option<i64>,
    pub status: StepStatus,
    pub done_by: Option<String>,
    pub done_at_ms: Option<i64>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TimelineRow {
    pub at_ms: i64,
    pub actor: String,
    pub event: String,
    pub step: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SignatureRow {
    pub username: String,
    pub signed_at: i64,
    pub review: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EvidenceRow {
    pub id: i64,
    pub platform_id: String,
    pub content: String,
    pub sha256: String,
    pub captured_at: i64,
    pub captured_by: String,
    pub deleted_at: Option<i64>,
    pub deleted_by: Option<String>,
}

pub struct NewIncident<'a> {
    pub id: &'a str,
    pub account: &'a str,
    pub playbook: &'a str,
    pub title: &'a str,
    pub summary: &'a str,
    pub trigger: &'a str,
    pub opened_by: &'a str,
    pub now: i64,
    pub now_ms: i64,
}

pub struct NewStep {
    pub n: i64,
    pub kind: &'static str,
    pub action: Option<&'static str>,
    pub title: String,
    pub owner_role: Option<&'static str>,
    pub due_at: Option<i64>,
}

#[async_trait]
pub trait IncidentReads: Send + Sync {
    async fn incident_get(&self, id: &str) -> Result<Option<IncidentRow>>;
    /// Newest first, optionally of one account and/or one status.
    async fn incidents_list(
        &self,
        account: Option<&str>,
        status: Option<IncidentStatus>,
    ) -> Result<Vec<IncidentRow>>;
    async fn incident_steps(&self, id: &str) -> Result<Vec<StepRow>>;
    async fn incident_timeline(&self, id: &str) -> Result<Vec<TimelineRow>>;
    async fn incident_signatures(&self, id: &str) -> Result<Vec<SignatureRow>>;
    async fn incident_evidence(&self, id: &str) -> Result<Vec<EvidenceRow>>;
    /// The highest credential version of the account that an incident marked compromised.
    async fn credential_compromised_up_to(&self, account: &str) -> Result<Option<i64>>;
    /// An open incident of the account from this playbook, if any (rules do not open a second).
    async fn incident_open_for(&self, account: &str, playbook: &str) -> Result<Option<String>>;
    /// Which of `ids` the publication watch has already reported for the account.
    async fn watch_seen(&self, account: &str) -> Result<Vec<String>>;
}

#[async_trait]
pub trait IncidentWrites: Send {
    async fn incident_insert(&mut self, i: NewIncident<'_>, steps: &[NewStep]) -> Result<()>;
    async fn incident_set_checkpoint(&mut self, id: &str, line: &str) -> Result<()>;
    /// Settles a step that is still pending. False if it was settled already.
    async fn incident_step_settle(
        &mut self,
        id: &str,
        n: i64,
        status: StepStatus,
        by: &str,
        at_ms: i64,
        note: &str,
    ) -> Result<bool>;
    async fn incident_timeline_add(
        &mut self,
        id: &str,
        at_ms: i64,
        actor: &str,
        event: &str,
        step: Option<i64>,
        detail: &str,
    ) -> Result<()>;
    /// Adds a close signature; false if this person already signed.
    async fn incident_sign(
        &mut self,
        id: &str,
        username: &str,
        now: i64,
        review: &str,
    ) -> Result<bool>;
    /// How many different people have signed the close.
    async fn incident_signers(&mut self, id: &str) -> Result<i64>;
    /// Whether the incident is open, read inside the transaction.
    async fn incident_is_open(&mut self, id: &str) -> Result<bool>;
    async fn incident_close(&mut self, id: &str, now: i64, review: &str) -> Result<bool>;
    #[allow(clippy::too_many_arguments)]
    async fn evidence_insert(
        &mut self,
        incident: &str,
        platform_id: &str,
        content: &str,
        sha256: &str,
        now: i64,
        by: &str,
    ) -> Result<i64>;
    /// Marks captured evidence as deleted on the platform; false if it already was.
    async fn evidence_mark_deleted(
        &mut self,
        incident: &str,
        platform_id: &str,
        by: &str,
        now: i64,
    ) -> Result<bool>;
    /// Marks the account's current credential version compromised by an incident.
    async fn credential_mark_compromised(
        &mut self,
        account: &str,
        incident: &str,
        now: i64,
    ) -> Result<i64>;
    /// Whether the account's current credential version was marked compromised (read inside the
    /// transaction that would unfreeze the account).
    async fn credential_is_compromised(&mut self, account: &str) -> Result<bool>;
    /// Remembers a post the watch reported; false if it was reported before.
    async fn watch_seen_add(&mut self, account: &str, platform_id: &str, now: i64) -> Result<bool>;
}
