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
//! - [`report`]: the Markdown and JSON export.
//! - [`watch`]: the publication watch and the early-warning rules.

pub mod report;
pub mod watch;

use std::sync::Arc;

use axum::body::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::instrument;

use crate::accounts::Platform;
use crate::actor::Actor;
use crate::audit::chain::Checkpoint;
use crate::audit::rfc3339_ms;
use crate::audit::writer::unix_ms;
use crate::clock::rfc3339_unix;
use crate::error::{Conflict, Error, Result};
use crate::identity::Role;
use crate::platforms::broker::ApiRequest;
use crate::policy::{AutoAction, ConfirmedAction, Playbook, StepKind};
use crate::store::incidents::{IncidentRow, NewIncident, NewStep, StepRow};
use crate::store::types::{IncidentStatus, StepStatus};
use crate::vault::Vault;

/// Who may open, read and close incidents.
const RESPONDERS: &[Role] = &[Role::Admin, Role::Auditor];
/// Signatures a close needs, from different people.
pub const CLOSE_SIGNATURES: i64 = 2;

/// `POST /incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenIncident {
    pub account: String,
    pub playbook: String,
    pub summary: String,
    /// The platform id of the post concerned (WeChat `article_id`, Weibo status id), for
    /// playbooks that capture it as evidence.
    #[serde(default)]
    pub post: Option<String>,
}

/// What opened an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A person, through the API or the console.
    Manual,
    /// An early-warning rule, by name.
    Rule(String),
}

