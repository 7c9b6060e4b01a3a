//! Notification channels (webhooks: generic, WeCom, DingTalk, Feishu) and their delivery settings. The
//! channels' `Debug` hides the robot URL and the signing secret.

use serde::Deserialize;

use super::ConfigError;

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
    /// DingTalk's or Feishu's signed mode: the robot's secret; the vault adds `timestamp` and
    /// `sign` (DingTalk in the URL, Feishu in the body).
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
    /// Feishu (飞书) custom bot.
    Feishu,
}

impl NotifyChannel {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return fail(format!(
                "notify channel {:?}: url must be http(s)",
                self.name
            ));
        }
        if self.attempts == 0 || self.timeout_seconds == 0 {
            return fail(format!(
                "notify channel {:?}: attempts and timeout_seconds must be at least 1",
                self.name
            ));
        }
        if self.secret.is_some() && !matches!(self.kind, NotifyKind::Dingtalk | NotifyKind::Feishu)
        {
            return fail(format!(
                "notify channel {:?}: secret is for DingTalk's and Feishu's signed modes only",
                self.name
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
