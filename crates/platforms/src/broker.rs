//! The token broker: the vault's only fetcher of WeChat access tokens, and its leak detector.
//!
//! WeChat lets an app hold one live token per pool: a new classic token (`/cgi-bin/token`) cancels
//! the previous one after a short overlap, and a `force_refresh` stable token cancels the previous
//! stable token at once. Anyone else fetching tokens with the AppSecret therefore breaks the vault
//! (and is a sign the secret leaked), so the broker is the single fetcher and watches for others:
//!
//! - **Stable token cache.** [`Broker::wechat_token`] fetches a normal-mode stable token per account
//!   and caches it until [`REFRESH_MARGIN_SECS`] before expiry, by [`Clock`]. Each account has its
//!   own async mutex held across the fetch, and the cache is re-checked after the lock is taken, so
//!   any number of concurrent callers on a cold cache share one fetch.
//! - **Retry once.** [`Broker::forward`] retries a call once when WeChat rejects the token (40001
//!   cancelled, 42001 expired), after renewing it (normal mode; `force_refresh` only if WeChat hands
//!   back the very token it rejected).
//! - **External cancellation.** Only `force_refresh` or an AppSecret reset cancels a stable token,
//!   and the broker force-refreshes only in [`Broker::force_refresh`], which updates its cache. So
//!   a 40001 for the token the broker currently caches, fetched with the credential it is still
//!   given, means someone else holds the AppSecret: [`SecurityEventKind::TokenCancelledExternally`].
//!   This is reported however old the token is (the canary check has no age window either); the
//!   event detail says how long ago it was fetched.
//! - **Canary.** Per WeChat account the broker keeps one classic-pool token that it never hands
//!   out. [`Broker::canary_check`] proves it alive with `getcallbackip`; a 40001 means someone
//!   fetched a classic token with the AppSecret ([`SecurityEventKind::CanaryTripped`]). WeChat keeps
//!   the previous classic token alive for five minutes, so a trip shows up at the first check after
//!   that overlap. The same check probes the cached stable token. Limits: an outsider using
//!   normal-mode `stable_token` gets the vault's own token and cancels nothing, which no check can
//!   see.
//! - [`Broker::invalidate`] forgets an account's tokens (stable and canary) after rotation, freeze
//!   or an incident, so nothing fetched with an old secret is used or mistaken for a leak.
//!
//! Scheduling: [`Broker::spawn_canary`] runs [`Broker::canary_round`] every
//! `platforms.canary_interval_seconds`; heartbeats are left to the caller ([`Broker::heartbeat`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use tokio::sync::mpsc::UnboundedSender;

use super::wechat::{ERR_INVALID_TOKEN, ERR_TOKEN_EXPIRED};
use super::weibo::WeiboClient;
use super::{IssuedToken, PlatformError, PlatformResponse, WechatClient, http_client};
use crate::config::PlatformsConfig;
use crate::credential::Credential;
use mediavault_base::Clock;
use mediavault_base::crypto::{SecretString, ct_eq};
use mediavault_store::types::Platform;

/// A token is renewed this long before it expires, so calls in flight never carry a dying token.
pub const REFRESH_MARGIN_SECS: i64 = 300;

/// Something a security officer must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub account: String,
    pub kind: SecurityEventKind,
    /// Fixed text plus platform codes and ages; never a secret, token or platform identifier.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityEventKind {
    /// The canary classic token was cancelled: someone fetched a classic token with the AppSecret.
    CanaryTripped,
    /// The vault's stable token was cancelled: someone force-refreshed it or reset the AppSecret.
    TokenCancelledExternally,
    /// The platform refused the stored credential at a heartbeat.
    HeartbeatFailed,
}

impl SecurityEventKind {
    /// Stable names, for audit actions, anomaly rules and playbook triggers.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::CanaryTripped => "platform.canary_tripped",
            SecurityEventKind::TokenCancelledExternally => "platform.token_cancelled_externally",
            SecurityEventKind::HeartbeatFailed => "platform.heartbeat_failed",
        }
    }
}

/// One API call to forward: what the publishing tool sent, minus the vault's own framing.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    pub method: Method,
    /// The platform path, e.g. `/cgi-bin/draft/add` or `/2/statuses/share.json`.
    pub path: &'a str,
    /// The raw query string without `?`; any `access_token` in it is dropped.
    pub query: &'a str,
    pub body: Bytes,
    pub content_type: Option<&'a str>,
}

