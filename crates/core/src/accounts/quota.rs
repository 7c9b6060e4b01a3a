//! WeChat's daily API quota: resetting it (`clear_quota/v2`) with the AppSecret, which only the
//! vault holds, as an admin action with a step-up, ten times a month at most.

use tracing::instrument;

use super::credential::Platform;
use super::service::Accounts;
use crate::actor::Actor;
use crate::error::{Conflict, Error, Result};
use crate::identity::Role;

/// WeChat allows ten `clear_quota` resets per AppID a month.
const QUOTA_RESETS_PER_MONTH: u32 = 10;

/// The start of the current month in Beijing time, in unix milliseconds: WeChat counts quota
/// resets per calendar month.
fn beijing_month_start_ms(now: time::OffsetDateTime) -> i64 {
    let bj = now
        .to_offset(time::UtcOffset::from_whole_seconds(8 * 3600).unwrap_or(time::UtcOffset::UTC));
    let first = bj
        .replace_day(1)
        .unwrap_or(bj)
        .replace_time(time::Time::MIDNIGHT);
    first.unix_timestamp() * 1000
}

// WeChat's daily API quota: resetting it with the AppSecret, which only the vault holds.
impl Accounts {
    /// How many `clear_quota` resets this account's AppID has left this month: ten, less the
    /// resets the vault made (`account.clear_quota.done` entries since the 1st, Beijing time).
    pub async fn quota_resets_left(&self, account: &str) -> Result<u32> {
        let filter = crate::store::audit::AuditFilter {
            target: Some(account.to_owned()),
            action: Some("account.clear_quota.done".into()),
            since_ms: Some(beijing_month_start_ms(self.clock.now())),
            limit: i64::from(QUOTA_RESETS_PER_MONTH) + 1,
            ..Default::default()
        };
        let used = self.store.audit_query(&filter).await?.len();
        Ok(QUOTA_RESETS_PER_MONTH.saturating_sub(u32::try_from(used).unwrap_or(u32::MAX)))
    }

    /// Resets a WeChat account's API call counts (after 45009, a spent daily quota) with its
    /// AppSecret: an admin with a step-up, at most ten times a month. The intent is recorded
    /// (and the step-up spent) before the call leaves; the reset is recorded when WeChat confirms
    /// it. Answers the resets left this month.
    #[instrument(skip_all, fields(account = %account))]
    pub async fn clear_quota(
        &self,
        actor: &Actor,
        account: &str,
        totp: Option<&str>,
    ) -> Result<u32> {
        actor.action("account.clear_quota", Some(account));
        let me = actor.require(&[Role::Admin])?;
        let (row, cred) = self.current_credential(account).await?;
        if row.platform != Platform::Wechat {
            return Err(Error::invalid(
                "account",
                "only a WeChat account's API quota can be reset",
            ));
        }
        let left = self.quota_resets_left(&row.id).await?;
        actor.detail("resets_left_before", left);
        if left == 0 {
            return Err(Error::conflict(
                Conflict::QuotaResetsSpent,
                "this AppID's ten quota resets for the month are spent (WeChat's limit, 48006): the quota returns at midnight Beijing time",
            ));
        }
        let proof = self.people.authorize(me, totp).await?;
        self.audit
            .change(actor, "account.clear_quota", &row.id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    tx.note("call", "POST cgi-bin/clear_quota/v2");
                    Ok(())
                })
            })
            .await?;
        self.broker
            .clear_quota(&cred)
            .await
            .map_err(Error::from_platform)?;
        self.audit
            .record(actor.entry("account.clear_quota.done", &row.id))
            .await?;
        Ok(left - 1)
    }
}
