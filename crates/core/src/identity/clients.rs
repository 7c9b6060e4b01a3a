//! The clients service: publishing tools, each with a client key (`mvc_`) bound to the accounts
//! the tool may use, shown once, stored as a keyed hash, revocable at once (and with it every
//! checkout the tool holds).
//!
//! A tool may also be bound to one client certificate (mutual TLS): its key, and every token
//! issued under its checkouts, then work only over a connection that presented that certificate
//! ([`require_bound_cert`]). A stolen key (or token) alone is then not enough.

use serde::Serialize;

use super::AccountId;
use crate::actor::Actor;
use crate::audit::context::RequestCtx;
use crate::crypto::tokens::{TokenKind, hash_token, well_formed};
use crate::crypto::{CertFingerprint, CertIdentity};
use crate::crypto::{SecretString, new_token};
use crate::error::CertRefusal;
use crate::error::Conflict;
use crate::error::{Error, Result};
use crate::identity::Role;
use crate::store::clients::ClientRow;

pub use crate::actor::Client;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub accounts: Vec<String>,
    pub created_at: String,
    pub created_by: String,
    pub revoked: bool,
    /// The client certificate the tool is bound to (mutual TLS); absent: the key alone works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertView>,
    /// On creation or binding: the bound accounts whose policy does not admit this tool, and a
    /// certificate binding on a server that asks for no client certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A bound certificate, as views show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CertView {
    /// SHA-256 of the certificate's DER, lower-case hex.
    pub sha256: String,
    /// The subject, for people to read; the fingerprint is what is checked.
    pub subject: String,
}

fn parse_accounts(row: &ClientRow) -> Vec<String> {
    serde_json::from_str(&row.accounts).unwrap_or_default()
}

impl From<&ClientRow> for ClientView {
    fn from(r: &ClientRow) -> Self {
        ClientView {
            client_id: r.id.clone(),
            name: r.name.clone(),
            accounts: parse_accounts(r),
            created_at: crate::clock::rfc3339_unix(r.created_at),
            created_by: r.created_by.clone(),
            revoked: r.revoked_at.is_some(),
            certificate: r.cert_sha256.as_ref().map(|sha| CertView {
                sha256: hex::encode(sha),
                subject: r.cert_subject.clone().unwrap_or_default(),
            }),
            warning: None,
        }
    }
}

/// The clients service; `vault.clients()`.
#[derive(Clone)]
pub struct Clients {
    pub(crate) store: crate::store::Store,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) audit: crate::audit::AuditWriter,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) people: crate::identity::users::People,
    pub(crate) policies: std::sync::Arc<crate::policy::Live>,
    /// Whether a client certificate can reach this server (`tls.client_ca_file`, or a gateway
    /// that passes the one it verified, `gateway.client_cert_header`): binding a tool without
    /// either is allowed (the setting may come with the next restart) but warned about.
    pub(crate) asks_client_certs: bool,
}

