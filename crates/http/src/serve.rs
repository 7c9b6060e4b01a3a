//! Serving: HTTPS with rustls (ring provider), or plain HTTP on loopback when configured.
//!
//! Slow clients are bounded at every stage: the TLS handshake and the first request each get
//! `limits.header_read_timeout_seconds`, hyper closes an HTTP/1 connection whose request head
//! takes longer, a connection on which nothing moves for `limits.idle_timeout_seconds` is closed
//! (HTTP/2 included), and at most `limits.max_connections` are served at once ([`conn`]).

mod conn;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::{Handle, Server};

use crate::config::{Config, LimitsConfig};

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
        Some(
            RustlsConfig::from_pem_file(&config.tls.cert_file, &config.tls.key_file)
                .await
                .map_err(|source| ServeError::Tls {
                    cert: config.tls.cert_file.display().to_string(),
                    key: config.tls.key_file.display().to_string(),
                    source,
                })?,
        )
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