/// What one [`Broker::canary_check`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CanaryOutcome {
    /// The canary token had been cancelled (an event was emitted).
    pub canary_tripped: bool,
    /// A new canary token was fetched (first check, near expiry, tripped, or new credential).
    pub canary_renewed: bool,
    /// A cached stable token existed and was probed.
    pub stable_checked: bool,
    /// The cached stable token had been cancelled by someone else (an event was emitted).
    pub stable_cancelled: bool,
}

pub struct Broker {
    wechat: WechatClient,
    weibo: WeiboClient,
    clock: Clock,
    events: UnboundedSender<SecurityEvent>,
    canary_interval: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// When the broker last force-refreshed each account's stable token (by [`Clock`]); WeChat
    /// allows one `force_refresh` per 30 seconds, and one already cancelled every older token.
    forced_at: Mutex<HashMap<String, i64>>,
    /// Asked before every token fetch (see [`FetchPermit`]); none: always allowed.
    permit: std::sync::OnceLock<Arc<dyn FetchPermit>>,
    /// How long one token fetch may take (the HTTP client's timeout).
    fetch_timeout: Duration,
    /// Today's token fetches per AppID, against WeChat's daily limits (in memory: a restart
    /// forgets what this process spent, so the count may show more left than WeChat allows).
    spent: Mutex<HashMap<String, DaySpend>>,
}

/// WeChat allows 20 `force_refresh` stable tokens per AppID a day.
pub const FORCE_REFRESHES_PER_DAY: u32 = 20;
/// WeChat allows 2,000 classic `cgi-bin/token` fetches per AppID a day.
pub const CLASSIC_FETCHES_PER_DAY: u32 = 2000;

/// One AppID's fetches on one day (Beijing time, when WeChat resets its counts).
#[derive(Debug, Default, Clone, Copy)]
struct DaySpend {
    day: i64,
    forced: u32,
    classic: u32,
}

/// What is left of an AppID's daily token budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WechatBudget {
    pub force_refreshes_left: u32,
    pub classic_fetches_left: u32,
    /// When WeChat resets the counts: the next midnight, Beijing time (unix seconds).
    pub resets_at: i64,
}

/// The day number of `unix` in Beijing time (UTC+8, no daylight saving).
fn beijing_day(unix: i64) -> i64 {
    (unix + 8 * 3600).div_euclid(86_400)
}

const FORCE_BUDGET_SPENT: PlatformError = PlatformError::Refused {
    platform: "wechat",
    detail: "the AppID's 20 force_refresh stable tokens for today are spent (WeChat's daily limit; it resets at midnight Beijing time): the old token cannot be cancelled by a forced refresh until then; reset the AppSecret in the WeChat console to cancel every token at once",
};

const CLASSIC_BUDGET_SPENT: PlatformError = PlatformError::Refused {
    platform: "wechat",
    detail: "the AppID's 2,000 classic access-token fetches for today are spent (WeChat's daily limit; it resets at midnight Beijing time)",
};

/// Whether this process may fetch a platform token now. A fetch is an act the database cannot
/// fence: in a cluster, only the active node may, and only while its lease outlasts the fetch, so
/// a node that lost the lease never makes WeChat cancel the token the new active node holds.
pub trait FetchPermit: Send + Sync {
    /// True if a fetch that takes at most `within` may start now.
    fn confirm(&self, within: Duration) -> futures_util::future::BoxFuture<'_, bool>;
}

const NOT_ACTIVE: PlatformError = PlatformError::Refused {
    platform: "wechat",
    detail: "this vault node is not the active node of its cluster (or its lease is about to end), so it fetches no platform token",
};

/// WeChat refuses a second `force_refresh` of the stable token within this many seconds.
pub const FORCE_REFRESH_SPACING_SECS: i64 = 30;

/// What [`Broker::cancel_outstanding`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cancelled {
    /// A `force_refresh` stable token was fetched (false: one was fetched less than 30 s ago,
    /// which already cancelled every older stable token).
    pub stable_forced: bool,
    /// A classic token was fetched (it becomes the canary, so the canary does not trip on it).
    pub classic_fetched: bool,
}

