//! A standby forwards (issue 22). In a cluster every node serves the same API and console, but
//! only the active node answers: a standby passes each request, unchanged, to the active node's
//! `cluster.address` and returns its answer, unchanged, so clients and browsers may use either
//! node (its cookies, redirects and streamed exports included). Forwarding rather than
//! redirecting keeps the console's host-only cookies on the host the browser talks to.
//!
//! The active node sees the standby's address as the peer, and a connection that presented no
//! certificate; the standby vouches for the client's own address and, when the client presented
//! one, for its TLS certificate (verified by the standby against the same `tls.client_ca_file`),
//! in headers ([`FORWARDED_FOR`], [`FORWARDED_CERT`], [`FORWARDED_MAC`]): a MAC under a key
//! derived from the shared keyring, which only the nodes hold. The active node believes them only
//! when the MAC verifies; a client that sends the headers itself gets them replaced (by a standby)
//! or ignored (by the active node), so no one can claim another address for the audit log or the
//! rate limits, or a certificate it does not hold for a tool bound to one.
//!
//! `/healthz`, `/readyz` and `/metrics` are a node's own and are never forwarded.
//!
//! The same layer serves a vault behind a gateway (a certified TLCP gateway for a 密评, or a
//! reverse proxy; `[gateway] addresses`): on the gateway's connections the client is the last
//! `X-Forwarded-For` entry, the one the gateway appended, and, with `gateway.client_cert_header`
//! set, the client certificate is the one the gateway verified and passed in that header; from
//! anyone else both headers are ignored. A standby behind the gateway resolves both before it
//! forwards, so it vouches for the client, not for the gateway.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use crate::AppState;
use crate::config::Config;
use crate::context::REQUEST_ID_HEADER;
use crate::crypto::CertIdentity;
use crate::problem;
use crate::serve::{VouchedCert, client_cert_der};
use crate::vault::cluster::Role;

/// The client address a standby saw.
pub const FORWARDED_FOR: &str = "x-mediavault-forwarded-for";
/// The client certificate (DER, hex) the standby verified, when the client presented one.
pub const FORWARDED_CERT: &str = "x-mediavault-forwarded-cert";
/// The standby's MAC over that address, the method, the target and the certificate.
pub const FORWARDED_MAC: &str = "x-mediavault-forwarded-mac";

/// The headers only a standby may set; a client's own are never passed on or believed.
fn vouching(name: &HeaderName) -> bool {
    name == FORWARDED_FOR || name == FORWARDED_CERT || name == FORWARDED_MAC
}

/// The HTTP client a standby forwards with.
#[derive(Debug)]
pub struct Forwarder {
    client: reqwest::Client,
    body_limit: usize,
}

impl Forwarder {
    /// None for a single node. Trusts `cluster.peer_ca_file` (the CA of the nodes' server
    /// certificates) besides the usual roots.
    pub fn new(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(cluster) = &config.cluster else {
            return Ok(None);
        };
        let timeout = Duration::from_secs(config.limits.request_timeout_seconds.max(1));
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            // The active node's redirects (a console action's 303) go back to the browser as
            // they are.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mediavault-forward/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cluster.peer_ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                anyhow::anyhow!("cluster.peer_ca_file {}: cannot read: {e}", ca.display())
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|_| {
                anyhow::anyhow!(
                    "cluster.peer_ca_file {}: not a PEM certificate",
                    ca.display()
                )
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|_| anyhow::anyhow!("cannot set up the HTTP client for forwarding"))?;
        Ok(Some(Self {
            client,
            body_limit: config.limits.body_bytes,
        }))
    }
}

/// Headers that belong to one connection, not to the request or answer (RFC 9110 7.6.1), and
/// those the client library sets itself.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
    )
}

/// Outermost but for the response headers: on a standby, everything but the node's own probes goes
/// to the active node; on the active node (or a single one), a vouched-for client address
/// replaces the peer's.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let own = matches!(path, "/healthz" | "/readyz" | "/metrics");
    match (state.vault.cluster().role(), &state.forwarder) {
        (Role::Standby { leader }, Some(forwarder)) if !own => {
            // This node's own id for what it answers and logs itself (no active node, the active
            // node unreachable); a forwarded answer keeps the active node's.
            let id = crate::context::new_request_id();
            let mut resp = crate::context::with_request_id(id.clone(), async {
                match leader {
                    Some(leader) => {
                        gateway_peer(&state, &mut req);
                        forward(&state, forwarder, &leader.address, req).await
                    }
                    None => problem::plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "standby",
                        "this vault node is a standby and no node is active at the moment; retry shortly",
                    ),
                }
            })
            .await;
            if !resp.headers().contains_key(REQUEST_ID_HEADER)
                && let Ok(v) = HeaderValue::from_str(&id)
            {
                resp.headers_mut().insert(REQUEST_ID_HEADER, v);
            }
            resp
        }
        _ => {
            if !vouched_peer(&state, &mut req) {
                gateway_peer(&state, &mut req);
            }
            next.run(req).await
        }
    }
}

