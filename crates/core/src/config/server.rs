//! The sections about serving: TLS, sessions, login lockout, connection and request limits,
//! rate limits, and logging.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Plain HTTP, accepted only for a loopback listen address (demo, local tests).
    pub plain_http: bool,
    /// CA certificate(s), PEM, that issue publishing tools' client certificates. When set, the
    /// server asks every TLS client for a certificate and verifies one if given; a client without
    /// one still connects (browsers, unbound tools). A tool bound to a certificate then works only
    /// with it. Unset: no client certificates (and a bound tool cannot be used).
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub idle_timeout_minutes: u32,
    pub max_lifetime_hours: u32,
    /// How long one TOTP step-up authorises the session's sensitive actions (people, tools,
    /// rotations, freezes); 0 asks for a code with every action. Approving or denying a post
    /// and closing an incident ask for a code each time regardless.
    pub step_up_minutes: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    pub max_failures: u32,
    pub minutes: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub body_bytes: usize,
    pub request_timeout_seconds: u64,
    /// How long a client has to send a complete request head; the TLS handshake gets as long
    /// again. A client that dribbles a header would otherwise hold its connection for ever.
    pub header_read_timeout_seconds: u64,
    /// A connection on which nothing has moved either way for this long is closed. Must be longer
    /// than `request_timeout_seconds`, so a request still being worked on never looks idle.
    pub idle_timeout_seconds: u64,
    /// Connections served at once. Past it the server stops accepting, and new clients wait in
    /// the kernel's listen backlog until a connection closes.
    pub max_connections: usize,
}

/// Requests per period and burst, per client address (and per token for token calls).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub login_per_minute: u32,
    pub login_burst: u32,
    pub checkout_per_minute: u32,
    pub checkout_burst: u32,
    pub token_per_second: u32,
    pub token_burst: u32,
    pub general_per_second: u32,
    pub general_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: PathBuf::from("certs/dev/server.pem"),
            key_file: PathBuf::from("certs/dev/server-key.pem"),
            plain_http: false,
            client_ca_file: None,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout_minutes: 30,
            max_lifetime_hours: 12,
            step_up_minutes: 5,
        }
    }
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            minutes: 15,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            body_bytes: 1024 * 1024,
            request_timeout_seconds: 30,
            header_read_timeout_seconds: 10,
            idle_timeout_seconds: 60,
            max_connections: 512,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login_per_minute: 20,
            login_burst: 10,
            checkout_per_minute: 60,
            checkout_burst: 20,
            token_per_second: 50,
            token_burst: 100,
            general_per_second: 100,
            general_burst: 200,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl LockoutConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_failures == 0 || self.minutes == 0 {
            return Err(ConfigError(
                "lockout.max_failures and lockout.minutes must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl SessionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.idle_timeout_minutes == 0 || self.max_lifetime_hours == 0 {
            return fail(
                "session.idle_timeout_minutes and session.max_lifetime_hours must be at least 1"
                    .into(),
            );
        }
        if self.step_up_minutes > 60 {
            return fail(
                "session.step_up_minutes must be at most 60 (0 asks for a code with every change)"
                    .into(),
            );
        }
        Ok(())
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.body_bytes < 1024 {
            return fail("limits.body_bytes must be at least 1024".into());
        }
        for (name, v) in [
            ("request_timeout_seconds", self.request_timeout_seconds),
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            ("idle_timeout_seconds", self.idle_timeout_seconds),
        ] {
            if v == 0 {
                return fail(format!("limits.{name} must be at least 1"));
            }
        }
        if self.idle_timeout_seconds <= self.request_timeout_seconds {
            return fail(format!(
                "limits.idle_timeout_seconds ({}) must be longer than limits.request_timeout_seconds ({}), or a connection could be closed as idle while its request is still being handled",
                self.idle_timeout_seconds, self.request_timeout_seconds
            ));
        }
        if self.max_connections == 0 {
            return fail(
                "limits.max_connections must be at least 1 (it caps connections served at once)"
                    .into(),
            );
        }
        Ok(())
    }
}

impl RateLimitConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [
            ("login_per_minute", self.login_per_minute),
            ("login_burst", self.login_burst),
            ("checkout_per_minute", self.checkout_per_minute),
            ("checkout_burst", self.checkout_burst),
            ("token_per_second", self.token_per_second),
            ("token_burst", self.token_burst),
            ("general_per_second", self.general_per_second),
            ("general_burst", self.general_burst),
        ] {
            if v == 0 {
                return Err(ConfigError(format!(
                    "rate_limits.{name} must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(
            self.level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(ConfigError(format!(
                "log.level must be one of error, warn, info, debug, trace; got {:?}",
                self.level
            )));
        }
        Ok(())
    }
}
