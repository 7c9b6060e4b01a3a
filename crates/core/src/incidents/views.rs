//! What the incidents service shows: an incident with its steps, timeline, signatures and
//! evidence, the list of incidents, and the loaded playbooks.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Incidents, RESPONDERS};
use crate::actor::Actor;
use crate::audit::rfc3339_ms;
use crate::clock::rfc3339_unix;
use crate::error::{Error, Result};
use crate::policy::Playbook;
use crate::store::incidents::{IncidentRow, StepRow};
use crate::store::types::{IncidentStatus, StepStatus};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepView {
    pub n: i64,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    #[schema(schema_with = crate::schema::step_status)]
    pub status: StepStatus,
    pub done_by: Option<String>,
    pub done_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineView {
    pub at: String,
    pub actor: String,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignatureView {
    pub username: String,
    pub signed_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvidenceView {
    pub platform_id: String,
    pub sha256: String,
    pub captured_at: String,
    pub captured_by: String,
    pub deleted_at: Option<String>,
    pub deleted_by: Option<String>,
    /// The platform's own answer for the post, as fetched.
    pub content: Value,
}

/// One incident with its steps, timeline, signatures and evidence.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IncidentView {
    pub incident_id: String,
    pub account: String,
    pub playbook: String,
    pub title: String,
    pub summary: String,
    #[schema(schema_with = crate::schema::incident_status)]
    pub status: IncidentStatus,
    pub trigger: String,
    pub opened_by: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
    /// The signed audit checkpoint of the chain head when the incident opened.
    pub checkpoint: Option<String>,
    pub steps: Vec<StepView>,
    pub timeline: Vec<TimelineView>,
    pub close_signatures: Vec<SignatureView>,
    pub evidence: Vec<EvidenceView>,
}

/// An incident in a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IncidentSummary {
    pub incident_id: String,
    pub account: String,
    pub playbook: String,
    pub title: String,
    pub summary: String,
    #[schema(schema_with = crate::schema::incident_status)]
    pub status: IncidentStatus,
    pub trigger: String,
    pub opened_by: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
}

/// `GET /incidents?account=&status=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    pub account: Option<String>,
    pub status: Option<String>,
}

fn summary_of(r: &IncidentRow) -> IncidentSummary {
    IncidentSummary {
        incident_id: r.id.clone(),
        account: r.account_id.clone(),
        playbook: r.playbook.clone(),
        title: r.title.clone(),
        summary: r.summary.clone(),
        status: r.status,
        trigger: r.trigger.clone(),
        opened_by: r.opened_by.clone(),
        opened_at: rfc3339_ms(r.opened_ms),
        closed_at: r.closed_at.map(rfc3339_unix),
    }
}

fn step_view(s: StepRow) -> StepView {
    StepView {
        n: s.n,
        kind: s.kind,
        action: s.action,
        title: s.title,
        owner_role: s.owner_role,
        due_at: s.due_at.map(rfc3339_unix),
        status: s.status,
        done_by: s.done_by,
        done_at: s.done_at_ms.map(rfc3339_ms),
        note: s.note,
    }
}

impl Incidents {
    /// The loaded playbooks (`GET /playbooks`).
    pub fn playbooks(&self, actor: &Actor) -> Result<Vec<Playbook>> {
        actor.action("playbook.list", None);
        actor.require(RESPONDERS)?;
        Ok(self.policies.playbooks().iter().cloned().collect())
    }

    pub async fn list(&self, actor: &Actor, q: &IncidentQuery) -> Result<Vec<IncidentSummary>> {
        actor.action("incident.list", None);
        actor.require(RESPONDERS)?;
        let status = match q.status.as_deref() {
            None | Some("") => None,
            Some("open") => Some(IncidentStatus::Open),
            Some("closed") => Some(IncidentStatus::Closed),
            Some(_) => return Err(Error::invalid("status", "status must be open or closed")),
        };
        let rows = self
            .store
            .incidents_list(q.account.as_deref().filter(|a| !a.is_empty()), status)
            .await?;
        Ok(rows.iter().map(summary_of).collect())
    }

    pub async fn get(&self, actor: &Actor, id: &str) -> Result<IncidentView> {
        actor.action("incident.get", Some(id));
        actor.require(RESPONDERS)?;
        self.view(id).await
    }
    pub(crate) async fn view(&self, id: &str) -> Result<IncidentView> {
        let r = self.row(id).await?;
        let steps = self.store.incident_steps(id).await?;
        let timeline = self.store.incident_timeline(id).await?;
        let sigs = self.store.incident_signatures(id).await?;
        let evidence = self.store.incident_evidence(id).await?;
        let s = summary_of(&r);
        Ok(IncidentView {
            incident_id: s.incident_id,
            account: s.account,
            playbook: s.playbook,
            title: s.title,
            summary: s.summary,
            status: s.status,
            trigger: s.trigger,
            opened_by: s.opened_by,
            opened_at: s.opened_at,
            closed_at: s.closed_at,
            checkpoint: r.checkpoint,
            steps: steps.into_iter().map(step_view).collect(),
            timeline: timeline
                .into_iter()
                .map(|t| TimelineView {
                    at: rfc3339_ms(t.at_ms),
                    actor: t.actor,
                    event: t.event,
                    step: t.step,
                    detail: t.detail,
                })
                .collect(),
            close_signatures: sigs
                .into_iter()
                .map(|g| SignatureView {
                    username: g.username,
                    signed_at: rfc3339_unix(g.signed_at),
                })
                .collect(),
            evidence: evidence
                .into_iter()
                .map(|e| EvidenceView {
                    platform_id: e.platform_id,
                    sha256: e.sha256,
                    captured_at: rfc3339_unix(e.captured_at),
                    captured_by: e.captured_by,
                    deleted_at: e.deleted_at.map(rfc3339_unix),
                    deleted_by: e.deleted_by,
                    content: serde_json::from_str(&e.content).unwrap_or(Value::Null),
                })
                .collect(),
        })
    }
}
