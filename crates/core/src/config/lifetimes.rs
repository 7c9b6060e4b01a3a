//! `[lifetimes]`: when the vault reminds the office of a credential's age and of a platform
//! token's expiry (to the notification channels and on the console's home page).

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifetimesConfig {
    /// A stored credential (the AppSecret, the Weibo app secret and token) older than this is due
    /// for rotation.
    pub secret_max_age_days: u32,
    /// A platform token (Weibo's OAuth access token) that expires within this is reminded of, so
    /// an administrator re-authorises the account in time.
    pub token_warn_days: u32,
}

impl Default for LifetimesConfig {
    fn default() -> Self {
        Self {
            secret_max_age_days: 90,
            token_warn_days: 14,
        }
    }
}

impl LifetimesConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=3650).contains(&self.secret_max_age_days) {
            return Err(ConfigError(
                "lifetimes.secret_max_age_days must be 1-3650".into(),
            ));
        }
        if !(1..=365).contains(&self.token_warn_days) {
            return Err(ConfigError(
                "lifetimes.token_warn_days must be 1-365".into(),
            ));
        }
        Ok(())
    }
}
