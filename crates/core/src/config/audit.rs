//! The audit log's retention.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Entries younger than this can never be pruned; the law sets a floor of 180 days.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: 180,
        }
    }
}

impl AuditConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.retention_days < 180 {
            return Err(ConfigError(format!(
                "audit.retention_days is {}, below the legal floor of 180 days (Cybersecurity Law art. 21)",
                self.retention_days
            )));
        }
        Ok(())
    }
}
