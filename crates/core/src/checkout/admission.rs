//! The policy checks a new checkout and a claim share (tool bound to the account, account not
//! frozen, policy present, operator active and admitted, network and hours), and why an exclusive
//! account could not be taken.

use super::{Checkouts, denial};
use crate::actor::Actor;
use crate::error::{Conflict, Error, Result};
use crate::identity::Roles;
use crate::identity::clients::Client;
use crate::policy::Subject;
use crate::store::types::AccountStatus;

impl Checkouts {
    /// Policy checks shared by a new checkout and a claim: account usable, tool and person
    /// admitted, source network and hours allowed.
    pub(super) async fn admit(
        &self,
        actor: &Actor,
        client: &Client,
        account: &str,
        operator: &str,
    ) -> Result<(crate::policy::AccountPolicy, crate::store::users::UserRow)> {
        if !client.may_use(account) {
            return Err(Error::NotPermitted(format!(
                "this client key is not bound to account {account}"
            )));
        }
        let acct = self.accounts.row(account).await?;
        if acct.status == AccountStatus::Frozen {
            return Err(Error::AccountFrozen(acct.id));
        }
        let policies = self.policies.current();
        let policy = policies.for_account(&acct.id).cloned().ok_or_else(|| {
            Error::NotPermitted(format!(
                "account {} has no access policy; nothing may check it out",
                acct.id
            ))
        })?;
        let user = self
            .store
            .user_by_name(operator)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| {
                Error::NotPermitted(format!("operator {operator:?} is not an active user"))
            })?;
        let roles = Roles::from_stored(&user.roles)?.names();
        policy
            .admits(&Subject {
                username: &user.username,
                roles: &roles,
                client_id: &client.id,
                client_name: &client.name,
            })
            .map_err(denial)?;
        let source = actor
            .source()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        policy.source_allowed(source).map_err(denial)?;
        policy.hours_allowed(self.clock.now()).map_err(denial)?;
        Ok((policy, user))
    }

    /// Why an insert or claim on `account` did not take: the account froze in between, or an
    /// exclusive account is held by someone else.
    pub(super) async fn not_taken(&self, account: &str) -> Error {
        match self.accounts.row(account).await {
            Ok(a) if a.status == AccountStatus::Frozen => Error::AccountFrozen(a.id),
            _ => Error::conflict(
                Conflict::AccountCheckedOut,
                format!(
                    "account {account} is exclusive and already checked out; wait for check-in or expiry"
                ),
            ),
        }
    }
}
