//! Per-request context: the request id (task-local, so any error rendered during the request can
//! carry it) and the audit note that the services fill in. It lives below HTTP because services
//! and the audit log read it; the HTTP middleware creates one per request.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::crypto::CertIdentity;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

pub async fn with_request_id<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// A fresh request id: 16 random bytes in hex. Client-supplied ids are not trusted, since they end
/// up in the audit log.
pub fn new_request_id() -> String {
    let mut b = [0u8; 16];
    if crate::crypto::random_bytes(&mut b).is_err() {
        return "no-random".into();
    }
    hex::encode(b)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    User,
    Client,
    Token,
    System,
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Client => "client",
            ActorKind::Token => "token",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }
}

/// What a handler knows that the audit layer cannot see: who acted, what they did to what, and
/// safe details (ids and digests, never secrets).
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub actor: Option<(ActorKind, String)>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub detail: serde_json::Map<String, Value>,
    /// A change made during this request was committed together with its own audit entry; a
    /// successful response then needs no second entry.
    pub recorded: bool,
}

/// A request's context. Cheap to clone: the middleware, the extractors and the rate limiter each
/// take a handle to the one context (it had been copied field by field, three strings at a time).
/// Its fields are read through `Deref`.
#[derive(Debug, Clone)]
pub struct RequestCtx(Arc<RequestFields>);

#[derive(Debug, Clone)]
pub struct RequestFields {
    pub request_id: String,
    pub peer: IpAddr,
    /// Method and path, so a change committed during the request names the request.
    pub method: String,
    pub path: String,
    /// The original lengths of a method or path that was cut (`http.method`, `http.path`), for
    /// the request's entry; nearly always empty.
    pub truncated: serde_json::Map<String, Value>,
    pub note: Arc<Mutex<AuditNote>>,
    /// The client certificate the TLS connection presented, verified against
    /// `tls.client_ca_file` during the handshake; None over plain HTTP or without one.
    pub client_cert: Option<CertIdentity>,
}

impl std::ops::Deref for RequestCtx {
    type Target = RequestFields;

    fn deref(&self) -> &RequestFields {
        &self.0
    }
}

impl RequestCtx {
    pub fn new(request_id: String, peer: Option<SocketAddr>) -> Self {
        Self(Arc::new(RequestFields {
            request_id,
            peer: peer
                .map(|p| canonical_ip(p.ip()))
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            method: String::new(),
            path: String::new(),
            truncated: serde_json::Map::new(),
            note: Arc::default(),
            client_cert: None,
        }))
    }

    /// The fields, to set while the context is being built (before any clone of it exists, so
    /// nothing is copied).
    fn fields_mut(&mut self) -> &mut RequestFields {
        Arc::make_mut(&mut self.0)
    }

    /// The connection's verified client certificate: kept for the services that check a tool's
    /// binding, and named in the request's audit entry (whatever the request turns out to be).
    pub fn with_client_cert(mut self, cert: Option<CertIdentity>) -> Self {
        if let Some(c) = &cert {
            self.detail(
                "client_cert",
                serde_json::json!({"sha256": c.fingerprint.to_hex(), "subject": c.subject}),
            );
        }
        self.fields_mut().client_cert = cert;
        self
    }

    /// Method and path, capped like every client-supplied text in the log.
    pub fn with_http(mut self, method: &str, path: &str) -> Self {
        let fields = self.fields_mut();
        fields.method = super::capped("http.method", method.to_owned(), &mut fields.truncated);
        fields.path = super::capped("http.path", path.to_owned(), &mut fields.truncated);
        self
    }

    fn with_note(&self, f: impl FnOnce(&mut AuditNote)) {
        let mut guard = self.note.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard);
    }

    pub fn actor(&self, kind: ActorKind, id: &str) {
        self.with_note(|n| n.actor = Some((kind, id.to_owned())));
    }

    pub fn action(&self, action: &str, target: Option<&str>) {
        self.with_note(|n| {
            n.action = Some(action.to_owned());
            if let Some(t) = target {
                n.target = Some(t.to_owned());
            }
        });
    }

    pub fn detail(&self, key: &str, value: impl Into<Value>) {
        let v = value.into();
        self.with_note(|n| {
            n.detail.insert(key.to_owned(), v);
        });
    }

    /// Marks that a change and its entry were committed in one transaction for this request.
    pub fn mark_recorded(&self) {
        self.with_note(|n| n.recorded = true);
    }

    pub fn note(&self) -> AuditNote {
        self.note.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a change of this request was committed with its own entry (see `mark_recorded`).
    pub fn recorded(&self) -> bool {
        self.note.lock().unwrap_or_else(|p| p.into_inner()).recorded
    }

    /// The note, taken out once the request has run: its own entry is the note's last reader, so
    /// it moves instead of copying (every audited request used to clone it twice).
    pub fn take_note(&self) -> AuditNote {
        std::mem::take(&mut *self.note.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// IPv4-mapped IPv6 addresses are their IPv4 address, so policies and logs see one form.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}