impl Clients {
    pub async fn create(
        &self,
        actor: &Actor,
        name: &str,
        accounts: &[String],
        totp: Option<&str>,
        certificate: Option<&str>,
    ) -> Result<(ClientView, SecretString)> {
        actor.action("client.create", Some(name));
        // A person needs the admin role and their TOTP code; the vault itself (CLI, demo) not.
        let admin = match &actor.who {
            crate::actor::Principal::System(_) => None,
            _ => Some(actor.require(&[Role::Admin])?),
        };
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "name must be 1-64 printable characters",
            ));
        }
        if accounts.is_empty() {
            return Err(Error::invalid(
                "accounts",
                "a client must be bound to at least one account",
            ));
        }
        let mut ids = Vec::new();
        for a in accounts {
            let id = AccountId::parse(a)
                .map_err(|_| Error::invalid("accounts", format!("{a:?} is not an account id")))?;
            if self.store.account_get(id.as_str()).await?.is_none() {
                return Err(Error::invalid(
                    "accounts",
                    format!("account {id} does not exist"),
                ));
            }
            ids.push(id.as_str().to_owned());
        }
        ids.sort();
        ids.dedup();
        let cert = certificate.map(parse_certificate).transpose()?;
        let proof = match admin {
            Some(me) => Some(self.people.authorize(me, totp).await?),
            None => None,
        };
        let mut raw = [0u8; 8];
        crate::crypto::random_bytes(&mut raw)?;
        let id = format!("cl_{}", hex::encode(raw));
        let key = new_token(TokenKind::Client)?;
        let hash = hash_token(&self.keys.mac().token, key.expose());
        let json = serde_json::to_string(&ids).map_err(Error::internal)?;
        actor.detail("client_id", id.clone());
        actor.detail("accounts", ids.clone());
        if let Some(c) = &cert {
            actor.detail("bound_cert", cert_detail(c));
        }
        let now = self.clock.unix();
        let (cid, cname, by) = (id.clone(), name.clone(), actor.audit_id().1);
        let made = self
            .audit
            .change(actor, "client.create", &name, move |tx| {
                Box::pin(async move {
                    if let Some(p) = proof {
                        p.spend(tx).await?;
                    }
                    tx.client_insert(&cid, &cname, &hash.0, &json, &by, now)
                        .await?;
                    if let Some(c) = &cert {
                        tx.client_set_cert(
                            &cid,
                            Some((c.fingerprint.as_bytes(), c.subject.as_str())),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await;
        made.map_err(|e| {
            e.explain(Conflict::AlreadyExists, || {
                format!("a client named {name:?} already exists")
            })
        })?;
        let row = self
            .store
            .client_get(&id)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("client vanished")))?;
        let mut view = ClientView::from(&row);
        let policies = self.policies.current();
        let uncovered: Vec<&str> = view
            .accounts
            .iter()
            .filter(|a| {
                !policies
                    .for_account(a)
                    .is_some_and(|p| p.lists_client(&view.name, &view.client_id))
            })
            .map(String::as_str)
            .collect();
        let mut warnings = Vec::new();
        if view.certificate.is_some() {
            warnings.extend(self.no_client_certs_warning());
        }
        if !uncovered.is_empty() {
            tracing::warn!(client = %view.client_id, accounts = ?uncovered, "client created that no policy admits");
            warnings.push(format!(
                "no access policy admits the tool {:?} for {}: add it to `[who] clients` in those policies and reload, or its checkouts are refused",
                view.name,
                uncovered.join(", ")
            ));
        }
        if !warnings.is_empty() {
            view.warning = Some(warnings.join("; "));
        }
        Ok((view, key))
    }

    pub async fn list(&self, actor: &Actor) -> Result<Vec<ClientView>> {
        actor.action("client.list", None);
        actor.require(&[Role::Admin, Role::Auditor])?;
        Ok(self
            .store
            .clients_list()
            .await?
            .iter()
            .map(ClientView::from)
            .collect())
    }

    /// Revokes a client key and, in the same transaction, every checkout the tool holds or waits
    /// for: a token never outlives the tool it was issued to.
    pub async fn revoke(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.action("client.revoke", Some(id));
        actor.require(&[Role::Admin])?;
        let now = self.clock.unix();
        let cid = id.to_owned();
        self.audit
            .change(actor, "client.revoke", id, move |tx| {
                Box::pin(async move {
                    if !tx.client_revoke(&cid, now).await? {
                        return Err(Error::NotFound(format!("live client {cid:?}")));
                    }
                    let n = tx
                        .revoke_checkouts_of(Some(&cid), None, "client revoked", now)
                        .await?;
                    tx.note("checkouts_revoked", n);
                    Ok(())
                })
            })
            .await
    }

    /// Binds a live tool to a client certificate (PEM), or unbinds it with `None`: an admin
    /// change like any other, with the admin's TOTP step-up, audited with the certificate's
    /// fingerprint and subject (and the one it replaces). Tokens already issued to the tool follow
    /// the new binding from their next request on.
    pub async fn set_certificate(
        &self,
        actor: &Actor,
        id: &str,
        certificate: Option<&str>,
        totp: Option<&str>,
    ) -> Result<ClientView> {
        let action = if certificate.is_some() {
            "client.bind_cert"
        } else {
            "client.unbind_cert"
        };
        actor.action(action, Some(id));
        let me = actor.require(&[Role::Admin])?;
        let cert = certificate.map(parse_certificate).transpose()?;
        let before = self
            .store
            .client_get(id)
            .await?
            .filter(|r| r.revoked_at.is_none())
            .ok_or_else(|| Error::NotFound(format!("live client {id:?}")))?;
        if let Some(old) = ClientView::from(&before).certificate {
            actor.detail(
                "previous_cert",
                serde_json::json!({"sha256": old.sha256, "subject": old.subject}),
            );
        }
        if let Some(c) = &cert {
            actor.detail("bound_cert", cert_detail(c));
        }
        let proof = self.people.authorize(me, totp).await?;
        let cid = id.to_owned();
        self.audit
            .change(actor, action, id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    let bound = cert
                        .as_ref()
                        .map(|c| (&c.fingerprint.as_bytes()[..], c.subject.as_str()));
                    if !tx.client_set_cert(&cid, bound).await? {
                        return Err(Error::NotFound(format!("live client {cid:?}")));
                    }
                    Ok(())
                })
            })
            .await?;
        let row = self
            .store
            .client_get(id)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("client vanished")))?;
        let mut view = ClientView::from(&row);
        if view.certificate.is_some() {
            view.warning = self.no_client_certs_warning();
        }
        Ok(view)
    }

    /// A bound tool on a server that asks for no client certificates cannot be used at all.
    fn no_client_certs_warning(&self) -> Option<String> {
        (!self.asks_client_certs).then(|| {
            tracing::warn!("a tool was bound to a client certificate, but neither tls.client_ca_file nor gateway.client_cert_header is set");
            "neither tls.client_ca_file nor gateway.client_cert_header is set on this server, so no connection can present the bound certificate and the tool is refused until one is (docs/deployment.md, \"Mutual TLS for a tool\")".to_owned()
        })
    }

    /// The live client behind a key, or `Unauthenticated`; a tool bound to a certificate only
    /// over a connection that presented it (`ctx` carries the connection's certificate).
    pub async fn authenticate(&self, key: &str, ctx: Option<&RequestCtx>) -> Result<Client> {
        if !well_formed(TokenKind::Client, key) {
            return Err(Error::Unauthenticated);
        }
        let hash = hash_token(&self.keys.mac().token, key);
        let row = self
            .store
            .client_by_key_hash(&hash.0)
            .await?
            .ok_or(Error::Unauthenticated)?;
        require_bound_cert(&row.id, bound_cert(&row)?.as_ref(), ctx)?;
        Ok(Client {
            accounts: parse_accounts(&row),
            id: row.id,
            name: row.name,
        })
    }
}

