//! Serving: HTTPS with rustls (ring provider), or plain HTTP on loopback when configured.
//!
//! Slow clients are bounded at every stage: the TLS handshake and the first request each get
//! `limits.header_read_timeout_seconds`, hyper closes an HTTP/1 connection whose request head
//! takes longer, a connection on which nothing moves for `limits.idle_timeout_seconds` is closed
//! (HTTP/2 included), and at most `limits.max_connections` are served at once ([`conn`]).
//!
//! Mutual TLS (`tls.client_ca_file`): the server asks each client for a certificate and verifies
//! one against that CA during the handshake, but does not require one, so browsers and unbound
//! tools connect as before; a certificate that does not verify fails the handshake. axum-server's
//! TLS acceptor puts the connection's verified peer certificates on every request
//! (`Arc<TlsInfo>`), where the request middleware reads them (`client_cert`). Through a standby of
//! a cluster, the standby verifies the certificate and vouches for it; behind a TLS gateway, the
//! gateway may pass the one it verified (`forward`).

mod conn;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::{Handle, Server};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::{Config, LimitsConfig, TlsConfig};
use crate::crypto::CertIdentity;

/// Installs ring as rustls' process-wide provider; harmless if already done.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen on {addr} (if another process holds the port, stop it or choose another: `listen` in the config, MEDIAVAULT_LISTEN, or `demo --port N`)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "TLS certificate {cert} / key {key}: {source}; run `mediavault certs dev` for a development certificate, or set tls.cert_file and tls.key_file"
    )]
    Tls {
        cert: String,
        key: String,
        source: std::io::Error,
    },
    #[error(
        "TLS client CA {file}: {problem}; tls.client_ca_file must name the PEM certificate of the CA that issues publishing tools' client certificates"
    )]
    ClientCa { file: String, problem: String },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound server that has not started accepting yet: the address is known (port 0 resolved).
pub struct Bound {
    listener: std::net::TcpListener,
    pub addr: SocketAddr,
    tls: Option<RustlsConfig>,
    limits: LimitsConfig,
}

pub async fn bind(config: &Config) -> Result<Bound, ServeError> {
    install_crypto_provider();
    let tls = if config.tls.plain_http {
        None
    } else {
        Some(tls_config(&config.tls).await?)
    };
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    Ok(Bound {
        listener,
        addr,
        tls,
        limits: config.limits.clone(),
    })
}

impl Bound {
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `handle` is told to shut down; in-flight requests get `grace` to finish.
    pub async fn serve(self, app: Router, handle: Handle<SocketAddr>) -> Result<(), ServeError> {
        let make = conn::LimitConnections::new(
            app.into_make_service_with_connect_info::<SocketAddr>(),
            self.limits.max_connections,
        );
        let header = Duration::from_secs(self.limits.header_read_timeout_seconds);
        let guard = conn::GuardAcceptor::new(Duration::from_secs(self.limits.idle_timeout_seconds));
        let server = axum_server::from_tcp(self.listener)?;
        match self.tls {
            Some(tls) => {
                let acceptor = RustlsAcceptor::new(tls)
                    .handshake_timeout(header)
                    .acceptor(guard);
                bounded(server.acceptor(acceptor), handle, header)
                    .serve(make)
                    .await?
            }
            None => {
                bounded(server.acceptor(guard), handle, header)
                    .serve(make)
                    .await?
            }
        }
        Ok(())
    }
}

async fn tls_config(tls: &TlsConfig) -> Result<RustlsConfig, ServeError> {
    let tls_error = |source| ServeError::Tls {
        cert: tls.cert_file.display().to_string(),
        key: tls.key_file.display().to_string(),
        source,
    };
    let Some(ca) = &tls.client_ca_file else {
        return RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
            .await
            .map_err(tls_error);
    };
    let invalid = |e: &dyn std::fmt::Display| {
        tls_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.to_string(),
        ))
    };
    let chain = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(&e))?;
    // Only the error kind is shown for the key: its parser's message could quote key material.
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|_| invalid(&"no PEM private key could be read"))?;
    let verifier = client_verifier(ca)?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| invalid(&e))?;
    // What axum-server sets on the configurations it builds itself.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// Verifies client certificates against `ca`, but lets clients without one through: the API
/// decides per tool whether a certificate is needed (deny by default is the tool's binding, not
/// the handshake, so the console and unbound tools keep working).
fn client_verifier(
    ca: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ServeError> {
    let fail = |problem: String| ServeError::ClientCa {
        file: ca.display().to_string(),
        problem,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| fail(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| fail(e.to_string()))?;
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("no certificate in the file".into()));
    }
    WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| fail(e.to_string()))
}

/// A client certificate (DER) verified by someone the vault trusts on this request's behalf: a
/// standby of the cluster, in its own handshake with the client (its vouch's MAC verified), or
/// the configured TLS gateway (`gateway.client_cert_header`, on the gateway's connections only).
/// See `forward`.
#[derive(Debug, Clone)]
pub struct VouchedCert(pub Vec<u8>);

/// The client's verified certificate (DER): the one vouched for, else the one this connection
/// presented (the first of the chain is the client's own; rustls verified the chain during the
/// handshake).
pub fn client_cert_der(extensions: &axum::http::Extensions) -> Option<&[u8]> {
    if let Some(VouchedCert(der)) = extensions.get::<VouchedCert>() {
        return Some(der);
    }
    let info = extensions.get::<Arc<axum_server::tls::TlsInfo>>()?;
    info.peer_certificates.first().map(|der| der.as_ref())
}

/// The client's verified certificate, as the audit log and the tool's binding read it.
pub fn client_cert(extensions: &axum::http::Extensions) -> Option<CertIdentity> {
    client_cert_der(extensions).map(CertIdentity::of_peer)
}

/// The per-connection time limits that do not depend on TLS.
fn bounded<A>(
    server: Server<SocketAddr, A>,
    handle: Handle<SocketAddr>,
    header: Duration,
) -> Server<SocketAddr, A> {
    // Also covers hyper's protocol detection and an HTTP/2 client that never opens a stream.
    let mut server = server.handle(handle).first_request_timeout(header);
    // hyper restarts this timer whenever an HTTP/1 connection goes idle, so it also bounds the
    // wait for the next request on a kept-alive connection.
    server.http_builder().http1().header_read_timeout(header);
    server
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub const GRACE: Duration = Duration::from_secs(10);