/// Per-account state. The async mutexes are held across platform round trips on purpose: that is
/// what makes concurrent cold-cache callers share one fetch.
#[derive(Default)]
struct Slot {
    stable: tokio::sync::Mutex<Option<Cached>>,
    canary: tokio::sync::Mutex<Option<Cached>>,
    /// Set when [`Broker::invalidate`] drops this slot; callers still holding it must not treat
    /// what it cached as the vault's current token.
    invalidated: AtomicBool,
}

struct Cached {
    token: SecretString,
    /// The credential the token was fetched with, so a rotated credential is never served a
    /// token fetched with the old one (even without `invalidate`).
    app_id: String,
    secret: SecretString,
    fetched_at: i64,
    expires_at: i64,
    refresh_at: i64,
}

impl Cached {
    fn new(
        issued: IssuedToken,
        app_id: &str,
        secret: &SecretString,
        now: i64,
        previous: Option<&Cached>,
    ) -> Self {
        let expires_at = now.saturating_add(issued.expires_in);
        // Normal-mode stable_token keeps answering with the current token until it expires, so
        // renewing early yields the same token again; then the only way to a new one is to wait
        // for expiry (a 42001 in between is handled by the retry). A new token is renewed early.
        let reissued = previous.is_some_and(|p| p.holds(&issued.token));
        let margin = if reissued {
            0
        } else {
            REFRESH_MARGIN_SECS.min(issued.expires_in / 2)
        };
        Self {
            fetched_at: if reissued {
                previous.map_or(now, |p| p.fetched_at)
            } else {
                now
            },
            token: issued.token,
            app_id: app_id.to_owned(),
            secret: secret.clone(),
            expires_at,
            refresh_at: expires_at - margin,
        }
    }

    fn same_credential(&self, app_id: &str, secret: &SecretString) -> bool {
        self.app_id == app_id && ct_eq(self.secret.expose().as_bytes(), secret.expose().as_bytes())
    }

    fn usable(&self, app_id: &str, secret: &SecretString, now: i64) -> bool {
        now < self.refresh_at && self.same_credential(app_id, secret)
    }

    fn holds(&self, token: &SecretString) -> bool {
        ct_eq(self.token.expose().as_bytes(), token.expose().as_bytes())
    }
}

fn wechat_credential(cred: &Credential) -> Result<(&str, &SecretString), PlatformError> {
    let refused = |detail| PlatformError::Refused {
        platform: super::wechat::PLATFORM,
        detail,
    };
    let app_id = cred
        .app_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refused("credential has no app_id"))?;
    let secret = cred
        .app_secret
        .as_ref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refused("credential has no app_secret"))?;
    Ok((app_id, secret))
}

fn weibo_token(cred: &Credential) -> Result<&SecretString, PlatformError> {
    cred.access_token
        .as_ref()
        .filter(|s| !s.is_empty())
        .ok_or(PlatformError::Refused {
            platform: super::weibo::PLATFORM,
            detail: "credential has no access_token",
        })
}

fn no_api() -> PlatformError {
    PlatformError::Refused {
        platform: "generic",
        detail: "generic accounts have no platform API",
    }
}

impl Broker {
    /// Builds the shared HTTP client (timeout from `config`); fails only if the TLS backend cannot
    /// be set up.
    pub fn new(
        config: &PlatformsConfig,
        clock: Clock,
        events: UnboundedSender<SecurityEvent>,
    ) -> Result<Self, PlatformError> {
        let http = http_client(config)?;
        Ok(Self {
            wechat: WechatClient::new(http.clone(), &config.wechat_base_url),
            weibo: WeiboClient::new(http, &config.weibo_base_url),
            clock,
            events,
            canary_interval: Duration::from_secs(config.canary_interval_seconds.max(1)),
            slots: Mutex::new(HashMap::new()),
            forced_at: Mutex::new(HashMap::new()),
            permit: std::sync::OnceLock::new(),
            fetch_timeout: Duration::from_secs(config.request_timeout_seconds.max(1)),
            spent: Mutex::new(HashMap::new()),
        })
    }

    /// Makes every token fetch ask `permit` first (set once, by the composition root).
    pub fn set_permit(&self, permit: Arc<dyn FetchPermit>) {
        // A second call keeps the first permit: there is one cluster per vault.
        let _ = self.permit.set(permit);
    }

