//! The access policy model: the types a loaded policy is made of, and the accessors that show it.
//! Fields are `pub(super)` so that parsing (`parse.rs`) can build them and evaluation (`eval.rs`)
//! can read them; nothing outside `policy::access` sees them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use time::UtcOffset;

use crate::policy::Role;

/// Day names as policies write them, indexed by days from Monday.
pub(super) const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// All loaded access policies, one per account.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub(super) accounts: BTreeMap<String, AccountPolicy>,
}

impl PolicySet {
    /// No policies: every checkout is denied.
    pub fn empty() -> Self {
        PolicySet::default()
    }

    pub fn for_account(&self, account: &str) -> Option<&AccountPolicy> {
        self.accounts.get(account)
    }

    /// Policies in account-id order.
    pub fn iter(&self) -> impl Iterator<Item = &AccountPolicy> {
        self.accounts.values()
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

/// What one checkout level requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelRule {
    /// Distinct approvers needed, none of them the requester: 0, 1 or 2.
    pub approvals: u8,
    /// The checkout must carry `content_sha256` digests, and the proxy only forwards those bodies.
    pub require_content_binding: bool,
    /// How long an approval may wait for its claim before it expires (default 30 minutes).
    pub claim_window: Duration,
}

/// The access policy of one account.
/// The most posts a policy lets through in a window (`max_posts_per_hour`, `max_posts_per_day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostBudget {
    pub limit: u32,
    pub per: BudgetWindow,
}

/// The window a post budget counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetWindow {
    Hour,
    Day,
}

impl BudgetWindow {
    pub fn seconds(self) -> i64 {
        match self {
            BudgetWindow::Hour => 3600,
            BudgetWindow::Day => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BudgetWindow::Hour => "hour",
            BudgetWindow::Day => "day",
        }
    }
}

/// A policy may allow at most this many posts in a window.
pub const POSTS_CEILING: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct AccountPolicy {
    pub(super) account: String,
    pub(super) source: PathBuf,
    pub(super) exclusive: bool,
    pub(super) default_ttl: u64,
    pub(super) max_ttl: u64,
    pub(super) networks: Vec<IpNet>,
    pub(super) hours: Option<Hours>,
    pub(super) calls: Vec<CallRule>,
    pub(super) allow_platform_token: bool,
    pub(super) allow_reveal: bool,
    pub(super) allow_login_totp: bool,
    pub(super) allow_break_glass: bool,
    pub(super) post_budgets: Vec<PostBudget>,
    pub(super) users: Vec<String>,
    pub(super) roles: Vec<Role>,
    pub(super) clients: Vec<String>,
    pub(super) general: Option<LevelRule>,
    pub(super) major: Option<LevelRule>,
}

impl AccountPolicy {
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The file this policy was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Only one live checkout at a time.
    pub fn exclusive(&self) -> bool {
        self.exclusive
    }

    pub fn max_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl)
    }

    /// The allowed calls as written in the policy, e.g. `POST cgi-bin/draft/add`.
    pub fn allowed_calls(&self) -> Vec<String> {
        self.calls.iter().map(CallRule::to_string).collect()
    }

    /// Whether the raw platform access token may be handed out (`POST /platform-token`).
    pub fn allow_platform_token(&self) -> bool {
        self.allow_platform_token
    }

    /// Whether the stored credential may be revealed (`GET /credential`).
    pub fn allow_reveal(&self) -> bool {
        self.allow_reveal
    }

    /// Whether the platform console's login TOTP code may be handed out (`GET /credential/totp`).
    pub fn allow_login_totp(&self) -> bool {
        self.allow_login_totp
    }

    /// Whether an admin may release a pending major checkout alone when no approver can be
    /// reached (break-glass), with a reason and a fresh code; off unless the policy says so.
    pub fn allow_break_glass(&self) -> bool {
        self.allow_break_glass
    }

    /// The account's own publishing budgets, mirroring the platform's limits so the vault refuses
    /// before the platform penalises the app; empty when the policy sets none.
    pub fn post_budgets(&self) -> &[PostBudget] {
        &self.post_budgets
    }

    /// The people and tools listed under `[who]` (users by name, roles, clients), for showing.
    pub fn who(&self) -> (&[String], Vec<&'static str>, &[String]) {
        (
            &self.users,
            self.roles.iter().map(|r| r.as_str()).collect(),
            &self.clients,
        )
    }

    /// The allowed source networks, as written.
    pub fn networks(&self) -> Vec<String> {
        self.networks.iter().map(ToString::to_string).collect()
    }

    /// The allowed hours (`mon,tue 07:00-23:00 Asia/Shanghai`), if the policy limits them.
    pub fn hours_text(&self) -> Option<String> {
        self.hours.as_ref().map(ToString::to_string)
    }

    /// The token lifetime when a request names none.
    pub fn default_ttl(&self) -> Duration {
        Duration::from_secs(self.default_ttl)
    }
}

/// One allowed platform call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CallRule {
    pub(super) method: String,
    /// Without a leading `/`; for a prefix rule, without the trailing `*`.
    pub(super) path: String,
    pub(super) prefix: bool,
    /// Query parameters this call may carry (none unless listed after `?`).
    pub(super) query: Vec<String>,
}

impl fmt::Display for CallRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if self.prefix {
            f.write_str("*")?;
        }
        if !self.query.is_empty() {
            write!(f, "?{}", self.query.join("&"))?;
        }
        Ok(())
    }
}

/// Allowed hours: a daily window in a fixed-offset time zone. A window with `from` after `to`
/// runs across midnight and belongs to the day it starts on.
#[derive(Debug, Clone)]
pub(super) struct Hours {
    pub(super) zone: String,
    pub(super) offset: UtcOffset,
    /// Indexed by days from Monday.
    pub(super) days: [bool; 7],
    /// Minutes after local midnight; `to` is exclusive and may be 1440 (`24:00`).
    pub(super) from: u16,
    pub(super) to: u16,
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = DAYS
            .iter()
            .zip(self.days)
            .filter_map(|(name, on)| on.then_some(*name))
            .collect();
        let clock = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(
            f,
            "{} {}-{} {}",
            days.join(","),
            clock(self.from),
            clock(self.to),
            self.zone
        )
    }
}