/// On a connection from the configured gateway (`[gateway] addresses`), replaces the peer with
/// the client address the gateway appended last to `X-Forwarded-For` (anything before it came
/// from the client and proves nothing) and, with `gateway.client_cert_header` set, takes the
/// client certificate the gateway verified from that header. A connection from anywhere else
/// keeps its own address and certificate; the certificate header is dropped whoever sent it.
fn gateway_peer(state: &AppState, req: &mut Request) {
    let gateway = &state.vault.config.gateway;
    let cert = gateway
        .client_cert_header
        .as_deref()
        .and_then(|name| req.headers_mut().remove(name));
    let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
    else {
        return;
    };
    if !gateway.is_gateway(peer.ip()) {
        if cert.is_some() {
            tracing::warn!(peer = %peer.ip(), "a client certificate header from outside the gateway was ignored");
        }
        return;
    }
    let client = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    match client {
        Some(ip) => {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, peer.port())));
        }
        None => tracing::warn!(
            gateway = %peer.ip(),
            "a request from the gateway without a usable X-Forwarded-For: recorded with the gateway's address"
        ),
    }
    if let Some(value) = cert {
        match gateway_cert(value.as_bytes()) {
            Some(der) => {
                req.extensions_mut().insert(VouchedCert(der));
            }
            // Fail closed: the request goes on without a certificate, so a bound tool is refused.
            None => tracing::warn!(
                gateway = %peer.ip(),
                "the gateway's client certificate header holds no certificate: the request goes on without one"
            ),
        }
    }
}

/// The certificate (DER) in a gateway's header: PEM, percent-encoded (nginx's
/// `$ssl_client_escaped_cert`) or not, its line breaks kept or turned into spaces, or bare base64
/// DER. None unless it decodes to one whole X.509 certificate.
fn gateway_cert(value: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = percent_encoding::percent_decode(value).decode_utf8().ok()?;
    let body = text
        .trim()
        .strip_prefix("-----BEGIN CERTIFICATE-----")
        .map_or(Some(text.trim()), |rest| {
            rest.trim_end().strip_suffix("-----END CERTIFICATE-----")
        })?;
    let b64: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()?;
    CertIdentity::from_der(&der).ok().map(|_| der)
}

/// Replaces the connection's peer with the client address a standby vouched for, and its
/// certificate with the one the standby vouched for, when the MAC verifies; drops the headers
/// either way, so nothing below reads an unproven claim. Whether it did.
fn vouched_peer(state: &AppState, req: &mut Request) -> bool {
    let headers = req.headers_mut();
    let mut take = |name: &str| {
        headers
            .remove(name)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
    };
    let (claimed, cert, mac) = (
        take(FORWARDED_FOR),
        take(FORWARDED_CERT),
        take(FORWARDED_MAC),
    );
    let (Some(claimed), Some(mac)) = (claimed, mac) else {
        return false;
    };
    let cert = match cert.map(hex::decode) {
        None => None,
        Some(Ok(der)) => Some(der),
        Some(Err(_)) => {
            tracing::warn!("a forwarded certificate that is not hex was ignored");
            return false;
        }
    };
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    if !state
        .vault
        .forward_mac_valid(&claimed, &method, &target, cert.as_deref(), &mac)
    {
        tracing::warn!("forwarding headers with a wrong MAC were ignored");
        return false;
    }
    let Ok(ip) = claimed.parse::<IpAddr>() else {
        return false;
    };
    let port = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(0, |c| c.0.port());
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, port)));
    if let Some(der) = cert {
        req.extensions_mut().insert(VouchedCert(der));
    }
    true
}

async fn forward(state: &AppState, forwarder: &Forwarder, leader: &str, req: Request) -> Response {
    let client_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    // The standby's own TLS handshake verified it, against the same CA the active node trusts,
    // or the gateway did (`gateway_peer`, just before).
    let cert = client_cert_der(req.extensions()).map(<[u8]>::to_vec);
    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{target}", leader.trim_end_matches('/'));
    let Ok(body) = axum::body::to_bytes(body, forwarder.body_limit).await else {
        return problem::plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        );
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && !vouching(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let mac = state
        .vault
        .forward_mac(&client_ip, parts.method.as_str(), target, cert.as_deref());
    if let (Ok(ip), Ok(mac)) = (
        HeaderValue::from_str(&client_ip),
        HeaderValue::from_str(&mac),
    ) {
        headers.insert(FORWARDED_FOR, ip);
        headers.insert(FORWARDED_MAC, mac);
    }
    // Hex is always a valid header value; the MAC above covers it.
    if let Some(Ok(der)) = cert.map(|der| HeaderValue::from_str(&hex::encode(der))) {
        headers.insert(FORWARDED_CERT, der);
    }
    let sent = forwarder
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(_) => {
            // Never the error's text: it holds the URL, and the query may hold a token.
            tracing::warn!(
                leader,
                method = %parts.method,
                path = parts.uri.path(),
                request_id = crate::context::current_request_id().unwrap_or_default(),
                "forwarding to the active node failed"
            );
            return problem::plain(
                StatusCode::BAD_GATEWAY,
                "standby_forward_failed",
                "this vault node is a standby and could not reach the active node; retry shortly",
            );
        }
    };
    // One line per forwarded request, under the id the active node gave it (its own log and the
    // audit entry carry the same), so the two nodes' logs can be read together.
    tracing::info!(
        method = %parts.method,
        path = parts.uri.path(),
        status = answer.status().as_u16(),
        request_id = answer
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        "forwarded to the active node"
    );
    let mut resp = Response::builder().status(answer.status());
    if let Some(h) = resp.headers_mut() {
        for (name, value) in answer.headers() {
            if !hop_by_hop(name) {
                h.append(name.clone(), value.clone());
            }
        }
    }
    // Streamed through: an audit export is not held in this node's memory either.
    let stream = answer.bytes_stream().map_err(std::io::Error::other);
    resp.body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Shared by the router's state.
pub type SharedForwarder = Option<Arc<Forwarder>>;