    async fn permitted(&self) -> Result<(), PlatformError> {
        match self.permit.get() {
            Some(p) if !p.confirm(self.fetch_timeout).await => Err(NOT_ACTIVE),
            _ => Ok(()),
        }
    }

    /// A stable token from WeChat, if this node may fetch one.
    async fn fetch_stable(
        &self,
        app_id: &str,
        secret: &SecretString,
        force: bool,
    ) -> Result<IssuedToken, PlatformError> {
        self.permitted().await?;
        if force {
            self.spend(app_id, true)?;
        }
        self.wechat.stable_token(app_id, secret, force).await
    }

    /// Counts one fetch against the AppID's daily budget, or refuses it when the day's is spent.
    fn spend(&self, app_id: &str, forced: bool) -> Result<(), PlatformError> {
        let today = beijing_day(self.clock.unix());
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        let day = spent.entry(app_id.to_owned()).or_default();
        if day.day != today {
            *day = DaySpend {
                day: today,
                ..DaySpend::default()
            };
        }
        if forced {
            if day.forced >= FORCE_REFRESHES_PER_DAY {
                return Err(FORCE_BUDGET_SPENT);
            }
            day.forced += 1;
        } else {
            if day.classic >= CLASSIC_FETCHES_PER_DAY {
                return Err(CLASSIC_BUDGET_SPENT);
            }
            day.classic += 1;
        }
        Ok(())
    }

    /// Resets the account's API call counts with its AppSecret (`clear_quota/v2`), if this node may
    /// act for the account (the active node of a cluster).
    pub async fn clear_quota(&self, cred: &Credential) -> Result<(), PlatformError> {
        let (app_id, secret) = wechat_credential(cred)?;
        self.permitted().await?;
        self.wechat.clear_quota(app_id, secret).await
    }

    /// What is left today of the AppID's token budget, as far as this process has spent it.
    pub fn wechat_budget(&self, app_id: &str) -> WechatBudget {
        let now = self.clock.unix();
        let today = beijing_day(now);
        let day = self
            .spent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(app_id)
            .copied()
            .filter(|d| d.day == today)
            .unwrap_or_default();
        WechatBudget {
            force_refreshes_left: FORCE_REFRESHES_PER_DAY.saturating_sub(day.forced),
            classic_fetches_left: CLASSIC_FETCHES_PER_DAY.saturating_sub(day.classic),
            resets_at: (today + 1) * 86_400 - 8 * 3600,
        }
    }

    /// A classic token from WeChat, if this node may fetch one.
    async fn fetch_classic(
        &self,
        app_id: &str,
        secret: &SecretString,
    ) -> Result<IssuedToken, PlatformError> {
        self.permitted().await?;
        self.spend(app_id, false)?;
        self.wechat.classic_token(app_id, secret).await
    }

    pub fn wechat(&self) -> &WechatClient {
        &self.wechat
    }

    pub fn weibo(&self) -> &WeiboClient {
        &self.weibo
    }

    fn slot(&self, account: &str) -> Arc<Slot> {
        // The map is only touched for a lookup or an insert; a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is still safe to use.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(account.to_owned()).or_default())
    }

    fn emit(&self, account: &str, kind: SecurityEventKind, detail: String) {
        tracing::warn!(account, event = kind.as_str(), %detail, "platform security event");
        let event = SecurityEvent {
            account: account.to_owned(),
            kind,
            detail,
        };
        if self.events.send(event).is_err() {
            tracing::error!(
                account,
                event = kind.as_str(),
                "security event receiver is gone; event only logged"
            );
        }
    }

    /// The account's WeChat stable access token, from cache or one shared fetch.
    pub async fn wechat_token(
        &self,
        account: &str,
        cred: &Credential,
    ) -> Result<SecretString, PlatformError> {
        self.wechat_token_lease(account, cred)
            .await
            .map(|issued| issued.token)
    }

