//! The publication watch and the early-warning rules (what each rule kind watches, and the
//! default rule set).

use serde::Deserialize;

use super::ConfigError;

/// The publication watch: what is live on each account, compared with what the vault published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    pub enabled: bool,
    pub interval_seconds: u64,
    /// How many of the newest posts per account each round lists, and at most how many of the
    /// vault's own recent posts per account each round follows up.
    pub page_size: u32,
    /// How long after it went out the watch follows a post (deleted by the account's users,
    /// blocked by the platform, hidden), in days; 0 follows none.
    pub follow_days: u32,
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
            follow_days: 3,
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

/// Checks both sections together: their intervals share one message.
pub(super) fn validate(
    watch: &WatchConfig,
    early_warning: &EarlyWarningConfig,
) -> Result<(), ConfigError> {
    let fail = |m: String| Err(ConfigError(m));
    if watch.interval_seconds == 0 || early_warning.interval_seconds == 0 {
        return fail(
            "watch.interval_seconds and early_warning.interval_seconds must be at least 1".into(),
        );
    }
    if !(1..=100).contains(&watch.page_size) {
        return fail("watch.page_size must be 1-100".into());
    }
    if watch.follow_days > 90 {
        return fail("watch.follow_days must be 0-90".into());
    }
    for r in &early_warning.rules {
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
    Ok(())
}
