//! The typed state stored in the rows: statuses, platforms, levels. Each is TEXT in both databases
//! (with a constraint that refuses anything else: SQLite's triggers from migration 0004,
//! PostgreSQL's CHECKs) and an enum everywhere in Rust.
//!
//! `type_name = "text"`: on PostgreSQL sqlx's derive otherwise maps an enum to a custom PG type
//! named after it (`CREATE TYPE`); naming `text` binds and decodes it as TEXT, checked by name
//! against the column's type. SQLite's derive ignores the name and always uses TEXT.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A role, level or platform name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`, expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub expected: &'static str,
}

/// Whether an account can be checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    /// Checkouts are refused (423) and every token was revoked when it froze.
    Frozen,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Frozen => "frozen",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [AccountStatus::Active, AccountStatus::Frozen]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// Where a checkout stands. `Expired` is also derived, before the sweeper marks the row, for an
/// `Active` one past its expiry and an `Approved` one past its claim deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStatus {
    PendingApproval,
    Approved,
    Denied,
    Active,
    CheckedIn,
    Expired,
    Revoked,
}

impl CheckoutStatus {
    pub const ALL: [CheckoutStatus; 7] = [
        CheckoutStatus::PendingApproval,
        CheckoutStatus::Approved,
        CheckoutStatus::Denied,
        CheckoutStatus::Active,
        CheckoutStatus::CheckedIn,
        CheckoutStatus::Expired,
        CheckoutStatus::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutStatus::PendingApproval => "pending_approval",
            CheckoutStatus::Approved => "approved",
            CheckoutStatus::Denied => "denied",
            CheckoutStatus::Active => "active",
            CheckoutStatus::CheckedIn => "checked_in",
            CheckoutStatus::Expired => "expired",
            CheckoutStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where an evidence record of a post stands: written `sending` before the platform is called,
/// then `submitted` (WeChat accepted the publish job), `published` (live, with its platform ids) or
/// `failed` (the platform refused; the approved post may be sent again). The publication watch
/// moves a post that went out on to `deleted` (by the account's own users), `blocked` (by the
/// platform after success) or `hidden` (restricted visibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PostStatus {
    Sending,
    Submitted,
    Published,
    Failed,
    Deleted,
    Blocked,
    Hidden,
}

impl PostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PostStatus::Sending => "sending",
            PostStatus::Submitted => "submitted",
            PostStatus::Published => "published",
            PostStatus::Failed => "failed",
            PostStatus::Deleted => "deleted",
            PostStatus::Blocked => "blocked",
            PostStatus::Hidden => "hidden",
        }
    }
}

/// What a platform created through the vault under a checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A WeChat inline image (`media/uploadimg`); the platform id is its URL.
    ImageUrl,
    /// WeChat cover material (`material/add_material?type=image`); the id is its media_id.
    Thumb,
    /// A WeChat draft (`draft/add`); the id is its media_id.
    Draft,
}

impl MediaKind {
    /// As stored (and as sqlx and serde spell it).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::ImageUrl => "image_url",
            MediaKind::Thumb => "thumb",
            MediaKind::Draft => "draft",
        }
    }
}

/// Which platform an account is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Wechat,
    Weibo,
    /// Any other account: the vault keeps its secrets, but brokers no platform calls.
    Generic,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Wechat => "wechat",
            Platform::Weibo => "weibo",
            Platform::Generic => "generic",
        }
    }
}

impl FromStr for Platform {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wechat" => Ok(Platform::Wechat),
            "weibo" => Ok(Platform::Weibo),
            "generic" => Ok(Platform::Generic),
            _ => Err(UnknownName {
                what: "platform",
                name: s.to_owned(),
                expected: "wechat, weibo, generic",
            }),
        }
    }
}

/// The review tier of a checkout (the office's plan: general items signed by a deputy leader,
/// major ones by the principal leader).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    sqlx::Type,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum Level {
    General,
    Major,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::General => "general",
            Level::Major => "major",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "general" => Ok(Level::General),
            "major" => Ok(Level::Major),
            _ => Err(UnknownName {
                what: "level",
                name: s.to_owned(),
                expected: "general, major",
            }),
        }
    }
}

/// Whether an incident is still being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    /// Two different people signed the close.
    Closed,
}

/// Where one step of an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Done,
    /// An automated step that could not be carried out (the reason is in its note).
    Failed,
    /// An automated step that does not apply to this account (e.g. a WeChat action on Weibo).
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MediaKind;

    /// The append path writes `as_str` where sqlx writes its own encoding: they must agree, or a
    /// draft recorded on one path would not be found by a read on the other.
    #[test]
    fn media_kind_as_str_is_what_sqlx_and_serde_write() {
        for kind in [MediaKind::ImageUrl, MediaKind::Thumb, MediaKind::Draft] {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
    }
}