    /// Like [`Self::wechat_token`], with the seconds the token has left (by the vault's clock),
    /// for the policy-gated hand-out endpoint.
    pub async fn wechat_token_lease(
        &self,
        account: &str,
        cred: &Credential,
    ) -> Result<IssuedToken, PlatformError> {
        let (app_id, secret) = wechat_credential(cred)?;
        let slot = self.slot(account);
        let mut cached = slot.stable.lock().await;
        let now = self.clock.unix();
        if let Some(c) = cached.as_ref().filter(|c| c.usable(app_id, secret, now)) {
            return Ok(IssuedToken {
                token: c.token.clone(),
                expires_in: c.expires_at - now,
            });
        }
        let issued = self.fetch_stable(app_id, secret, false).await?;
        let now = self.clock.unix();
        let fresh = Cached::new(issued, app_id, secret, now, cached.as_ref());
        let lease = IssuedToken {
            token: fresh.token.clone(),
            expires_in: fresh.expires_at - now,
        };
        *cached = Some(fresh);
        Ok(lease)
    }

    /// Replaces a token WeChat just rejected with `code`, once for all concurrent callers, and
    /// reports an external cancellation. Returns the token to use and whether an event went out.
    async fn renew_after_rejection(
        &self,
        account: &str,
        cred: &Credential,
        rejected: &SecretString,
        code: i64,
    ) -> Result<(SecretString, bool), PlatformError> {
        let (app_id, secret) = wechat_credential(cred)?;
        let slot = self.slot(account);
        let mut cached = slot.stable.lock().await;
        let now = self.clock.unix();
        if let Some(c) = cached.as_ref()
            && !c.holds(rejected)
            && c.usable(app_id, secret, now)
        {
            // Another caller renewed while this one waited for the lock.
            return Ok((c.token.clone(), false));
        }
        let mut reported = false;
        if code == ERR_INVALID_TOKEN
            && !slot.invalidated.load(Ordering::Acquire)
            && let Some(c) = cached.as_ref()
            && c.holds(rejected)
            && c.same_credential(app_id, secret)
        {
            self.emit(
                account,
                SecurityEventKind::TokenCancelledExternally,
                format!(
                    "WeChat answered 40001 for the stable access token the vault fetched {}s ago; \
                     someone holding the AppSecret force-refreshed it or reset the AppSecret",
                    (now - c.fetched_at).max(0)
                ),
            );
            reported = true;
        }
        let mut issued = self.fetch_stable(app_id, secret, false).await?;
        if ct_eq(
            issued.token.expose().as_bytes(),
            rejected.expose().as_bytes(),
        ) {
            // WeChat still hands out the token it rejected; only force_refresh replaces it.
            issued = self.fetch_stable(app_id, secret, true).await?;
        }
        let fresh = Cached::new(issued, app_id, secret, self.clock.unix(), None);
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok((token, reported))
    }

    /// Forwards one API call with the account's credential injected.
    ///
    /// WeChat: stable token in the `access_token` query parameter; on errcode 40001/42001 the
    /// token is renewed and the call retried once (the retry's answer is returned whatever it
    /// is). Weibo: the stored `access_token`, as a form field for form POSTs, else in the query.
    ///
    /// Platform errors on the API call come back as `Ok(PlatformResponse)` with `errcode` set
    /// (e.g. 45009 quota); `Err` means no answer to pass on: the token could not be obtained (e.g.
    /// 40164 IP not whitelisted, 40125 wrong secret), the platform was unreachable, or the
    /// path/credential was refused.
    pub async fn forward(
        &self,
        account: &str,
        platform: Platform,
        cred: &Credential,
        req: ApiRequest<'_>,
    ) -> Result<PlatformResponse, PlatformError> {
        match platform {
            Platform::Wechat => {
                // A refused path must not cost a token fetch.
                self.wechat.check_path(req.path)?;
                let token = self.wechat_token(account, cred).await?;
                let first = self
                    .wechat
                    .call(
                        req.method.clone(),
                        req.path,
                        req.query,
                        req.body.clone(),
                        req.content_type,
                        &token,
                    )
                    .await?;
                let code = match first.errcode {
                    Some(c @ (ERR_INVALID_TOKEN | ERR_TOKEN_EXPIRED)) => c,
                    _ => return Ok(first),
                };
                let (token, _) = self
                    .renew_after_rejection(account, cred, &token, code)
                    .await?;
                self.wechat
                    .call(
                        req.method,
                        req.path,
                        req.query,
                        req.body,
                        req.content_type,
                        &token,
                    )
                    .await
            }
            Platform::Weibo => {
                let token = weibo_token(cred)?;
                self.weibo
                    .call(
                        req.method,
                        req.path,
                        req.query,
                        req.body,
                        req.content_type,
                        token,
                    )
                    .await
            }
            Platform::Generic => Err(no_api()),
        }
    }

