//! Configuration: one TOML file plus `MEDIAVAULT_*` environment overrides, checked at start.
//!
//! Environment names map onto keys: `MEDIAVAULT_LISTEN` sets `listen`, `MEDIAVAULT_TLS__CERT_FILE`
//! sets `tls.cert_file` (a double underscore steps into a table). Values are read as TOML literals
//! when they parse (`true`, `30`), as strings otherwise. Unknown keys, from either source, are
//! errors that name where they came from.

pub use crate::platforms::PlatformsConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Holds the SQLite database and, unless `root_key_file` says otherwise, the root key.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub root_key_file: Option<PathBuf>,
    pub policies_dir: PathBuf,
    pub tls: TlsConfig,
    pub session: SessionConfig,
    pub lockout: LockoutConfig,
    pub limits: LimitsConfig,
    pub rate_limits: RateLimitConfig,
    pub platforms: PlatformsConfig,
    pub log: LogConfig,
    pub audit: AuditConfig,
    #[serde(rename = "notify")]
    pub notify: Vec<NotifyChannel>,
    /// Incident playbooks; `<policies_dir>/playbooks` when not set.
    pub playbooks_dir: Option<PathBuf>,
    pub watch: WatchConfig,
    pub early_warning: EarlyWarningConfig,
    pub checkout: CheckoutConfig,
}

/// Checkouts past their deadline are marked expired (and the channels told) by a sweep this
/// often; until then a late claim or token call is refused anyway, so the interval only decides
/// how soon people hear of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckoutConfig {
    pub expiry_sweep_seconds: u64,
}

impl Default for CheckoutConfig {
    fn default() -> Self {
        Self {
            expiry_sweep_seconds: 15,
        }
    }
}

/// The publication watch: what is live on each account, compared with what the vault published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    pub enabled: bool,
    pub interval_seconds: u64,
    /// How many of the newest posts per account each round lists.
    pub page_size: u32,
}

/// Early-warning rules: each raises an alert (audited, notified); one with `open_playbook` also
/// opens an incident from that playbook on the account concerned.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyWarningConfig {
    /// How often the counting rules (TOTP failures, reveals, hand-outs) are evaluated.
    pub interval_seconds: u64,
    pub rules: Vec<WarningRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarningRule {
    pub name: String,
    pub kind: RuleKind,
    /// How many occurrences within the window raise the alert (1 for single events).
    #[serde(default = "one")]
    pub threshold: u32,
    #[serde(default = "fifteen")]
    pub window_minutes: u32,
    /// Open an incident from this playbook on the account (needs an account: not for rules that
    /// count across users).
    #[serde(default)]
    pub open_playbook: Option<String>,
}

fn one() -> u32 {
    1
}

fn fifteen() -> u32 {
    15
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Failed TOTP codes of one user (login, checkout, step-up).
    TotpFailuresUser,
    /// Failed TOTP codes across all users.
    TotpFailuresAny,
    /// Checkouts refused by policy (outside allowed hours, from a network not allowed), per account.
    CheckoutRefused,
    /// The WeChat leak canary tripped.
    CanaryTripped,
    /// The vault's platform token was cancelled by someone else.
    TokenCancelled,
    /// A credential heartbeat failed.
    HeartbeatFailed,
    /// Credential reveals per account.
    Reveals,
    /// Platform-token hand-outs per account.
    Handouts,
    /// A post is live on the account that the vault did not publish.
    UnknownPost,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::TotpFailuresUser => "totp_failures_user",
            RuleKind::TotpFailuresAny => "totp_failures_any",
            RuleKind::CheckoutRefused => "checkout_refused",
            RuleKind::CanaryTripped => "canary_tripped",
            RuleKind::TokenCancelled => "token_cancelled",
            RuleKind::HeartbeatFailed => "heartbeat_failed",
            RuleKind::Reveals => "reveals",
            RuleKind::Handouts => "handouts",
            RuleKind::UnknownPost => "unknown_post",
        }
    }
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_seconds: 300,
            page_size: 20,
        }
    }
}

