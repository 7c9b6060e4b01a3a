//! The checks that prove a person is present: a TOTP code checked against their seed (counted
//! toward the lockout, never accepted twice) and spent inside the change it authorises, and the
//! step-up of sensitive actions (a code, or a window a code opened on the session).

use crate::identity::totp::TotpProof;
use tracing::instrument;

use super::{People, Person, seed_aad};
use crate::actor::{Actor, Principal};
use crate::crypto::SecretBytes;
use crate::error::{Conflict, Error, Result, TotpRefusal};
use crate::identity::sessions::StepUpWindow;
use crate::identity::{Role, totp};
use crate::store::Tx;
use crate::store::users::UserRow;

/// A step-up code that must be there: a person's sensitive action without one is a clear 400.
pub(crate) fn required_totp(totp: Option<&str>) -> Result<&str> {
    given(totp).ok_or_else(|| Error::invalid("totp", "this action needs your current TOTP code"))
}

fn given(totp: Option<&str>) -> Option<&str> {
    totp.map(str::trim).filter(|t| !t.is_empty())
}

/// What lets a person's sensitive action through, spent with [`Self::spend`] inside the
/// transaction of the change: their TOTP code given with it (which also opens their session's
/// step-up window, when windows are configured), or the window a step-up opened earlier.
#[derive(Debug)]
#[must_use = "a step-up is spent with `spend` inside the change's transaction"]
pub enum StepUp {
    Code {
        proof: TotpProof,
        /// The session whose window this code opens, and until when.
        opens: Option<(Vec<u8>, i64)>,
    },
    Window {
        session: Vec<u8>,
        window: StepUpWindow,
        now: i64,
    },
}

impl StepUp {
    /// Spends the code (and opens the window, linking this change's entry as its step-up), or
    /// checks inside the transaction that the window still stands and names its step-up entry
    /// in this change's entry.
    pub async fn spend(self, tx: &mut Tx) -> Result<()> {
        match self {
            StepUp::Code { proof, opens } => {
                proof.spend(tx).await?;
                tx.note("step_up", "code");
                if let Some((session, until)) = opens
                    && tx.session_open_step_up(&session, until).await?
                {
                    tx.note("step_up_until", crate::clock::rfc3339_unix(until));
                }
                Ok(())
            }
            StepUp::Window {
                session,
                window,
                now,
            } => {
                if !tx.session_step_up_open(&session, window.seq, now).await? {
                    return Err(Error::invalid(
                        "totp",
                        "your step-up has ended; enter your current TOTP code",
                    ));
                }
                tx.note("step_up_seq", window.seq);
                Ok(())
            }
        }
    }
}

impl People {
    /// The decrypted TOTP seed of a user; stays inside the vault.
    pub(crate) async fn seed(&self, row: &UserRow) -> Result<SecretBytes> {
        self.keys.know_term_of(&row.totp_seed).await?;
        Ok(self.keys.open(&seed_aad(&row.username), &row.totp_seed)?)
    }

    pub(super) fn locked(&self, row: &UserRow) -> Option<String> {
        row.locked_until
            .filter(|&t| t > self.clock.unix())
            .map(crate::clock::rfc3339_unix)
    }

    /// Counts a failure toward the lockout; returns the lock end if the user is locked now.
    pub(super) async fn count_failure(&self, row: &UserRow) -> Result<Option<i64>> {
        let now = self.clock.unix();
        let lock_until = now + i64::from(self.config.lockout.minutes) * 60;
        let max = i64::from(self.config.lockout.max_failures);
        let locked = self
            .store
            .user_record_failure(row.id, max, now, lock_until)
            .await?;
        if locked.is_some() {
            tracing::warn!(user = %row.username, "user locked after repeated failures");
        }
        Ok(locked)
    }