    /// Forgets the account's cached tokens (stable and canary). Call after rotation, rollback,
    /// freeze or an incident; the next call fetches with whatever credential it is given.
    pub fn invalidate(&self, account: &str) {
        let removed = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(account);
        if let Some(slot) = removed {
            slot.invalidated.store(true, Ordering::Release);
        }
    }

    /// Force-refreshes the stable token (incident playbooks): whatever stable token anyone else
    /// holds dies at once, and the broker caches the new one.
    pub async fn force_refresh(
        &self,
        account: &str,
        cred: &Credential,
    ) -> Result<(), PlatformError> {
        let (app_id, secret) = wechat_credential(cred)?;
        let slot = self.slot(account);
        let mut cached = slot.stable.lock().await;
        let issued = self.fetch_stable(app_id, secret, true).await?;
        *cached = Some(Cached::new(issued, app_id, secret, self.clock.unix(), None));
        Ok(())
    }

    /// Cancels any WeChat access token someone else may hold (incident playbooks): one
    /// `stable_token` with `force_refresh` (skipped if the broker forced one less than 30 s ago,
    /// WeChat's limit; that one already cancelled every older stable token) and one classic
    /// `cgi-bin/token` fetch, which ends the previous classic token (after WeChat's overlap) and
    /// becomes the account's canary. Both new tokens stay in the broker.
    pub async fn cancel_outstanding(
        &self,
        account: &str,
        cred: &Credential,
    ) -> Result<Cancelled, PlatformError> {
        let (app_id, secret) = wechat_credential(cred)?;
        let slot = self.slot(account);
        let mut out = Cancelled::default();
        {
            let mut cached = slot.stable.lock().await;
            let now = self.clock.unix();
            let recent = self
                .forced_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(account)
                .is_some_and(|t| now - t < FORCE_REFRESH_SPACING_SECS);
            if !recent {
                let issued = self.fetch_stable(app_id, secret, true).await?;
                let now = self.clock.unix();
                self.forced_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(account.to_owned(), now);
                *cached = Some(Cached::new(issued, app_id, secret, now, None));
                out.stable_forced = true;
            }
        }
        let mut canary = slot.canary.lock().await;
        let issued = self.fetch_classic(app_id, secret).await?;
        *canary = Some(Cached::new(issued, app_id, secret, self.clock.unix(), None));
        out.classic_fetched = true;
        Ok(out)
    }

    /// One leak check of one WeChat account: the canary classic token (fetched when absent, near
    /// expiry, or fetched with another credential), then the cached stable token if there is one
    /// (none is fetched for the check). Emits `CanaryTripped` / `TokenCancelledExternally`.
    pub async fn canary_check(
        &self,
        account: &str,
        cred: &Credential,
    ) -> Result<CanaryOutcome, PlatformError> {
        let (app_id, secret) = wechat_credential(cred)?;
        let slot = self.slot(account);
        let mut outcome = CanaryOutcome::default();
        {
            let mut canary = slot.canary.lock().await;
            let now = self.clock.unix();
            // A canary close to expiry is still checked first: renewing it unchecked would hide a
            // classic fetch made since the last round.
            let live = canary
                .as_ref()
                .filter(|c| now < c.expires_at && c.same_credential(app_id, secret));
            let renew = match live {
                None => true,
                Some(c) => match self.wechat.getcallbackip(&c.token).await {
                    Ok(()) => now >= c.refresh_at,
                    Err(e) if e.code() == Some(ERR_INVALID_TOKEN) => {
                        self.emit(
                            account,
                            SecurityEventKind::CanaryTripped,
                            format!(
                                "WeChat cancelled the vault's canary classic token (fetched {}s \
                                 ago, never handed out): someone fetched a classic access token \
                                 with the AppSecret",
                                (now - c.fetched_at).max(0)
                            ),
                        );
                        outcome.canary_tripped = true;
                        true
                    }
                    Err(e) if e.code() == Some(ERR_TOKEN_EXPIRED) => true,
                    Err(e) => return Err(e),
                },
            };
            if renew {
                let issued = self.fetch_classic(app_id, secret).await?;
                *canary = Some(Cached::new(issued, app_id, secret, self.clock.unix(), None));
                outcome.canary_renewed = true;
            }
        }

        // The stable probe runs without the lock so forwards are not held up by it; the renewal
        // re-checks under the lock that the probed token is still the cached one.
        let probe = {
            let cached = slot.stable.lock().await;
            let now = self.clock.unix();
            cached
                .as_ref()
                .filter(|c| now < c.expires_at && c.same_credential(app_id, secret))
                .map(|c| c.token.clone())
        };
        if let Some(token) = probe {
            outcome.stable_checked = true;
            match self.wechat.getcallbackip(&token).await {
                Ok(()) => {}
                Err(e) => match e.code() {
                    Some(code @ (ERR_INVALID_TOKEN | ERR_TOKEN_EXPIRED)) => {
                        let (_, reported) = self
                            .renew_after_rejection(account, cred, &token, code)
                            .await?;
                        outcome.stable_cancelled = reported;
                    }
                    _ => return Err(e),
                },
            }
        }
        Ok(outcome)
    }