impl Default for EarlyWarningConfig {
    fn default() -> Self {
        let rule = |name: &str, kind, threshold, window_minutes| WarningRule {
            name: name.into(),
            kind,
            threshold,
            window_minutes,
            open_playbook: None,
        };
        Self {
            interval_seconds: 60,
            rules: vec![
                rule("totp-failures-user", RuleKind::TotpFailuresUser, 3, 15),
                rule("totp-failures-any", RuleKind::TotpFailuresAny, 10, 15),
                rule("checkout-refused", RuleKind::CheckoutRefused, 3, 60),
                rule("canary", RuleKind::CanaryTripped, 1, 15),
                rule("token-cancelled", RuleKind::TokenCancelled, 1, 15),
                rule("heartbeat", RuleKind::HeartbeatFailed, 1, 15),
                rule("reveals", RuleKind::Reveals, 5, 60),
                rule("handouts", RuleKind::Handouts, 20, 60),
                rule("unknown-post", RuleKind::UnknownPost, 1, 15),
            ],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Plain HTTP, accepted only for a loopback listen address (demo, local tests).
    pub plain_http: bool,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Entries younger than this can never be pruned; the law sets a floor of 180 days.
    pub retention_days: u32,
}

/// A webhook channel. Channels live here only, never created through the API, so a stolen admin
/// session cannot redirect alerts. `Debug` shows the name and kind, never the URL (it carries the
/// robot's key) or the signing secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyChannel {
    pub name: String,
    pub kind: NotifyKind,
    /// A robot URL carries its key; it is never logged or audited (the channel name is).
    pub url: String,
    /// DingTalk signed mode: the robot's `SEC…` secret; the vault adds `timestamp` and `sign`.
    #[serde(default)]
    pub secret: Option<crate::crypto::SecretString>,
    /// Delivery attempts before the notice becomes an audited dead letter.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Per attempt.
    #[serde(default = "default_notify_timeout")]
    pub timeout_seconds: u64,
    /// Wait before the second attempt; doubles after each failure.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

impl std::fmt::Debug for NotifyChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyChannel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &"[REDACTED]")
            .field("attempts", &self.attempts)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("backoff_ms", &self.backoff_ms)
            .finish_non_exhaustive()
    }
}

impl NotifyChannel {
    /// A channel with the default delivery settings (4 attempts, 10 s each, 1 s backoff).
    pub fn new(name: &str, kind: NotifyKind, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            url: url.to_owned(),
            secret: None,
            attempts: default_attempts(),
            timeout_seconds: default_notify_timeout(),
            backoff_ms: default_backoff(),
        }
    }
}

fn default_attempts() -> u32 {
    4
}

fn default_notify_timeout() -> u64 {
    10
}

