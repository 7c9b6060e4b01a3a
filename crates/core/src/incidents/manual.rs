//! Completing a manual step as its owner role, and the step that confirms the deletion of the
//! captured posts with the owner's TOTP code before anything is deleted.

use crate::platforms::Method;
use serde_json::json;
use tracing::instrument;

use super::{IncidentView, Incidents, text};
use crate::accounts::Platform;
use crate::actor::Actor;
use crate::audit::writer::unix_ms;
use crate::error::{Conflict, Error, Result};
use crate::identity::Role;
use crate::policy::ConfirmedAction;
use crate::store::incidents::IncidentRow;
use crate::store::types::{IncidentStatus, StepStatus};

impl Incidents {
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
                let (iid, now_ms) = (id.to_owned(), unix_ms(&self.clock));
                let settled = self
                    .audit
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
        let proof = self.people.step_up(me, code).await?;
        let (iid, by, now_ms) = (inc.id.clone(), me.username.clone(), unix_ms(&self.clock));
        let list = pending.join(", ");
        // The confirmation is spent (and recorded) before anything is deleted.
        self.audit
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
        let platform = self.accounts.row(&inc.account_id).await?.platform;
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
            self.clock.unix(),
            unix_ms(&self.clock),
        );
        let done = failure.is_none();
        let fail_text = failure.as_ref().map(|e| e.to_string()).unwrap_or_default();
        self.audit
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
}