    /// [`Self::canary_check`] for every WeChat account in `accounts`, one after another. Entries
    /// without `app_id` and `app_secret` (Weibo, generic) are skipped. Failures are logged (code
    /// only) and returned per account; they do not stop the round.
    pub async fn canary_round(
        &self,
        accounts: &[(String, Credential)],
    ) -> Vec<(String, Result<CanaryOutcome, PlatformError>)> {
        let mut results = Vec::new();
        for (account, cred) in accounts {
            if wechat_credential(cred).is_err() {
                continue;
            }
            let result = self.canary_check(account, cred).await;
            if let Err(e) = &result {
                tracing::warn!(account = account.as_str(), error = %e, "canary check failed");
            }
            results.push((account.clone(), result));
        }
        results
    }

    /// Runs [`Self::canary_round`] every `platforms.canary_interval_seconds` (real time, first
    /// round at once) over the accounts `accounts()` yields at that moment (current credentials of
    /// WeChat accounts that are not frozen). Stops when the returned handle is aborted.
    pub fn spawn_canary<F, Fut>(self: Arc<Self>, accounts: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<(String, Credential)>> + Send,
    {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.canary_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let list = accounts().await;
                self.canary_round(&list).await;
            }
        })
    }

    /// Checks a credential against the platform (heartbeat, and after rotation); answers how many
    /// seconds the stored platform token has left where the platform says (Weibo's OAuth token).
    /// WeChat: a normal-mode stable token with that secret (cancels nothing; a wrong secret is
    /// 40125). Weibo: `get_token_info`, and the token must belong to the credential's `app_key`.
    pub async fn verify_credential(
        &self,
        platform: Platform,
        cred: &Credential,
    ) -> Result<Option<i64>, PlatformError> {
        match platform {
            Platform::Wechat => {
                let (app_id, secret) = wechat_credential(cred)?;
                self.fetch_stable(app_id, secret, false).await?;
                Ok(None)
            }
            Platform::Weibo => {
                let info = self.weibo.get_token_info(weibo_token(cred)?).await?;
                match (&info.appkey, &cred.app_key) {
                    (Some(theirs), Some(ours)) if theirs != ours => Err(PlatformError::Refused {
                        platform: super::weibo::PLATFORM,
                        detail: "the access token belongs to another app_key",
                    }),
                    _ => Ok(info.expire_in),
                }
            }
            Platform::Generic => Err(no_api()),
        }
    }

    /// [`Self::verify_credential`] for a named account, emitting `HeartbeatFailed` when the
    /// platform refuses the credential. An unreachable platform is returned but not reported: it
    /// says nothing about the credential.
    pub async fn heartbeat(
        &self,
        account: &str,
        platform: Platform,
        cred: &Credential,
    ) -> Result<Option<i64>, PlatformError> {
        let result = self.verify_credential(platform, cred).await;
        if let Err(e) = &result
            && !matches!(e, PlatformError::Transport { .. })
        {
            self.emit(
                account,
                SecurityEventKind::HeartbeatFailed,
                format!("credential check failed: {e}"),
            );
        }
        result
    }
}

// The broker's tests run against the fake platforms (a dev-dependency).
#[cfg(test)]
mod tests;
