//! The two-person close: each responder signs with their TOTP code, and the incident closes once
//! two different people have signed.

use serde::Serialize;
use tracing::instrument;

use super::{IncidentView, Incidents, RESPONDERS, text};
use crate::actor::Actor;
use crate::audit::writer::unix_ms;
use crate::error::{Conflict, Error, Result};
use crate::store::types::IncidentStatus;

/// Signatures a close needs, from different people.
pub const CLOSE_SIGNATURES: i64 = 2;

/// What a close signature did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CloseOutcome {
    /// True once two different people signed: the incident is closed.
    pub closed: bool,
    pub signatures: i64,
    pub incident: IncidentView,
}

impl Incidents {
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
        let proof = self.people.step_up(me, totp).await?;
        let (iid, by, now, now_ms) = (
            id.to_owned(),
            me.username.clone(),
            self.clock.unix(),
            unix_ms(&self.clock),
        );
        let (closed, signatures) = self
            .audit
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