    /// Checks a TOTP code of a person: refuses a locked or disabled user, a wrong code (counted
    /// toward the lockout) and a code whose step was already used (also after a restart). The
    /// proof is spent in the transaction of the change it authorises.
    #[instrument(skip_all, fields(user = %row.username))]
    pub(crate) async fn check_totp(&self, row: &UserRow, code: &str) -> Result<TotpProof> {
        if row.disabled {
            return Err(Error::NotPermitted(format!(
                "user {} is disabled",
                row.username
            )));
        }
        if let Some(until) = self.locked(row) {
            return Err(Error::UserLocked { until });
        }
        let seed = self.seed(row).await?;
        let now = self.clock.unix();
        let Some(step) = totp::check(&seed, code, now) else {
            if let Some(until) = self.count_failure(row).await? {
                return Err(Error::UserLocked {
                    until: crate::clock::rfc3339_unix(until),
                });
            }
            return Err(Error::TotpInvalid(TotpRefusal::Wrong));
        };
        if step <= row.totp_last_step {
            return Err(Error::TotpInvalid(TotpRefusal::Replayed));
        }
        Ok(TotpProof {
            user_id: row.id,
            step,
            now,
        })
    }

    /// The acting person's own code, for a decision that asks for one every time (approving or
    /// denying a post, closing an incident); no window opens or counts.
    pub(crate) async fn step_up(&self, person: &Person, code: &str) -> Result<TotpProof> {
        let row = self.row(&person.username).await?;
        self.check_totp(&row, code).await
    }

    /// The step-up of a sensitive action (people, tools, rotation, rollback, freeze): the code
    /// given with it, which opens the session's window for `session.step_up_minutes`; or, with no
    /// code, a window still open on the session. A locked or disabled person gets neither.
    pub(crate) async fn authorize(&self, person: &Person, code: Option<&str>) -> Result<StepUp> {
        let row = self.row(&person.username).await?;
        let now = self.clock.unix();
        if let Some(code) = given(code) {
            let proof = self.check_totp(&row, code).await?;
            let minutes = i64::from(self.config.session.step_up_minutes);
            let opens = person
                .session
                .as_ref()
                .filter(|_| minutes > 0)
                .map(|s| (s.hash.clone(), now + minutes * 60));
            return Ok(StepUp::Code { proof, opens });
        }
        if row.disabled {
            return Err(Error::NotPermitted(format!(
                "user {} is disabled",
                row.username
            )));
        }
        if let Some(until) = self.locked(&row) {
            return Err(Error::UserLocked { until });
        }
        match (&person.session, person.step_up()) {
            (Some(s), Some(window)) if window.until > now => Ok(StepUp::Window {
                session: s.hash.clone(),
                window,
                now,
            }),
            _ => Err(Error::invalid(
                "totp",
                "this action needs your current TOTP code (or a step-up in this session)",
            )),
        }
    }

    /// The person signed in on the acting session.
    pub fn whoami<'a>(&self, actor: &'a Actor) -> Result<&'a Person> {
        match &actor.who {
            Principal::Person(p) => Ok(p),
            _ => Err(Error::NotPermitted("this needs a person's session".into())),
        }
    }

    /// Opens the session's step-up window with the person's code and nothing else: what the
    /// console's and the CLI's "step up" does before a run of changes. Returns the window.
    pub async fn open_step_up(&self, actor: &Actor, code: &str) -> Result<StepUpWindow> {
        actor.action("auth.step_up", None);
        let me = actor.require(&[Role::Admin, Role::Auditor, Role::Approver, Role::Publisher])?;
        let Some(session) = me.session.clone() else {
            return Err(Error::NotPermitted(
                "a step-up window belongs to a signed-in session".into(),
            ));
        };
        if self.config.session.step_up_minutes == 0 {
            return Err(Error::conflict(
                Conflict::StepUpOff,
                "step-up windows are switched off here (session.step_up_minutes = 0): give your code with each change",
            ));
        }
        let step = self.authorize(me, Some(required_totp(Some(code))?)).await?;
        let name = me.username.clone();
        self.audit
            .change(actor, "auth.step_up", &name, move |tx| {
                Box::pin(async move { step.spend(tx).await })
            })
            .await?;
        let person = self.sessions.reread(&session).await?;
        person.step_up().ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "step-up committed but its window is not open"
            ))
        })
    }
}
