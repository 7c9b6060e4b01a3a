//! Weibo re-authorisation: the OAuth code exchange, done in the console by an admin, stored as a
//! rotation of the account's credential.

use tracing::instrument;

use super::credential::Platform;
use super::service::Accounts;
use super::service::PendingGrant;
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::Role;

/// How long an admin has to come back from Weibo's authorisation page.
const GRANT_WINDOW_SECS: i64 = 600;

// Weibo re-authorisation: the OAuth code exchange, done in the console by an admin, stored as a
// rotation of the account's credential.
impl Accounts {
    /// Starts re-authorising a Weibo account: the URL of Weibo's authorisation page, which sends
    /// the admin's browser back to `redirect_uri` with a code and the `state` made here.
    pub async fn weibo_authorize(
        &self,
        actor: &Actor,
        account: &str,
        redirect_uri: &str,
    ) -> Result<String> {
        actor.action("account.weibo_authorize", Some(account));
        let me = actor.require(&[Role::Admin])?;
        let (row, cred) = self.current_credential(account).await?;
        if row.platform != Platform::Weibo {
            return Err(Error::invalid(
                "account",
                "only a Weibo account is re-authorised through OAuth",
            ));
        }
        let app_key = cred
            .app_key
            .as_deref()
            .ok_or_else(|| Error::invalid("account", "the account's credential has no app_key"))?;
        let mut raw = [0u8; 24];
        crate::crypto::random_bytes(&mut raw)?;
        let state = hex::encode(raw);
        let now = self.clock.unix();
        {
            let mut grants = self
                .weibo_grants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            grants.retain(|_, g| g.expires_at > now);
            grants.insert(
                crate::crypto::sha256(state.as_bytes()),
                PendingGrant {
                    account: row.id.clone(),
                    admin: me.username.clone(),
                    redirect_uri: redirect_uri.to_owned(),
                    expires_at: now + GRANT_WINDOW_SECS,
                },
            );
        }
        self.broker
            .weibo()
            .authorize_url(app_key, redirect_uri, &state)
            .map_err(|e| Error::invalid("account", e.to_string()))
    }

    /// The account a pending re-authorisation of this admin is for (for the confirmation page).
    pub fn weibo_grant_account(&self, actor: &Actor, state: &str) -> Result<String> {
        let me = actor.require(&[Role::Admin])?;
        let now = self.clock.unix();
        self.weibo_grants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&crate::crypto::sha256(state.as_bytes()))
            .filter(|g| g.admin == me.username && g.expires_at > now)
            .map(|g| g.account.clone())
            .ok_or_else(no_grant)
    }

    /// Finishes a re-authorisation: the code Weibo sent back is exchanged for the account's new
    /// access token (recorded before it leaves), which is stored as the next credential version
    /// with the admin's step-up, like a rotation.
    #[instrument(skip_all)]
    pub async fn weibo_reauthorize(
        &self,
        actor: &Actor,
        state: &str,
        code: &str,
        totp: Option<&str>,
    ) -> Result<i64> {
        actor.action("account.reauthorize", None);
        let me = actor.require(&[Role::Admin])?;
        let code = code.trim();
        if code.is_empty() || code.len() > 256 {
            return Err(Error::invalid(
                "code",
                "the code Weibo sent back is missing",
            ));
        }
        let now = self.clock.unix();
        let key = crate::crypto::sha256(state.as_bytes());
        let grant = {
            let mut grants = self
                .weibo_grants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match grants.get(&key) {
                Some(g) if g.admin == me.username && g.expires_at > now => grants.remove(&key),
                _ => None,
            }
        }
        .ok_or_else(no_grant)?;
        actor.action("account.reauthorize", Some(&grant.account));
        let (row, cred) = self.current_credential(&grant.account).await?;
        let (Some(app_key), Some(app_secret)) = (cred.app_key.as_deref(), cred.app_secret.as_ref())
        else {
            return Err(Error::invalid(
                "account",
                "the account's credential needs app_key and app_secret to exchange a code",
            ));
        };
        let proof = self.people.authorize(me, totp).await?;
        // The code and the app secret leave the vault: recorded first.
        self.audit
            .record(
                actor
                    .entry("platform.send", &row.id)
                    .detail("call", "POST oauth2/access_token"),
            )
            .await?;
        let issued = self
            .broker
            .weibo()
            .exchange_code(app_key, app_secret, code, &grant.redirect_uri)
            .await
            .map_err(Error::from_platform)?;
        let mut fresh = cred.clone();
        fresh.access_token = Some(issued.access_token);
        let version = self
            .add_version(
                actor,
                "account.reauthorize",
                &row,
                "Weibo re-authorisation (OAuth code exchange)".into(),
                fresh,
                proof,
                true,
            )
            .await?;
        self.after_credential_change(&row.id).await;
        self.learn_token_expiry(&row.id, issued.expires_in).await;
        Ok(version)
    }
}

fn no_grant() -> Error {
    Error::NotPermitted(
        "no re-authorisation of yours is waiting with this state (it expired after 10 minutes, was used, or another admin started it): start again from the account page".into(),
    )
}
