//! Checkouts: how often expired ones are swept.

use serde::Deserialize;

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