impl Trigger {
    fn as_text(&self) -> String {
        match self {
            Trigger::Manual => "manual".into(),
            Trigger::Rule(r) => format!("rule:{r}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
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
    pub status: StepStatus,
    pub done_by: Option<String>,
    pub done_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineView {
    pub at: String,
    pub actor: String,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignatureView {
    pub username: String,
    pub signed_at: String,
}

#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    pub incident_id: String,
    pub account: String,
    pub playbook: String,
    pub title: String,
    pub summary: String,
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
#[derive(Debug, Clone, Serialize)]
pub struct IncidentSummary {
    pub incident_id: String,
    pub account: String,
    pub playbook: String,
    pub title: String,
    pub summary: String,
    pub status: IncidentStatus,
    pub trigger: String,
    pub opened_by: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
}

/// `GET /incidents?account=&status=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    pub account: Option<String>,
    pub status: Option<String>,
}

/// What a close signature did.
#[derive(Debug, Clone, Serialize)]
pub struct CloseOutcome {
    /// True once two different people signed: the incident is closed.
    pub closed: bool,
    pub signatures: i64,
    pub incident: IncidentView,
}

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

fn new_incident_id() -> Result<String> {
    let mut raw = [0u8; 8];
    crate::crypto::random_bytes(&mut raw)?;
    Ok(format!("in_{}", hex::encode(raw)))
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

/// The incidents service; `vault.incidents()`.
pub struct Incidents<'v> {
    v: &'v Vault,
}

impl Vault {
    pub fn incidents(&self) -> Incidents<'_> {
        Incidents { v: self }
    }
}

/// How the actor is named in steps and the timeline.
fn who(actor: &Actor) -> String {
    let (kind, id) = actor.audit_id();
    match kind {
        crate::audit::context::ActorKind::User => id,
        _ => format!("{}:{id}", kind.as_str()),
    }
}

impl Incidents<'_> {
    /// The loaded playbooks (`GET /playbooks`).
    pub fn playbooks(&self, actor: &Actor) -> Result<Vec<Playbook>> {
        actor.action("playbook.list", None);
        actor.require(RESPONDERS)?;
        Ok(self.v.playbooks().iter().cloned().collect())
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
            .v
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

    async fn row(&self, id: &str) -> Result<IncidentRow> {
        self.v
            .store
            .incident_get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("incident {id:?}")))
    }

    pub(crate) async fn view(&self, id: &str) -> Result<IncidentView> {
        let r = self.row(id).await?;
        let steps = self.v.store.incident_steps(id).await?;
        let timeline = self.v.store.incident_timeline(id).await?;
        let sigs = self.v.store.incident_signatures(id).await?;
        let evidence = self.v.store.incident_evidence(id).await?;
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

    /// Opens an incident from a playbook, as a person (admin or auditor), and runs its automated
    /// steps. Answers once they have run; notifications are on their way.
    #[instrument(skip_all, fields(account = %input.account, playbook = %input.playbook))]
    pub async fn open(&self, actor: &Actor, input: OpenIncident) -> Result<IncidentView> {
        actor.action("incident.open", Some(&input.account));
        actor.require(RESPONDERS)?;
        self.open_as(actor, input, Trigger::Manual).await
    }

    /// Opens an incident for an early-warning rule or the publication watch (the vault itself
    /// acting, audited as `system:mediavault`).
    pub async fn open_by_rule(&self, rule: &str, input: OpenIncident) -> Result<IncidentView> {
        let actor = Actor::system();
        self.open_as(&actor, input, Trigger::Rule(rule.to_owned()))
            .await
    }

    async fn open_as(
        &self,
        actor: &Actor,
        input: OpenIncident,
        trigger: Trigger,
    ) -> Result<IncidentView> {
        let summary = text("summary", &input.summary, 1000, false)?;
        let post = match input.post.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) if p.len() <= 128 && p.chars().all(|c| c.is_ascii_graphic()) => {
                Some(p.to_owned())
            }
            Some(_) => {
                return Err(Error::invalid(
                    "post",
                    "post must be a platform id of 1-128 printable ASCII characters",
                ));
            }
        };
        let playbook = self
            .v
            .playbooks()
            .get(&input.playbook)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("playbook {:?}", input.playbook)))?;
        let account = self.v.accounts().row(&input.account).await?;
        let id = new_incident_id()?;
        actor.detail("incident_id", id.clone());
        actor.detail("playbook", playbook.id.clone());
        let now = self.v.clock.unix();
        let now_ms = unix_ms(&self.v.clock);
        let by = who(actor);
        let steps: Vec<NewStep> = playbook
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| NewStep {
                n: i as i64 + 1,
                kind: match s.kind {
                    StepKind::Auto => "auto",
                    StepKind::Manual => "manual",
                },
                action: s
                    .action
                    .map(AutoAction::as_str)
                    .or(s.confirm.map(ConfirmedAction::as_str)),
                title: s.title.clone(),
                owner_role: s.owner_role.map(Role::as_str),
                due_at: s.due_minutes.map(|m| now + i64::from(m) * 60),
            })
            .collect();
        let local: Vec<(i64, AutoAction)> = playbook
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.action.map(|a| (i as i64 + 1, a)))
            .filter(|(_, a)| {
                matches!(
                    a,
                    AutoAction::FreezeAccount
                        | AutoAction::RevokeTokens
                        | AutoAction::MarkCompromised
                        | AutoAction::SealCheckpoint
                )
            })
            .collect();
        let checkpoint_key = self.v.keys.mac().checkpoint.clone();
        let (iid, aid, pid, title, trig, by2) = (
            id.clone(),
            account.id.clone(),
            playbook.id.clone(),
            playbook.title.clone(),
            trigger.as_text(),
            by.clone(),
        );
        let post2 = post.clone();
        self.v
            .change(actor, "incident.open", &account.id, move |tx| {
                Box::pin(async move {
                    tx.incident_insert(
                        NewIncident {
                            id: &iid,
                            account: &aid,
                            playbook: &pid,
                            title: &title,
                            summary: &summary,
                            trigger: &trig,
                            opened_by: &by2,
                            now,
                            now_ms,
                        },
                        &steps,
                    )
                    .await?;
                    let detail = match &post2 {
                        Some(p) => format!("{trig}; post {p}"),
                        None => trig.clone(),
                    };
                    tx.incident_timeline_add(&iid, now_ms, &by2, "opened", None, &detail)
                        .await?;
                    let mut revoked_total = 0u64;
                    for (n, action) in local {
                        let note = match action {
                            AutoAction::FreezeAccount => {
                                tx.account_set_status(
                                    &aid,
                                    crate::store::types::AccountStatus::Frozen,
                                    &format!("incident {iid}"),
                                )
                                .await?;
                                let r = tx.revoke_account_tokens(&aid, now).await?;
                                revoked_total += r;
                                tx.note("frozen", true);
                                format!("account frozen; {r} tokens revoked")
                            }
                            AutoAction::RevokeTokens => {
                                let r = tx.revoke_account_tokens(&aid, now).await?;
                                revoked_total += r;
                                format!("{r} tokens revoked")
                            }
                            AutoAction::MarkCompromised => {
                                let v = tx.credential_mark_compromised(&aid, &iid, now).await?;
                                tx.note("compromised_version", v);
                                format!("credential version {v} marked compromised")
                            }
                            AutoAction::SealCheckpoint => {
                                let head = tx.audit_head().await?;
                                let line = Checkpoint {
                                    seq: head.seq,
                                    hash: head.hash,
                                    unix: now,
                                }
                                .to_line(&checkpoint_key);
                                tx.incident_set_checkpoint(&iid, &line).await?;
                                format!("checkpoint sealed at audit seq {}", head.seq)
                            }
                            _ => continue,
                        };
                        tx.incident_step_settle(&iid, n, StepStatus::Done, &by2, now_ms, &note)
                            .await?;
                        tx.incident_timeline_add(&iid, now_ms, &by2, "step_done", Some(n), &note)
                            .await?;
                    }
                    tx.note("tokens_revoked", revoked_total);
                    Ok(())
                })
            })
            .await?;
        if playbook
            .steps
            .iter()
            .any(|s| s.action == Some(AutoAction::FreezeAccount))
        {
            // Nothing the broker cached may be used for the frozen account any more; the
            // platform step below fetches the replacements itself.
            self.v.broker.invalidate(&account.id);
        }
        // The steps that leave the vault, in the playbook's order.
        for (i, s) in playbook.steps.iter().enumerate() {
            let n = i as i64 + 1;
            match s.action {
                Some(AutoAction::RefreshPlatformToken) => {
                    self.refresh_platform_token(actor, &id, n, &account.id, &by)
                        .await;
                }
                Some(AutoAction::CaptureEvidence) => {
                    self.capture_evidence(actor, &id, n, &account.id, post.as_deref(), &by)
                        .await;
                }
                Some(AutoAction::Notify) => {
                    self.notify_step(&id, n, &account.id, &playbook, &summary_text(&input), &by)
                        .await;
                }
                _ => {}
            }
        }
        self.view(&id).await
    }

    /// Settles an automated step after it ran (its own audit entry, on the incident).
    async fn settle(
        &self,
        incident: &str,
        n: i64,
        status: StepStatus,
        by: &str,
        note: String,
    ) -> Result<()> {
        let actor = Actor::system();
        let (iid, by, now_ms) = (incident.to_owned(), by.to_owned(), unix_ms(&self.v.clock));
        self.v
            .change(&actor, "incident.step", incident, move |tx| {
                Box::pin(async move {
                    tx.note("step", n);
                    tx.note("status", status.as_str());
                    tx.incident_step_settle(&iid, n, status, &by, now_ms, &note)
                        .await?;
                    let event = match status {
                        StepStatus::Done => "step_done",
                        StepStatus::Failed => "step_failed",
                        StepStatus::Skipped => "step_skipped",
                        StepStatus::Pending => "step_pending",
                    };
                    tx.incident_timeline_add(&iid, now_ms, &by, event, Some(n), &note)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Records, durably and before it is sent, a call the vault itself makes to a platform.
    async fn record_send(
        &self,
        actor: &Actor,
        account: &str,
        incident: &str,
        call: &str,
    ) -> Result<()> {
        let mut entry = actor.entry("platform.send", account);
        entry.detail.insert("incident_id".into(), incident.into());
        entry.detail.insert("call".into(), call.into());
        self.v.audit.record(entry).await?;
        Ok(())
    }

    async fn refresh_platform_token(
        &self,
        actor: &Actor,
        incident: &str,
        n: i64,
        account: &str,
        by: &str,
    ) {
        let (status, note) = match self.v.accounts().current_credential(account).await {
            Ok((row, _)) if row.platform != Platform::Wechat => (
                StepStatus::Skipped,
                format!(
                    "{} has no token the vault can cancel; revoke it in the platform console",
                    row.platform.as_str()
                ),
            ),
            Ok((_, cred)) => {
                match self
                    .record_send(
                        actor,
                        account,
                        incident,
                        "POST cgi-bin/stable_token force_refresh; GET cgi-bin/token",
                    )
                    .await
                {
                    Err(e) => (StepStatus::Failed, format!("not sent: {e}")),
                    Ok(()) => match self.v.broker.cancel_outstanding(account, &cred).await {
                        Ok(c) if c.stable_forced => (
                            StepStatus::Done,
                            "stable token force-refreshed; classic token fetched".into(),
                        ),
                        Ok(_) => (
                            StepStatus::Done,
                            "stable token was force-refreshed less than 30 s ago; classic token fetched".into(),
                        ),
                        Err(e) => (StepStatus::Failed, e.to_string()),
                    },
                }
            }
            Err(e) => (StepStatus::Failed, e.to_string()),
        };
        if let Err(e) = self.settle(incident, n, status, by, note).await {
            tracing::error!(incident, error = %e, "incident step not recorded");
        }
    }

    /// One platform call the vault makes on its own behalf (evidence, deletion), through the
    /// broker with the account's current credential. The caller has recorded it already.
    async fn platform_call(
        &self,
        account: &str,
        method: Method,
        path: &str,
        query: &str,
        body: Value,
        form: bool,
    ) -> Result<Value> {
        let (row, cred) = self.v.accounts().current_credential(account).await?;
        let (bytes, ct) = if method == Method::GET {
            (Bytes::new(), None)
        } else if form {
            let s = body
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join("&")
                })
                .unwrap_or_default();
            (Bytes::from(s), Some("application/x-www-form-urlencoded"))
        } else {
            (Bytes::from(body.to_string()), Some("application/json"))
        };
        let broker = Arc::clone(&self.v.broker);
        let answer = broker
            .forward(
                &row.id,
                row.platform,
                &cred,
                ApiRequest {
                    method,
                    path,
                    query,
                    body: bytes,
                    content_type: ct,
                },
            )
            .await
            .map_err(|e| Error::Platform {
                platform: e.platform(),
                code: e.code().unwrap_or(-1),
                message: e.to_string(),
            })?;
        if let Some(e) = answer.error(row.platform.as_str()) {
            return Err(Error::Platform {
                platform: e.platform(),
                code: e.code().unwrap_or(-1),
                message: e.to_string(),
            });
        }
        Ok(serde_json::from_slice(&answer.body).unwrap_or(Value::Null))
    }

    /// Fetches the post as the platform has it now and keeps it as evidence.
    pub(crate) async fn fetch_post(&self, account: &str, post: &str) -> Result<Value> {
        let row = self.v.accounts().row(account).await?;
        match row.platform {
            Platform::Wechat => {
                self.platform_call(
                    account,
                    Method::POST,
                    "/cgi-bin/freepublish/getarticle",
                    "",
                    json!({ "article_id": post }),
                    false,
                )
                .await
            }
            Platform::Weibo => {
                if !post.chars().all(|c| c.is_ascii_digit()) {
                    return Err(Error::invalid("post", "a Weibo status id is a number"));
                }
                self.platform_call(
                    account,
                    Method::GET,
                    "/2/statuses/show.json",
                    &format!("id={post}"),
                    Value::Null,
                    false,
                )
                .await
            }
            Platform::Generic => Err(Error::invalid(
                "account",
                "generic accounts have no platform API",
            )),
        }
    }

    async fn capture_evidence(
        &self,
        actor: &Actor,
        incident: &str,
        n: i64,
        account: &str,
        post: Option<&str>,
        by: &str,
    ) {
        let Some(post) = post else {
            let note = "no post was named when the incident opened; capture it by hand".to_owned();
            if let Err(e) = self
                .settle(incident, n, StepStatus::Skipped, by, note)
                .await
            {
                tracing::error!(incident, error = %e, "incident step not recorded");
            }
            return;
        };
        let fetched = match self
            .record_send(actor, account, incident, &format!("fetch post {post}"))
            .await
        {
            Ok(()) => self.fetch_post(account, post).await,
            Err(e) => Err(e),
        };
        let result = match fetched {
            Ok(content) => {
                let text = content.to_string();
                let digest = crate::crypto::sha256_hex(text.as_bytes());
                let (iid, pid, by2) = (incident.to_owned(), post.to_owned(), by.to_owned());
                let (now, now_ms) = (self.v.clock.unix(), unix_ms(&self.v.clock));
                let note = format!("post {post} captured, sha256 {digest}");
                self.v
                    .change(&Actor::system(), "incident.evidence", incident, move |tx| {
                        Box::pin(async move {
                            tx.note("platform_id", pid.clone());
                            tx.note("sha256", digest.clone());
                            tx.evidence_insert(&iid, &pid, &text, &digest, now, &by2)
                                .await?;
                            tx.incident_step_settle(&iid, n, StepStatus::Done, &by2, now_ms, &note)
                                .await?;
                            tx.incident_timeline_add(
                                &iid,
                                now_ms,
                                &by2,
                                "step_done",
                                Some(n),
                                &note,
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .await
            }
            Err(e) => {
                self.settle(
                    incident,
                    n,
                    StepStatus::Failed,
                    by,
                    format!("post {post}: {e}"),
                )
                .await
            }
        };
        if let Err(e) = result {
            tracing::error!(incident, error = %e, "evidence step not recorded");
        }
    }

    async fn notify_step(
        &self,
        incident: &str,
        n: i64,
        account: &str,
        playbook: &Playbook,
        summary: &str,
        by: &str,
    ) {
        let channels = self.v.config.notify.len();
        let note = format!("queued to {channels} channel(s)");
        if let Err(e) = self.settle(incident, n, StepStatus::Done, by, note).await {
            tracing::error!(incident, error = %e, "notify step not recorded");
        }
        self.v.notifier.send(crate::notify::Notice {
            event: "incident.opened".into(),
            account: account.to_owned(),
            summary: format!(
                "应急事件 incident {incident} opened on {account}: {} — {summary}",
                playbook.title
            ),
            checkout_id: None,
            incident_id: Some(incident.to_owned()),
        });
    }

    /// Completes a manual step with a note, as its owner role (or an admin). A step that confirms
    /// an action (deleting the captured posts) needs the person's TOTP code, and the action is
    /// carried out before the step counts as done.
    #[instrument(skip_all, fields(incident = %id, step = n))]
    pub async fn complete_step(
        &self,
        actor: &Actor,
        id: &str,
        n: i64,
        note: &str,
        totp: Option<&str>,
    ) -> Result<IncidentView> {
        actor.action("incident.step", Some(id));
        actor.detail("step", n);
        let me = actor.require(&[Role::Admin, Role::Auditor, Role::Approver, Role::Publisher])?;
        let note = text("note", note, 2000, true)?;
        let inc = self.row(id).await?;
        if inc.status != IncidentStatus::Open {
            return Err(Error::conflict(
                Conflict::IncidentClosed,
                format!("incident {id} is closed"),
            ));
        }
        let step = self
            .v
            .store
            .incident_steps(id)
            .await?
            .into_iter()
            .find(|s| s.n == n)
            .ok_or_else(|| Error::NotFound(format!("step {n} of incident {id}")))?;
        if step.kind != "manual" || step.status != StepStatus::Pending {
            return Err(Error::conflict(
                Conflict::StepNotPending,
                format!("step {n} is not a pending manual step"),
            ));
        }
        let owner = step
            .owner_role
            .as_deref()
            .and_then(|r| r.parse::<Role>().ok());
        let allowed: Vec<Role> = match owner {
            Some(r) if r != Role::Admin => vec![r, Role::Admin],
            _ => vec![Role::Admin],
        };
        let confirm = step.action.as_deref().and_then(ConfirmedAction::parse);
        // A confirmed action is the owner's alone: deleting a post needs the approver's own code.
        let allowed = if confirm.is_some() {
            owner.map(|r| vec![r]).unwrap_or(allowed)
        } else {
            allowed
        };
        actor.require(&allowed)?;
        let by = me.username.clone();
        match confirm {
            None => {
                let (iid, now_ms) = (id.to_owned(), unix_ms(&self.v.clock));
                let settled = self
                    .v
                    .change(actor, "incident.step", id, move |tx| {
                        Box::pin(async move {
                            tx.note("step", n);
                            if !tx.incident_is_open(&iid).await? {
                                return Err(Error::conflict(
                                    Conflict::IncidentClosed,
                                    format!("incident {iid} is closed"),
                                ));
                            }
                            let ok = tx
                                .incident_step_settle(&iid, n, StepStatus::Done, &by, now_ms, &note)
                                .await?;
                            if !ok {
                                return Err(Error::conflict(
                                    Conflict::StepNotPending,
                                    format!("step {n} was completed already"),
                                ));
                            }
                            tx.incident_timeline_add(
                                &iid,
                                now_ms,
                                &by,
                                "step_done",
                                Some(n),
                                &note,
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .await;
                settled?;
            }
            Some(ConfirmedAction::DeletePost) => {
                let code = totp.ok_or_else(|| {
                    Error::invalid("totp", "this step deletes posts and needs your TOTP code")
                })?;
                self.delete_posts(actor, me, &inc, n, note, code).await?;
            }
        }
        self.view(id).await
    }

    async fn delete_posts(
        &self,
        actor: &Actor,
        me: &crate::identity::users::Person,
        inc: &IncidentRow,
        n: i64,
        note: String,
        code: &str,
    ) -> Result<()> {
        let pending: Vec<String> = self
            .v
            .store
            .incident_evidence(&inc.id)
            .await?
            .into_iter()
            .filter(|e| e.deleted_at.is_none())
            .map(|e| e.platform_id)
            .collect();
        if pending.is_empty() {
            return Err(Error::invalid(
                "step",
                "no captured post is left to delete; capture the post as evidence first",
            ));
        }
        let proof = self.v.people().step_up(me, code).await?;
        let (iid, by, now_ms) = (inc.id.clone(), me.username.clone(), unix_ms(&self.v.clock));
        let list = pending.join(", ");
        // The confirmation is spent (and recorded) before anything is deleted.
        self.v
            .change(actor, "incident.confirm", &inc.id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    tx.note("step", n);
                    tx.note("confirmed", "delete_post");
                    tx.incident_timeline_add(
                        &iid,
                        now_ms,
                        &by,
                        "delete_confirmed",
                        Some(n),
                        &format!("TOTP confirmed deletion of {list}"),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await?;
        let platform = self.v.accounts().row(&inc.account_id).await?.platform;
        let mut deleted = Vec::new();
        let mut failure = None;
        for post in &pending {
            self.record_send(
                actor,
                &inc.account_id,
                &inc.id,
                &format!("delete post {post}"),
            )
            .await?;
            let r = match platform {
                Platform::Wechat => {
                    self.platform_call(
                        &inc.account_id,
                        Method::POST,
                        "/cgi-bin/freepublish/delete",
                        "",
                        json!({ "article_id": post, "index": 0 }),
                        false,
                    )
                    .await
                }
                Platform::Weibo => {
                    self.platform_call(
                        &inc.account_id,
                        Method::POST,
                        "/2/statuses/destroy.json",
                        "",
                        json!({ "id": post }),
                        true,
                    )
                    .await
                }
                Platform::Generic => Err(Error::invalid(
                    "account",
                    "generic accounts have no platform API",
                )),
            };
            match r {
                Ok(_) => deleted.push(post.clone()),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let (iid, by, now, now_ms) = (
            inc.id.clone(),
            me.username.clone(),
            self.v.clock.unix(),
            unix_ms(&self.v.clock),
        );
        let done = failure.is_none();
        let fail_text = failure.as_ref().map(|e| e.to_string()).unwrap_or_default();
        self.v
            .change(actor, "incident.step", &inc.id, move |tx| {
                Box::pin(async move {
                    tx.note("step", n);
                    tx.note("deleted", deleted.clone());
                    for p in &deleted {
                        tx.evidence_mark_deleted(&iid, p, &by, now).await?;
                        tx.incident_timeline_add(&iid, now_ms, &by, "post_deleted", Some(n), p)
                            .await?;
                    }
                    if done {
                        let note = if note.is_empty() {
                            format!("deleted {}", deleted.join(", "))
                        } else {
                            note
                        };
                        tx.incident_step_settle(&iid, n, StepStatus::Done, &by, now_ms, &note)
                            .await?;
                        tx.incident_timeline_add(&iid, now_ms, &by, "step_done", Some(n), &note)
                            .await?;
                    } else {
                        tx.incident_timeline_add(
                            &iid,
                            now_ms,
                            &by,
                            "delete_failed",
                            Some(n),
                            &fail_text,
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Signs the close with the person's TOTP code. The incident closes when two different people
    /// have signed; the same person signing twice is refused (`already_signed`).
    #[instrument(skip_all, fields(incident = %id))]
    pub async fn close(
        &self,
        actor: &Actor,
        id: &str,
        review: &str,
        totp: &str,
    ) -> Result<CloseOutcome> {
        actor.action("incident.close", Some(id));
        let me = actor.require(RESPONDERS)?;
        let review = text("review", review, 4000, false)?;
        let inc = self.row(id).await?;
        if inc.status != IncidentStatus::Open {
            return Err(Error::conflict(
                Conflict::IncidentClosed,
                format!("incident {id} is closed"),
            ));
        }
        let proof = self.v.people().step_up(me, totp).await?;
        let (iid, by, now, now_ms) = (
            id.to_owned(),
            me.username.clone(),
            self.v.clock.unix(),
            unix_ms(&self.v.clock),
        );
        let (closed, signatures) = self
            .v
            .change(actor, "incident.close", id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    if !tx.incident_is_open(&iid).await? {
                        return Err(Error::conflict(
                            Conflict::IncidentClosed,
                            format!("incident {iid} is closed"),
                        ));
                    }
                    if !tx.incident_sign(&iid, &by, now, &review).await? {
                        return Err(Error::conflict(
                            Conflict::AlreadySigned,
                            format!("{by} has already signed the close; a second person must sign"),
                        ));
                    }
                    let signatures = tx.incident_signers(&iid).await?;
                    tx.incident_timeline_add(&iid, now_ms, &by, "close_signed", None, &review)
                        .await?;
                    let closed = signatures >= CLOSE_SIGNATURES;
                    if closed {
                        tx.incident_close(&iid, now, &review).await?;
                        tx.incident_timeline_add(&iid, now_ms, &by, "closed", None, "")
                            .await?;
                    }
                    tx.note("signatures", signatures);
                    tx.note("closed", closed);
                    Ok((closed, signatures))
                })
            })
            .await?;
        Ok(CloseOutcome {
            closed,
            signatures,
            incident: self.view(id).await?,
        })
    }
}

fn summary_text(input: &OpenIncident) -> String {
    input.summary.trim().to_owned()
}
