//! Evaluating a request against a policy: who is admitted, from which network, at which hours,
//! for how long, at which level, and which platform calls and query parameters pass. Every
//! refusal is a [`Denial`] worded for the person who asked.

use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;

use super::model::{AccountPolicy, CallRule, Hours, LevelRule};
use super::parse::check_path;
use crate::policy::Level;

/// Who is asking for a checkout: the operator and the publishing tool they use.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub username: &'a str,
    pub roles: &'a [String],
    pub client_id: &'a str,
    pub client_name: &'a str,
}

/// Why a policy refuses a request. `Display` is a message fit for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("the operator is not listed (by name or role) in this account's policy")]
    NotListed,
    #[error("this publishing tool (client) is not listed in this account's policy")]
    ClientNotListed,
    #[error("requests from this network address are not allowed for this account")]
    Network,
    #[error("outside the allowed hours for this account ({allowed})")]
    Hours { allowed: String },
    #[error("this level cannot be requested for this account")]
    LevelNotAllowed,
    #[error("the requested lifetime is longer than this account allows (at most {max_seconds} s)")]
    TtlTooLong { max_seconds: u64 },
    #[error("the requested lifetime must be at least one second")]
    TtlInvalid,
    #[error("this platform call is not allowed for this account")]
    CallNotAllowed,
    #[error("this level requires the checkout to name the SHA-256 digests of the content")]
    ContentBindingRequired,
}

impl LevelRule {
    /// Refuses a checkout that does not bind content where this level requires it.
    pub fn check_content_binding(&self, has_digests: bool) -> Result<(), Denial> {
        if self.require_content_binding && !has_digests {
            Err(Denial::ContentBindingRequired)
        } else {
            Ok(())
        }
    }
}

impl AccountPolicy {
    /// The operator must be listed by name or hold a listed role, and the tool must be listed by id
    /// or name. An empty list admits nobody.
    pub fn admits(&self, who: &Subject) -> Result<(), Denial> {
        let by_name = self.users.iter().any(|u| u == who.username);
        let by_role = self
            .roles
            .iter()
            .any(|r| who.roles.iter().any(|held| held == r.as_str()));
        if !(by_name || by_role) {
            return Err(Denial::NotListed);
        }
        // Listed names are never empty (checked at load), so an empty id or name matches nothing.
        let client = self
            .clients
            .iter()
            .any(|c| c == who.client_id || c == who.client_name);
        if !client {
            return Err(Denial::ClientNotListed);
        }
        Ok(())
    }

    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack listener reports for an
    /// IPv4 client) are checked as the IPv4 address they are.
    pub fn source_allowed(&self, ip: IpAddr) -> Result<(), Denial> {
        let ip = ip.to_canonical();
        if self.networks.iter().any(|n| n.contains(&ip)) {
            Ok(())
        } else {
            Err(Denial::Network)
        }
    }

    pub fn hours_allowed(&self, now: OffsetDateTime) -> Result<(), Denial> {
        match &self.hours {
            Some(hours) if !hours.contains(now) => Err(Denial::Hours {
                allowed: hours.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The token lifetime for a request: the policy default when none is asked for; a request
    /// above the maximum is refused rather than silently shortened, so the tool learns the limit.
    pub fn ttl(&self, requested_seconds: Option<u64>) -> Result<Duration, Denial> {
        match requested_seconds {
            None => Ok(Duration::from_secs(self.default_ttl)),
            Some(0) => Err(Denial::TtlInvalid),
            Some(s) if s > self.max_ttl => Err(Denial::TtlTooLong {
                max_seconds: self.max_ttl,
            }),
            Some(s) => Ok(Duration::from_secs(s)),
        }
    }

    pub fn level(&self, level: Level) -> Result<&LevelRule, Denial> {
        let rule = match level {
            Level::General => self.general.as_ref(),
            Level::Major => self.major.as_ref(),
        };
        rule.ok_or(Denial::LevelNotAllowed)
    }

    /// `path` is the platform path with or without one leading `/`. Paths with empty, `.` or `..`
    /// segments, or with characters that could be decoded into such segments further along
    /// (`%`, `\`), never match: the proxy must not be steered outside the listed calls.
    pub fn call_allowed(&self, method: &str, path: &str) -> bool {
        let path = path.strip_prefix('/').unwrap_or(path);
        if check_path(path, false).is_err() {
            return false;
        }
        self.calls
            .iter()
            .any(|c| c.method == method && c.matches(path))
    }

    /// The query parameters a call may carry: the first name that no matching rule of the policy
    /// lists is returned as refused. None are allowed unless a rule names them
    /// (`"POST cgi-bin/material/add_material?type"`); `access_token` is never counted, because
    /// the broker replaces it.
    pub fn query_refused<'n>(
        &self,
        method: &str,
        path: &str,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Option<&'n str> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let rules: Vec<&CallRule> = self
            .calls
            .iter()
            .filter(|c| c.method == method && c.matches(path))
            .collect();
        names
            .into_iter()
            .find(|n| *n != "access_token" && !rules.iter().any(|r| r.query.iter().any(|q| q == n)))
    }

    /// Whether the tool (by name or id) is among the clients this policy admits.
    pub fn lists_client(&self, name: &str, id: &str) -> bool {
        self.clients.iter().any(|c| c == name || c == id)
    }
}

impl CallRule {
    fn matches(&self, path: &str) -> bool {
        if self.prefix {
            path.starts_with(&self.path)
        } else {
            path == self.path
        }
    }
}

impl Hours {
    fn contains(&self, now: OffsetDateTime) -> bool {
        let local = now.to_offset(self.offset);
        let day = usize::from(local.weekday().number_days_from_monday());
        let minute = u16::from(local.hour()) * 60 + u16::from(local.minute());
        if self.from < self.to {
            self.days[day] && self.from <= minute && minute < self.to
        } else {
            let yesterday = (day + 6) % 7;
            (self.days[day] && minute >= self.from) || (self.days[yesterday] && minute < self.to)
        }
    }
}