fn default_backoff() -> u64 {
    1000
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    Generic,
    Wecom,
    Dingtalk,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            root_key_file: None,
            policies_dir: PathBuf::from("./policies"),
            tls: TlsConfig::default(),
            session: SessionConfig::default(),
            lockout: LockoutConfig::default(),
            limits: LimitsConfig::default(),
            rate_limits: RateLimitConfig::default(),
            platforms: PlatformsConfig::default(),
            log: LogConfig::default(),
            audit: AuditConfig::default(),
            notify: Vec::new(),
            playbooks_dir: None,
            watch: WatchConfig::default(),
            early_warning: EarlyWarningConfig::default(),
            checkout: CheckoutConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: PathBuf::from("certs/dev/server.pem"),
            key_file: PathBuf::from("certs/dev/server-key.pem"),
            plain_http: false,
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

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: 180,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl LimitsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
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

const ENV_PREFIX: &str = "MEDIAVAULT_";
/// Environment variables read by the CLI itself rather than mapped onto config keys.
/// (`MEDIAVAULT_ADMIN_PROFILE` is the admin CLI's: an admin who sets it in their shell must
/// still be able to run `bootstrap`, `audit` or `serve` there.)
const ENV_NOT_KEYS: &[&str] = &[
    "MEDIAVAULT_CONFIG",
    "MEDIAVAULT_LOG",
    "MEDIAVAULT_ADMIN_PROFILE",
];

impl Config {
    /// Reads the file (if given), applies the environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(file, &env)
    }

    pub fn load_with_env(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("config file {}: cannot read: {e}", path.display()))
                })?;
                let table: toml::Table = toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
                // Deserialize once from text so that unknown keys are reported with their line.
                toml::from_str::<Config>(&text)
                    .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
                table
            }
            None => toml::Table::new(),
        };
        let from_file = table.clone();
        let mut overrides = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_NOT_KEYS.contains(&name.as_str()) || rest.is_empty() {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(&mut table, &path, env_value(value))
                .map_err(|e| ConfigError(format!("environment variable {name}: {e}")))?;
            overrides.push((name.as_str(), path, value.as_str()));
        }
        match Self::checked(table) {
            Ok(config) => Ok(config),
            Err(e) if overrides.is_empty() => Err(e),
            Err(e) => Err(Self::blame(&from_file, &overrides, e)),
        }
    }

    /// Deserializes and validates a complete table.
    fn checked(table: toml::Table) -> Result<Self, ConfigError> {
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// Names the `MEDIAVAULT_*` variable that makes a configuration invalid: the first one that
    /// fails on its own over the file, else all of them (a combination fails). Values are never
    /// repeated: a variable may hold a secret.
    fn blame(
        from_file: &toml::Table,
        overrides: &[(&str, Vec<String>, &str)],
        e: ConfigError,
    ) -> ConfigError {
        if Self::checked(from_file.clone()).is_ok() {
            for (name, path, value) in overrides {
                let mut alone = from_file.clone();
                if set_path(&mut alone, path, env_value(value)).is_err() {
                    continue;
                }
                if let Err(why) = Self::checked(alone) {
                    return ConfigError(format!(
                        "environment variable {name} (sets {}): {}",
                        path.join("."),
                        why.0
                    ));
                }
            }
        }
        let names: Vec<&str> = overrides.iter().map(|(n, _, _)| *n).collect();
        ConfigError(format!(
            "configuration (with environment variables {}): {}",
            names.join(", "),
            e.0
        ))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.tls.plain_http && !self.listen.ip().is_loopback() {
            return fail(format!(
                "tls.plain_http is only allowed on a loopback address, but listen is {}; use TLS or listen on 127.0.0.1",
                self.listen
            ));
        }
        if self.lockout.max_failures == 0 || self.lockout.minutes == 0 {
            return fail("lockout.max_failures and lockout.minutes must be at least 1".into());
        }
        if self.session.idle_timeout_minutes == 0 || self.session.max_lifetime_hours == 0 {
            return fail(
                "session.idle_timeout_minutes and session.max_lifetime_hours must be at least 1"
                    .into(),
            );
        }
        if self.session.step_up_minutes > 60 {
            return fail(
                "session.step_up_minutes must be at most 60 (0 asks for a code with every change)"
                    .into(),
            );
        }
        if self.limits.body_bytes < 1024 {
            return fail("limits.body_bytes must be at least 1024".into());
        }
        self.limits.validate()?;
        if self.audit.retention_days < 180 {
            return fail(format!(
                "audit.retention_days is {}, below the legal floor of 180 days (Cybersecurity Law art. 21)",
                self.audit.retention_days
            ));
        }
        let r = &self.rate_limits;
        for (name, v) in [
            ("login_per_minute", r.login_per_minute),
            ("login_burst", r.login_burst),
            ("checkout_per_minute", r.checkout_per_minute),
            ("checkout_burst", r.checkout_burst),
            ("token_per_second", r.token_per_second),
            ("token_burst", r.token_burst),
            ("general_per_second", r.general_per_second),
            ("general_burst", r.general_burst),
        ] {
            if v == 0 {
                return fail(format!("rate_limits.{name} must be at least 1"));
            }
        }
        for (name, url) in [
            ("platforms.wechat_base_url", &self.platforms.wechat_base_url),
            ("platforms.weibo_base_url", &self.platforms.weibo_base_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return fail(format!("{name} must be an http(s) URL, got {url:?}"));
            }
        }
        for ch in &self.notify {
            if !(ch.url.starts_with("https://") || ch.url.starts_with("http://")) {
                return fail(format!("notify channel {:?}: url must be http(s)", ch.name));
            }
            if ch.attempts == 0 || ch.timeout_seconds == 0 {
                return fail(format!(
                    "notify channel {:?}: attempts and timeout_seconds must be at least 1",
                    ch.name
                ));
            }
            if ch.secret.is_some() && ch.kind != NotifyKind::Dingtalk {
                return fail(format!(
                    "notify channel {:?}: secret is for DingTalk's signed mode only",
                    ch.name
                ));
            }
        }
        if self.watch.interval_seconds == 0 || self.early_warning.interval_seconds == 0 {
            return fail(
                "watch.interval_seconds and early_warning.interval_seconds must be at least 1"
                    .into(),
            );
        }
        if !(1..=100).contains(&self.watch.page_size) {
            return fail("watch.page_size must be 1-100".into());
        }
        for r in &self.early_warning.rules {
            if r.threshold == 0 || r.window_minutes == 0 {
                return fail(format!(
                    "early_warning rule {:?}: threshold and window_minutes must be at least 1",
                    r.name
                ));
            }
            if r.open_playbook.is_some() && r.kind == RuleKind::TotpFailuresAny {
                return fail(format!(
                    "early_warning rule {:?}: totp_failures_any concerns no account, so it cannot open a playbook",
                    r.name
                ));
            }
        }
        if !matches!(
            self.log.level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return fail(format!(
                "log.level must be one of error, warn, info, debug, trace; got {:?}",
                self.log.level
            ));
        }
        Ok(())
    }

    pub fn root_key_path(&self) -> PathBuf {
        self.root_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("root.key"))
    }

    pub fn playbooks_path(&self) -> PathBuf {
        self.playbooks_dir
            .clone()
            .unwrap_or_else(|| self.policies_dir.join("playbooks"))
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("mediavault.db")
    }
}

