//! Opening an incident: the request, what triggered it, and the one transaction that inserts the
//! incident with its steps and runs the steps that only change vault state. The steps that leave
//! the vault run after it commits (see `auto`).

use serde::Deserialize;
use tracing::instrument;

use super::{IncidentView, Incidents, RESPONDERS, text, who};
use crate::actor::Actor;
use crate::audit::chain::Checkpoint;
use crate::audit::writer::unix_ms;
use crate::error::{Error, Result};
use crate::identity::Role;
use crate::policy::{AutoAction, ConfirmedAction, StepKind};
use crate::store::incidents::{NewIncident, NewStep};
use crate::store::types::StepStatus;

/// `POST /incidents`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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

fn new_incident_id() -> Result<String> {
    let mut raw = [0u8; 8];
    crate::crypto::random_bytes(&mut raw)?;
    Ok(format!("in_{}", hex::encode(raw)))
}

impl Incidents {
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
            .policies
            .playbooks()
            .get(&input.playbook)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("playbook {:?}", input.playbook)))?;
        let account = self.accounts.row(&input.account).await?;
        let id = new_incident_id()?;
        actor.detail("incident_id", id.clone());
        actor.detail("playbook", playbook.id.clone());
        let now = self.clock.unix();
        let now_ms = unix_ms(&self.clock);
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
        let checkpoint_key = self.keys.mac().checkpoint.clone();
        let (iid, aid, pid, title, trig, by2) = (
            id.clone(),
            account.id.clone(),
            playbook.id.clone(),
            playbook.title.clone(),
            trigger.as_text(),
            by.clone(),
        );
        let post2 = post.clone();
        self.audit
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
            self.broker.invalidate(&account.id);
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
}

fn summary_text(input: &OpenIncident) -> String {
    input.summary.trim().to_owned()
}
