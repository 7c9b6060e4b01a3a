//! The `[platforms]` section of the configuration: where the platforms' APIs are and how the
//! broker paces its calls. The vault's configuration (mediavault-core) includes it.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformsConfig {
    pub wechat_base_url: String,
    pub weibo_base_url: String,
    pub canary_interval_seconds: u64,
    pub heartbeat_interval_seconds: u64,
    pub request_timeout_seconds: u64,
}

impl Default for PlatformsConfig {
    fn default() -> Self {
        Self {
            wechat_base_url: "https://api.weixin.qq.com".into(),
            weibo_base_url: "https://api.weibo.com".into(),
            canary_interval_seconds: 300,
            heartbeat_interval_seconds: 3600,
            request_timeout_seconds: 15,
        }
    }
}
