//! Who is acting, as a type: every service method takes an [`Actor`], already authenticated,
//! and decides from it alone (roles, the tool's bindings, the token's scope). The HTTP layer,
//! the console, the CLI and the background loops all build one; none of them checks a rule.

use std::net::IpAddr;

use crate::audit::context::{ActorKind, RequestCtx};
use crate::audit::{HttpInfo, NewEntry, Outcome};
use crate::error::{Error, Result};
use crate::names::{Role, Roles};

// Who the principals are: the identity and checkout services make them, the actor carries them.

/// An authenticated person.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub username: String,
    pub roles: Roles,
    /// The session the person acts through (none while logging in, or for the demo's seeding).
    pub session: Option<SessionRef>,
}

impl Person {
    /// The step-up window open on this person's session, if any.
    pub fn step_up(&self) -> Option<StepUpWindow> {
        self.session.as_ref().and_then(|s| s.step_up)
    }
}

/// The session a person acts through: which one (by its keyed hash, so a step-up is bound to
/// it) and its step-up window as read when the request came in.
#[derive(Clone)]
pub struct SessionRef {
    pub(crate) hash: Vec<u8>,
    pub step_up: Option<StepUpWindow>,
}

impl std::fmt::Debug for SessionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRef")
            .field("step_up", &self.step_up)
            .finish_non_exhaustive()
    }
}

/// An open step-up window: until when, and the audit entry of the step-up that opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepUpWindow {
    pub until: i64,
    pub seq: i64,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub accounts: Vec<String>,
}

impl Client {
    pub fn may_use(&self, account: &str) -> bool {
        self.accounts.iter().any(|a| a == account)
    }
}

/// A live publishing token, resolved.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub checkout_id: String,
    pub account: String,
    pub operator: String,
    pub client_id: String,
    pub expires_at: i64,
    pub allowed_calls: Vec<String>,
    pub content_sha256: Option<Vec<String>>,
    /// Every account the token may publish to (its own account first).
    pub targets: Vec<String>,
    /// The checkout carries a post that approvers reviewed (the proxy then binds calls to it).
    pub has_post: bool,
    /// The client certificate the issuing tool is bound to, as read when the grant was resolved
    /// (a change of binding ends cached grants): the token then works only over a connection
    /// that presents it, like the tool's key.
    pub client_cert: Option<crate::crypto::CertFingerprint>,
    /// The checkout was released by one admin alone (break-glass); its entries say so.
    pub break_glass: bool,
}

/// The authenticated party behind a call.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person with a live session.
    Person(Person),
    /// A publishing tool, by its client key.
    Client(Client),
    /// A live publishing token.
    Token(std::sync::Arc<TokenGrant>),
    /// The vault itself: a background loop, or the CLI run by an operating-system user.
    System(String),
    /// Nobody yet (a login in progress).
    Anonymous,
}

/// An authenticated principal and the request it came with (none for background work and the
/// CLI). Audit entries of the changes it makes are built from it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub who: Principal,
    pub ctx: Option<RequestCtx>,
}

impl Actor {
    pub fn new(who: Principal, ctx: Option<RequestCtx>) -> Self {
        let actor = Self { who, ctx };
        if let Some(ctx) = &actor.ctx {
            let (kind, id) = actor.audit_id();
            ctx.actor(kind, &id);
        }
        actor
    }

    /// The vault's own background work.
    pub fn system() -> Self {
        Self::new(Principal::System("mediavault".into()), None)
    }

    /// The CLI, run by the named operating-system user.
    pub fn cli(os_user: &str) -> Self {
        Self::new(Principal::System(format!("cli:{os_user}")), None)
    }

