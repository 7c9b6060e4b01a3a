//! The automated steps that leave the vault (cancel platform tokens, capture the post as evidence,
//! notify), run after the opening commits. Each settles in its own audit entry; a failure is
//! recorded on its step and never holds up the others.

use super::Incidents;
use crate::accounts::Platform;
use crate::actor::Actor;
use crate::audit::writer::unix_ms;
use crate::error::Result;
use crate::policy::Playbook;
use crate::store::types::StepStatus;

impl Incidents {
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
        let (iid, by, now_ms) = (incident.to_owned(), by.to_owned(), unix_ms(&self.clock));
        self.audit
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

    pub(super) async fn refresh_platform_token(
        &self,
        actor: &Actor,
        incident: &str,
        n: i64,
        account: &str,
        by: &str,
    ) {
        let (status, note) = match self.accounts.current_credential(account).await {
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
                    Ok(()) => match self.broker.cancel_outstanding(account, &cred).await {
                        Ok(c) if c.stable_forced => (
                            StepStatus::Done,
                            format!(
                                "stable token force-refreshed ({} force_refresh left today); classic token fetched",
                                cred.app_id.as_deref().map_or(0, |a| self
                                    .broker
                                    .wechat_budget(a)
                                    .force_refreshes_left)
                            ),
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

    pub(super) async fn capture_evidence(
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
                let (now, now_ms) = (self.clock.unix(), unix_ms(&self.clock));
                let note = format!("post {post} captured, sha256 {digest}");
                self.audit
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

    pub(super) async fn notify_step(
        &self,
        incident: &str,
        n: i64,
        account: &str,
        playbook: &Playbook,
        summary: &str,
        by: &str,
    ) {
        let channels = self.config.notify.len();
        let note = format!("queued to {channels} channel(s)");
        if let Err(e) = self.settle(incident, n, StepStatus::Done, by, note).await {
            tracing::error!(incident, error = %e, "notify step not recorded");
        }
        self.notifier.send(crate::notify::Notice {
            event: "incident.opened".into(),
            account: account.to_owned(),
            summary: format!(
                "应急事件 incident {incident} opened on {account}: {} — {summary}",
                playbook.title
            ),
            checkout_id: None,
            incident_id: Some(incident.to_owned()),
            to: None,
        });
    }
}
