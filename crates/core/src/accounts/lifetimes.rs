//! Credential lifetimes: a platform token's expiry as the platform says it (Weibo's OAuth token,
//! from the heartbeat), and the reminders of expiring tokens and old credentials.

use super::service::Accounts;
use crate::actor::Actor;
use crate::clock::rfc3339_unix;
use crate::error::Result;

/// A reminder goes out at most this often per account and kind.
const REMIND_EVERY_SECS: i64 = 86_400;

// Credential lifetimes: the platform token's expiry as the platform says it, and the reminders.
impl Accounts {
    /// Records that the account's platform token has `left` seconds to live (the heartbeat's
    /// answer), as a system change with its audit entry, when it moved by more than an hour from
    /// what was known: a new token, or the first word of one.
    pub async fn learn_token_expiry(&self, account: &str, left: i64) {
        let now = self.clock.unix();
        let at = now.saturating_add(left);
        let known = match self.store.account_get(account).await {
            Ok(Some(row)) => row.token_expires_at,
            _ => return,
        };
        if known.is_some_and(|k| (k - at).abs() <= 3600) {
            return;
        }
        let acct = account.to_owned();
        let recorded = self
            .audit
            .change(
                &Actor::system(),
                "account.token_expiry",
                account,
                move |tx| {
                    Box::pin(async move {
                        tx.note("token_expires_at", rfc3339_unix(at));
                        tx.account_set_token_expiry(&acct, at).await?;
                        Ok(())
                    })
                },
            )
            .await;
        if let Err(e) = recorded {
            tracing::error!(account, error = %e, "token expiry not recorded");
        }
    }

    /// Reminds the channels of every credential older than `lifetimes.secret_max_age_days`, and
    /// of every platform token expiring within `lifetimes.token_warn_days` (or expired), at most
    /// once a day per account and kind. Returns how many reminders went out.
    pub async fn lifetime_reminders(&self) -> Result<usize> {
        let now = self.clock.unix();
        let max_age = i64::from(self.lifetimes.secret_max_age_days) * 86_400;
        let warn = i64::from(self.lifetimes.token_warn_days) * 86_400;
        let mut sent = 0;
        for row in self.store.accounts_list().await? {
            let mut due = Vec::new();
            if now - row.rotated_at >= max_age {
                due.push((
                    "credential.rotation_due",
                    format!(
                        "凭据已 {} 天未更换 credential of {} not rotated for {} days (policy: {} days): rotate it",
                        (now - row.rotated_at) / 86_400,
                        row.id,
                        (now - row.rotated_at) / 86_400,
                        self.lifetimes.secret_max_age_days
                    ),
                ));
            }
            if let Some(exp) = row.token_expires_at
                && exp - now <= warn
            {
                let text = if exp <= now {
                    format!(
                        "平台令牌已过期 the platform token of {} expired at {}: re-authorise the account and rotate the new token in",
                        row.id,
                        rfc3339_unix(exp)
                    )
                } else {
                    format!(
                        "平台令牌 {} 天后过期 the platform token of {} expires at {} ({} days): re-authorise the account and rotate the new token in",
                        (exp - now) / 86_400,
                        row.id,
                        rfc3339_unix(exp),
                        (exp - now) / 86_400
                    )
                };
                due.push(("credential.token_expiring", text));
            }
            for (event, summary) in due {
                let key = (row.id.clone(), event);
                {
                    let mut last = self
                        .reminded
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if last.get(&key).is_some_and(|t| now - t < REMIND_EVERY_SECS) {
                        continue;
                    }
                    last.insert(key, now);
                }
                self.notifier
                    .send(crate::notify::Notice::new(event, &row.id, summary));
                sent += 1;
            }
        }
        Ok(sent)
    }
}