/// A certificate an admin gave, parsed; the refusal says what is wrong without quoting the text.
fn parse_certificate(pem: &str) -> Result<CertIdentity> {
    CertIdentity::from_pem(pem).map_err(|e| Error::invalid("certificate", e.to_string()))
}

fn cert_detail(c: &CertIdentity) -> serde_json::Value {
    serde_json::json!({"sha256": c.fingerprint.to_hex(), "subject": c.subject})
}

/// The certificate a client row is bound to, if any. A stored value that is not a fingerprint
/// refuses the tool rather than letting it through unbound (deny by default).
pub(crate) fn bound_cert(row: &ClientRow) -> Result<Option<CertFingerprint>> {
    row.cert_sha256
        .as_deref()
        .map(|b| {
            CertFingerprint::from_bytes(b).ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "client {}: stored certificate fingerprint is not 32 bytes",
                    row.id
                ))
            })
        })
        .transpose()
}

/// The one rule of mutual TLS: a credential of a tool bound to a certificate is accepted only
/// over a connection that presented that certificate (compared in constant time). An unbound
/// tool passes. A refusal names the tool in the request's audit entry (the entry already names
/// the certificate presented, if any).
pub(crate) fn require_bound_cert(
    client_id: &str,
    bound: Option<&CertFingerprint>,
    ctx: Option<&RequestCtx>,
) -> Result<()> {
    let Some(bound) = bound else {
        return Ok(());
    };
    let presented = ctx.and_then(|c| c.client_cert.as_ref());
    let refusal = match presented {
        Some(p) if p.fingerprint.matches(bound) => return Ok(()),
        Some(_) => CertRefusal::Other,
        None => CertRefusal::Missing,
    };
    if let Some(ctx) = ctx {
        ctx.detail("client", client_id);
        ctx.detail("bound_cert_sha256", bound.to_hex());
    }
    Err(Error::ClientCertificate(refusal))
}