    /// The CLI's actor for the operating-system user running this process.
    pub fn cli_from_env() -> Self {
        // Without USER or LOGNAME (a bare container, some service managers) the numeric uid
        // still says who it was.
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/self/status")
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("Uid:"))
                            .and_then(|l| l.split_whitespace().next().map(|u| format!("uid:{u}")))
                    })
            })
            .unwrap_or_else(|| "unknown".into());
        Self::cli(&user)
    }

    /// How the audit log names this actor.
    pub fn audit_id(&self) -> (ActorKind, String) {
        match &self.who {
            Principal::Person(p) => (ActorKind::User, p.username.clone()),
            Principal::Client(c) => (ActorKind::Client, c.id.clone()),
            Principal::Token(g) => (ActorKind::Token, g.checkout_id.clone()),
            Principal::System(id) => (ActorKind::System, id.clone()),
            Principal::Anonymous => (ActorKind::Anonymous, String::new()),
        }
    }

    /// The client's address, for policies that restrict networks.
    pub fn source(&self) -> Option<IpAddr> {
        self.ctx.as_ref().map(|c| c.peer)
    }

    /// The person acting, if they hold one of `roles`; the one role check of every service.
    pub fn require(&self, roles: &[Role]) -> Result<&Person> {
        match &self.who {
            Principal::Person(p) if p.roles.any(roles) => Ok(p),
            _ => {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                Err(Error::NotPermitted(format!(
                    "this needs the role {}",
                    names.join(" or ")
                )))
            }
        }
    }

    /// The publishing tool acting.
    pub fn client(&self) -> Result<&Client> {
        match &self.who {
            Principal::Client(c) => Ok(c),
            _ => Err(Error::NotPermitted(
                "this needs a publishing tool's client key".into(),
            )),
        }
    }

    /// The publishing token acting.
    pub fn token(&self) -> Result<&TokenGrant> {
        match &self.who {
            Principal::Token(g) => Ok(g.as_ref()),
            _ => Err(Error::NotPermitted("this needs a publishing token".into())),
        }
    }

    /// Names what the request does, for its audit entry (a refusal is recorded under it too).
    pub fn action(&self, action: &str, target: Option<&str>) {
        if let Some(ctx) = &self.ctx {
            ctx.action(action, target);
        }
    }

    /// Adds a safe detail (ids, digests, never secrets) to the request's audit entry.
    pub fn detail(&self, key: &str, value: impl Into<serde_json::Value>) {
        if let Some(ctx) = &self.ctx {
            ctx.detail(key, value);
        }
    }

    /// The entry a change by this actor commits with: who, what, to what, from where; the details
    /// noted on the request so far are carried over.
    pub fn entry(&self, action: &str, target: &str) -> NewEntry {
        let (actor_kind, actor_id) = self.audit_id();
        let (source_ip, request_id, http, detail) = match &self.ctx {
            Some(ctx) => (
                ctx.peer.to_string(),
                ctx.request_id.clone(),
                Some(HttpInfo {
                    method: ctx.method.clone(),
                    path: ctx.path.clone(),
                    status: None,
                }),
                ctx.note().detail,
            ),
            None => (String::new(), String::new(), None, serde_json::Map::new()),
        };
        NewEntry {
            actor_kind,
            actor_id,
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: Outcome::Success,
            source_ip,
            request_id,
            http,
            detail,
        }
    }

    /// Tells the request that its change is recorded (so its success needs no second entry).
    pub fn recorded(&self) {
        if let Some(ctx) = &self.ctx {
            ctx.mark_recorded();
        }
    }
}
/// A change by an actor, with the actor's entry: here, with the actor, so the audit log below
/// knows nothing of who acts.
impl crate::audit::AuditWriter {
    /// Runs `change` in the writer's transaction and commits it with the actor's entry for
    /// `action` on `target`: both or neither. The request is told its change is recorded.
    pub async fn change<T, F>(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        change: F,
    ) -> Result<T, crate::error::Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut crate::store::Tx) -> crate::audit::TxFuture<'t, T>
            + Send
            + 'static,
    {
        Ok(self.change_seq(actor, action, target, change).await?.0)
    }

    /// As [`Self::change`], also returning the sequence number of the change's audit entry, for
    /// the entries of the changes it authorises to name.
    pub async fn change_seq<T, F>(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        change: F,
    ) -> Result<(T, i64), crate::error::Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut crate::store::Tx) -> crate::audit::TxFuture<'t, T>
            + Send
            + 'static,
    {
        let (value, committed) = self
            .commit_entry(actor.entry(action, target), change)
            .await?;
        actor.recorded();
        Ok((value, committed.seq))
    }
}
