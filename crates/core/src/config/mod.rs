//! Configuration: one TOML file plus `MEDIAVAULT_*` environment overrides, checked at start.
//!
//! Environment names map onto keys: `MEDIAVAULT_LISTEN` sets `listen`, `MEDIAVAULT_TLS__CERT_FILE`
//! sets `tls.cert_file` (a double underscore steps into a table). Values are read as TOML literals
//! when they parse (`true`, `30`), as strings otherwise. Unknown keys, from either source, are
//! errors that name where they came from.
//!
//! Each group of sections (serving, notification, watch and early warning, audit, checkout) has
//! its own file with its types, their defaults and their own checks; all are re-exported here.

mod audit;
mod checkout;
mod cluster;
mod database;
mod lifetimes;
mod notify;
mod server;
#[cfg(test)]
mod tests;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::platforms::PlatformsConfig;
pub use audit::AuditConfig;
pub use checkout::CheckoutConfig;
pub use cluster::ClusterConfig;
pub use database::{DatabaseConfig, DatabaseUrl, StoreLocation};
pub use lifetimes::LifetimesConfig;
pub use notify::{NotifyChannel, NotifyKind};
pub use server::{
    LimitsConfig, LockoutConfig, LogConfig, LogFormat, RateLimitConfig, SessionConfig, TlsConfig,
};
pub use watch::{EarlyWarningConfig, RuleKind, WarningRule, WatchConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Holds the SQLite database (unless `database.url` names PostgreSQL) and, unless
    /// `root_key_file` says otherwise, the root key.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
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
    pub lifetimes: LifetimesConfig,
    pub crypto: CryptoConfig,
    pub gateway: GatewayConfig,
    /// Absent: a single node.
    pub cluster: Option<ClusterConfig>,
}

/// `[gateway]`: a TLS/TLCP gateway or reverse proxy in front of the vault (docs/deployment.md
/// §13). Its connections carry every client, so the client's own address comes from the last
/// `X-Forwarded-For` entry, which the gateway appends, and only on connections from these
/// addresses; anyone else's `X-Forwarded-For` is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// The gateway's own addresses (CIDR), e.g. `["127.0.0.1/32"]` for one on this host.
    pub addresses: Vec<ipnet::IpNet>,
    /// The request header in which the gateway passes the client certificate it verified (for
    /// a tool bound to one), e.g. `"x-ssl-client-cert"`: PEM, URL-encoded or not (nginx's
    /// `$ssl_client_escaped_cert`), or base64 DER. Read only on the gateway's connections;
    /// unset, a gateway passes no certificates.
    pub client_cert_header: Option<String>,
}

impl GatewayConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let Some(name) = &self.client_cert_header else {
            return Ok(());
        };
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token {
            return Err(ConfigError(format!(
                "gateway.client_cert_header {name:?} is not a header name (letters, digits, '-')"
            )));
        }
        if name.to_ascii_lowercase().starts_with("x-mediavault-") {
            return Err(ConfigError(format!(
                "gateway.client_cert_header {name:?}: x-mediavault-* headers are the vault's own"
            )));
        }
        if self.addresses.is_empty() {
            return Err(ConfigError(
                "gateway.client_cert_header is set but gateway.addresses is empty: name the gateway's addresses, or no certificate is ever read".into(),
            ));
        }
        Ok(())
    }

    /// Whether a connection from `peer` is the gateway's.
    pub fn is_gateway(&self, peer: std::net::IpAddr) -> bool {
        self.addresses.iter().any(|net| net.contains(&peer))
    }
}

/// `[crypto]`: the cryptographic suite, chosen once at `init` and recorded in the store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CryptoConfig {
    /// `"standard"` (AES-256-GCM, HMAC-SHA256; the default) or `"sm"` (SM4-GCM, HMAC-SM3, SM2
    /// checkpoints). Read by `init`; afterwards the store's own suite is used, and a value set
    /// here that differs from it stops the start (someone believes the vault runs a suite it
    /// does not).
    pub suite: Option<crate::crypto::Suite>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database: DatabaseConfig::default(),
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
            lifetimes: LifetimesConfig::default(),
            crypto: CryptoConfig::default(),
            gateway: GatewayConfig::default(),
            cluster: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
                file_table(path, &text)?
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

    /// A configuration from the text of a file alone (no environment), checked as [`Self::load`]
    /// checks it. Not for product code, which loads a file; it exists so that the `fuzz/` targets,
    /// a package of their own, can feed the parser text without writing a file per input.
    #[doc(hidden)]
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::checked(file_table(Path::new("mediavault.toml"), text)?)
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

    /// Checks each section in turn; the first failure is the one reported. Checked here: plain
    /// HTTP against `listen` (two sections), and the platforms' URLs (their section lives in
    /// `crate::platforms`).
    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.tls.plain_http && !self.listen.ip().is_loopback() {
            return fail(format!(
                "tls.plain_http is only allowed on a loopback address, but listen is {}; use TLS or listen on 127.0.0.1",
                self.listen
            ));
        }
        self.database.validate()?;
        self.gateway.validate()?;
        if self.tls.plain_http && self.tls.client_ca_file.is_some() {
            return fail(
                "tls.client_ca_file needs TLS, but tls.plain_http is true; turn plain_http off or remove client_ca_file".into(),
            );
        }
        self.lockout.validate()?;
        self.session.validate()?;
        self.limits.validate()?;
        self.audit.validate()?;
        self.lifetimes.validate()?;
        self.rate_limits.validate()?;
        for (name, url) in [
            ("platforms.wechat_base_url", &self.platforms.wechat_base_url),
            ("platforms.weibo_base_url", &self.platforms.weibo_base_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return fail(format!("{name} must be an http(s) URL, got {url:?}"));
            }
        }
        for ch in &self.notify {
            ch.validate()?;
        }
        watch::validate(&self.watch, &self.early_warning)?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        self.log.validate()
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

    /// The SQLite database file in `data_dir` (whether or not the store is SQLite: see
    /// [`Self::store_location`]).
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("mediavault.db")
    }

    /// Which backend holds the store, and where: what the composition root opens.
    pub fn store_location(&self) -> StoreLocation {
        self.database.location(self.database_path())
    }
}

/// The table of a config file's text, refused with the file named if it is not TOML or has a key
/// no section knows.
fn file_table(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
    // Deserialize once from text so that unknown keys are reported with their line.
    toml::from_str::<Config>(text)
        .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
    Ok(table)
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