fn env_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("{first} is not a table")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn shipped_example_parses_to_the_defaults() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mediavault.example.toml");
        let c = Config::load_with_env(Some(&p), &[]).unwrap();
        let d = Config::default();
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.rate_limits.login_burst, d.rate_limits.login_burst);
        assert_eq!(
            c.platforms.canary_interval_seconds,
            d.platforms.canary_interval_seconds
        );
        assert_eq!(
            (
                c.limits.header_read_timeout_seconds,
                c.limits.idle_timeout_seconds,
                c.limits.max_connections
            ),
            (
                d.limits.header_read_timeout_seconds,
                d.limits.idle_timeout_seconds,
                d.limits.max_connections
            )
        );
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load_with_env(None, &[]).unwrap();
        assert_eq!(c.lockout.max_failures, 5);
        assert_eq!(c.database_path(), PathBuf::from("./data/mediavault.db"));
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:9000\"\n[tls]\nplain_htttp = true\n",
        )
        .unwrap();
        let err = Config::load_with_env(Some(&p), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("plain_htttp"), "{err}");
    }

    #[test]
    fn connection_limits_are_checked() {
        let err = |pairs: &[(&str, &str)]| {
            Config::load_with_env(None, &env(pairs))
                .unwrap_err()
                .to_string()
        };
        let e = err(&[("MEDIAVAULT_LIMITS__HEADER_READ_TIMEOUT_SECONDS", "0")]);
        assert!(e.contains("limits.header_read_timeout_seconds"), "{e}");
        let e = err(&[("MEDIAVAULT_LIMITS__IDLE_TIMEOUT_SECONDS", "30")]);
        assert!(e.contains("limits.idle_timeout_seconds (30)"), "{e}");
        assert!(e.contains("request_timeout_seconds (30)"), "{e}");
        let e = err(&[("MEDIAVAULT_LIMITS__MAX_CONNECTIONS", "0")]);
        assert!(e.contains("limits.max_connections"), "{e}");
        let c = Config::load_with_env(
            None,
            &env(&[
                ("MEDIAVAULT_LIMITS__REQUEST_TIMEOUT_SECONDS", "1"),
                ("MEDIAVAULT_LIMITS__IDLE_TIMEOUT_SECONDS", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(c.limits.idle_timeout_seconds, 2);
    }

    #[test]
    fn environment_overrides_and_is_checked() {
        let c = Config::load_with_env(
            None,
            &env(&[
                ("MEDIAVAULT_LISTEN", "127.0.0.1:9999"),
                ("MEDIAVAULT_TLS__PLAIN_HTTP", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert!(c.tls.plain_http);
        // The CLI's own variables are not configuration keys.
        let c = Config::load_with_env(
            None,
            &env(&[
                ("MEDIAVAULT_ADMIN_PROFILE", "/home/a/admin.toml"),
                ("MEDIAVAULT_CONFIG", "/etc/mediavault/mediavault.toml"),
                ("MEDIAVAULT_LOG", "debug"),
            ]),
        );
        assert!(c.is_ok(), "{:?}", c.err().map(|e| e.to_string()));
        let err = Config::load_with_env(None, &env(&[("MEDIAVAULT_LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        let err = Config::load_with_env(
            None,
            &env(&[
                ("MEDIAVAULT_LISTEN", "0.0.0.0:8443"),
                ("MEDIAVAULT_TLS__PLAIN_HTTP", "true"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(err.contains("MEDIAVAULT_LISTEN"), "{err}");
        // A bad value names its variable (and not its value).
        let err = Config::load_with_env(
            None,
            &env(&[
                ("MEDIAVAULT_LOG__LEVEL", "info"),
                ("MEDIAVAULT_LISTEN", "not-an-address"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("environment variable MEDIAVAULT_LISTEN"),
            "{err}"
        );
        assert!(err.contains("(sets listen)"), "{err}");
        assert!(!err.contains("not-an-address"), "{err}");
        let err = Config::load_with_env(None, &env(&[("MEDIAVAULT_LIMITS__MAX_CONNECTIONS", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MEDIAVAULT_LIMITS__MAX_CONNECTIONS"), "{err}");
    }
}

#[cfg(test)]
mod notify_debug_tests {
    #[test]
    fn notify_channel_debug_hides_the_robot_key() {
        let c: super::NotifyChannel = toml::from_str(
            "name = \"robot\"\nkind = \"wecom\"\nurl = \"https://qyapi.example/send?key=ROBOT-KEY-42\"\nsecret = \"SEC-SIGNING-7\"\n",
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("robot"), "{shown}");
        assert!(!shown.contains("ROBOT-KEY-42"), "{shown}");
        assert!(!shown.contains("SEC-SIGNING-7"), "{shown}");
    }
}
