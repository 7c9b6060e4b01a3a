//! Per-account access policies: who may check an account out, from where, when, for how long, at
//! which level, and which platform calls the resulting token may make.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Deserialize;
use time::{OffsetDateTime, UtcOffset};
use toml::Spanned;

use super::{Level, PolicyError, Role, parse_toml, read_text, toml_files, valid_id};

/// Hard ceiling from the office's rules: no publishing token lives longer than an hour.
const TTL_CEILING_MINUTES: u32 = 60;
const DEFAULT_TTL_MINUTES: u32 = 15;
/// More approvers than this cannot be found in the office (deputy + principal leader).
const MAX_APPROVALS: u8 = 2;
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// All loaded access policies, one per account.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    accounts: BTreeMap<String, AccountPolicy>,
}

impl PolicySet {
    /// Loads every `*.toml` file directly in `dir` (subdirectories such as `playbooks/` are not
    /// read). An empty directory gives an empty set, which denies every checkout. A missing
    /// directory is an error rather than an empty set: a mistyped path would otherwise look like
    /// "nobody may publish" with no hint why.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
        let mut set = PolicySet::empty();
        for file in toml_files(dir)? {
            let text = read_text(&file)?;
            let (policy, account_span) = AccountPolicy::parse(&file, &text)?;
            if let Some(first) = set.accounts.get(policy.account()) {
                return Err(PolicyError::at(
                    &file,
                    &text,
                    Some(account_span),
                    format!(
                        "account `{}` already has a policy in {}; one file per account",
                        policy.account(),
                        first.source.display()
                    ),
                ));
            }
            set.accounts.insert(policy.account.clone(), policy);
        }
        Ok(set)
    }

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

/// The access policy of one account.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    account: String,
    source: PathBuf,
    exclusive: bool,
    default_ttl: u64,
    max_ttl: u64,
    networks: Vec<IpNet>,
    hours: Option<Hours>,
    calls: Vec<CallRule>,
    allow_platform_token: bool,
    allow_reveal: bool,
    allow_login_totp: bool,
    users: Vec<String>,
    roles: Vec<Role>,
    clients: Vec<String>,
    general: Option<LevelRule>,
    major: Option<LevelRule>,
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

    pub fn max_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl)
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

    /// Whether the tool (by name or id) is among the clients this policy admits.
    pub fn lists_client(&self, name: &str, id: &str) -> bool {
        self.clients.iter().any(|c| c == name || c == id)
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

    /// Parses and validates one policy file; also returns the span of `account` for reporting a
    /// duplicate.
    fn parse(
        file: &Path,
        text: &str,
    ) -> Result<(AccountPolicy, std::ops::Range<usize>), PolicyError> {
        let raw: RawPolicy = parse_toml(file, text)?;
        let err = |span: std::ops::Range<usize>, msg: String| {
            PolicyError::at(file, text, Some(span), msg)
        };

        let account = raw.account.get_ref().clone();
        if !valid_id(&account) {
            return Err(err(
                raw.account.span(),
                format!(
                    "account `{account}` must be 1-64 characters of a-z, 0-9, `-`, `_` or `.`, starting with a letter or digit"
                ),
            ));
        }

        let (max_ttl, max_span) = match &raw.max_ttl_minutes {
            Some(m) => (*m.get_ref(), Some(m.span())),
            None => (TTL_CEILING_MINUTES, None),
        };
        if let Some(span) = max_span.clone()
            && !(1..=TTL_CEILING_MINUTES).contains(&max_ttl)
        {
            return Err(err(
                span,
                format!("max_ttl_minutes must be 1 to {TTL_CEILING_MINUTES}, not {max_ttl}"),
            ));
        }
        let default_ttl = match &raw.default_ttl_minutes {
            Some(d) => {
                let value = *d.get_ref();
                if !(1..=TTL_CEILING_MINUTES).contains(&value) {
                    return Err(err(
                        d.span(),
                        format!(
                            "default_ttl_minutes must be 1 to {TTL_CEILING_MINUTES}, not {value}"
                        ),
                    ));
                }
                if value > max_ttl {
                    return Err(err(
                        d.span(),
                        format!(
                            "default_ttl_minutes ({value}) is above max_ttl_minutes ({max_ttl})"
                        ),
                    ));
                }
                value
            }
            // A lowered maximum lowers the implied default with it instead of contradicting it.
            None => DEFAULT_TTL_MINUTES.min(max_ttl),
        };

        let networks = match &raw.allowed_networks {
            None => vec![
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 0)),
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 0)),
            ],
            Some(list) => list
                .iter()
                .map(|n| parse_network(n.get_ref()).map_err(|m| err(n.span(), m)))
                .collect::<Result<_, _>>()?,
        };

        let hours = match &raw.allowed_hours {
            None => None,
            Some(h) => Some(Hours::parse(h.get_ref(), h.span()).map_err(|(s, m)| err(s, m))?),
        };

        let calls = raw
            .allowed_calls
            .iter()
            .map(|c| CallRule::parse(c.get_ref()).map_err(|m| err(c.span(), m)))
            .collect::<Result<_, _>>()?;

        let users = names(&raw.who.users, "user").map_err(|(s, m)| err(s, m))?;
        let clients = names(&raw.who.clients, "client").map_err(|(s, m)| err(s, m))?;
        let roles = raw
            .who
            .roles
            .iter()
            .map(|r| Role::from_str(r.get_ref()).map_err(|e| err(r.span(), e.to_string())))
            .collect::<Result<_, _>>()?;

        let general = raw.levels.general.map(|l| l.validate()).transpose();
        let general = general.map_err(|(s, m)| err(s, m))?;
        let major = raw.levels.major.map(|l| l.validate()).transpose();
        let major = major.map_err(|(s, m)| err(s, m))?;
        if major.is_some_and(|m| m.approvals == 0) {
            // Allowed (the office decides), but contrary to the plan's "major items signed by the
            // principal leader", so it should be visible in the logs.
            tracing::warn!(file = %file.display(), account = %account, "major level needs no approval");
        }

        let policy = AccountPolicy {
            account,
            source: file.to_path_buf(),
            exclusive: raw.exclusive,
            default_ttl: u64::from(default_ttl) * 60,
            max_ttl: u64::from(max_ttl) * 60,
            networks,
            hours,
            calls,
            allow_platform_token: raw.allow_platform_token,
            allow_reveal: raw.allow_reveal,
            allow_login_totp: raw.allow_login_totp,
            users,
            roles,
            clients,
            general,
            major,
        };
        Ok((policy, raw.account.span()))
    }
}

type SpanError = (std::ops::Range<usize>, String);

fn names(list: &[Spanned<String>], what: &str) -> Result<Vec<String>, SpanError> {
    list.iter()
        .map(|n| {
            let name = n.get_ref();
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err((
                    n.span(),
                    format!("{what} `{name}` must be non-empty, without spaces"),
                ))
            } else {
                Ok(name.clone())
            }
        })
        .collect()
}

/// A CIDR network, or a single address as its /32 or /128.
fn parse_network(s: &str) -> Result<IpNet, String> {
    let net = if s.contains('/') {
        IpNet::from_str(s)
            .map_err(|_| format!("`{s}` is not a CIDR network (e.g. \"10.20.0.0/16\")"))?
    } else {
        IpAddr::from_str(s)
            .map(IpNet::from)
            .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))?
    };
    // Host bits set usually means a typo in the prefix length; refuse rather than guess.
    if net.trunc() != net {
        return Err(format!(
            "`{s}` has host bits set; did you mean `{}`?",
            net.trunc()
        ));
    }
    // Mapped addresses are compared as IPv4 (see `source_allowed`), so such a network would never
    // match anything.
    if let IpNet::V6(v6) = net
        && v6.network().to_ipv4_mapped().is_some()
        && v6.prefix_len() >= 96
    {
        return Err(format!("`{s}` is an IPv4-mapped network; write it as IPv4"));
    }
    Ok(net)
}

/// One allowed platform call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CallRule {
    method: String,
    /// Without a leading `/`; for a prefix rule, without the trailing `*`.
    path: String,
    prefix: bool,
    /// Query parameters this call may carry (none unless listed after `?`).
    query: Vec<String>,
}

impl CallRule {
    fn parse(s: &str) -> Result<CallRule, String> {
        let mut parts = s.split(' ');
        let (Some(method), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "allowed call `{s}` must be `METHOD path`, e.g. \"POST cgi-bin/draft/add\""
            ));
        };
        if !METHODS.contains(&method) {
            return Err(format!(
                "allowed call `{s}`: method must be one of {}",
                METHODS.join(", ")
            ));
        }
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (
                p,
                parse_query_names(q).map_err(|m| format!("allowed call `{s}`: {m}"))?,
            ),
            None => (path, Vec::new()),
        };
        if path.starts_with('/') {
            return Err(format!(
                "allowed call `{s}`: write the path without the leading `/`"
            ));
        }
        let (path, prefix) = match path.strip_suffix('*') {
            Some(p) => (p, true),
            None => (path, false),
        };
        if !prefix && path.is_empty() {
            return Err(format!("allowed call `{s}` has no path"));
        }
        check_path(path, prefix).map_err(|m| format!("allowed call `{s}`: {m}"))?;
        Ok(CallRule {
            method: method.to_owned(),
            path: path.to_owned(),
            prefix,
            query,
        })
    }

    fn matches(&self, path: &str) -> bool {
        if self.prefix {
            path.starts_with(&self.path)
        } else {
            path == self.path
        }
    }
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

/// The names after `?` in an allowed call: `type` or `count&page`.
fn parse_query_names(q: &str) -> Result<Vec<String>, &'static str> {
    let mut out: Vec<String> = Vec::new();
    for n in q.split('&') {
        if n.is_empty()
            || n.len() > 64
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(
                "query parameter names after `?` must be letters, digits, `_`, `-` or `.`, separated by `&`",
            );
        }
        if n == "access_token" {
            return Err("`access_token` is set by the vault and cannot be allowed");
        }
        if !out.iter().any(|o| o == n) {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

/// Checks a path without its leading `/`. For a prefix the last segment may be empty or partial.
fn check_path(path: &str, prefix: bool) -> Result<(), &'static str> {
    if path
        .chars()
        .any(|c| matches!(c, '*' | '?' | '#' | '%' | '\\') || c.is_whitespace() || c.is_control())
    {
        return Err("path must not contain `*` (except at the end), `?`, `#`, `%`, `\\` or spaces");
    }
    if path.is_empty() {
        return if prefix { Ok(()) } else { Err("empty path") };
    }
    let mut segments: Vec<&str> = path.split('/').collect();
    if prefix {
        // `cgi-bin/draft/*` or `cgi-bin/dra*`: the last segment is only the start of one.
        if let Some(last) = segments.pop()
            && matches!(last, "." | "..")
        {
            return Err("path must not contain `.` or `..` segments");
        }
    }
    for seg in segments {
        if seg.is_empty() {
            return Err("path must not contain empty segments (`//` or a trailing `/`)");
        }
        if seg == "." || seg == ".." {
            return Err("path must not contain `.` or `..` segments");
        }
    }
    Ok(())
}

/// Allowed hours: a daily window in a fixed-offset time zone. A window with `from` after `to`
/// runs across midnight and belongs to the day it starts on.
#[derive(Debug, Clone)]
struct Hours {
    zone: String,
    offset: UtcOffset,
    /// Indexed by days from Monday.
    days: [bool; 7],
    /// Minutes after local midnight; `to` is exclusive and may be 1440 (`24:00`).
    from: u16,
    to: u16,
}

impl Hours {
    fn parse(raw: &RawHours, whole: std::ops::Range<usize>) -> Result<Hours, SpanError> {
        let (zone, offset) = match &raw.timezone {
            None => ("Asia/Shanghai".to_owned(), shanghai()),
            Some(tz) => {
                let offset = parse_zone(tz.get_ref()).ok_or_else(|| {
                    (
                        tz.span(),
                        format!(
                            "timezone `{}` is not supported; use \"Asia/Shanghai\", \"UTC\" or an offset like \"+08:00\"",
                            tz.get_ref()
                        ),
                    )
                })?;
                (tz.get_ref().clone(), offset)
            }
        };
        let mut days = [false; 7];
        match &raw.days {
            None => days = [true; 7],
            Some(list) => {
                if list.is_empty() {
                    return Err((
                        whole,
                        "allowed_hours.days is empty, which would allow no time at all".into(),
                    ));
                }
                for d in list {
                    let i = DAYS.iter().position(|n| n == d.get_ref()).ok_or_else(|| {
                        (
                            d.span(),
                            format!(
                                "unknown day `{}`, expected one of: {}",
                                d.get_ref(),
                                DAYS.join(", ")
                            ),
                        )
                    })?;
                    days[i] = true;
                }
            }
        }
        let from = parse_clock(raw.from.get_ref(), false).ok_or_else(|| {
            (
                raw.from.span(),
                format!(
                    "from `{}` must be a time HH:MM from 00:00 to 23:59",
                    raw.from.get_ref()
                ),
            )
        })?;
        let to = parse_clock(raw.to.get_ref(), true).ok_or_else(|| {
            (
                raw.to.span(),
                format!(
                    "to `{}` must be a time HH:MM from 00:00 to 24:00",
                    raw.to.get_ref()
                ),
            )
        })?;
        if from == to || (from == 0 && to == 1440) {
            // Either "all day" or "never"; both are better said another way.
            return Err((
                raw.to.span(),
                "from and to describe the whole day (or none of it); leave out allowed_hours to allow any time".into(),
            ));
        }
        Ok(Hours {
            zone,
            offset,
            days,
            from,
            to,
        })
    }

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

fn shanghai() -> UtcOffset {
    // China has had no daylight saving time since 1991, so a fixed +08:00 is exact.
    time::macros::offset!(+8)
}

fn parse_zone(s: &str) -> Option<UtcOffset> {
    match s {
        "Asia/Shanghai" => return Some(shanghai()),
        "UTC" => return Some(UtcOffset::UTC),
        _ => {}
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if h > 14 || m > 59 {
        return None;
    }
    UtcOffset::from_whole_seconds(sign * (h * 3600 + m * 60)).ok()
}

/// `HH:MM` as minutes after midnight; `24:00` only where it may end a window.
fn parse_clock(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m > 59 {
        return None;
    }
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, _) => Some(h * 60 + m),
        _ => None,
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    account: Spanned<String>,
    /// Exclusive unless said otherwise: two people publishing on one account at once is the
    /// exception the office has to choose deliberately.
    #[serde(default = "yes")]
    exclusive: bool,
    default_ttl_minutes: Option<Spanned<u32>>,
    max_ttl_minutes: Option<Spanned<u32>>,
    allowed_networks: Option<Vec<Spanned<String>>>,
    allowed_hours: Option<Spanned<RawHours>>,
    #[serde(default)]
    allowed_calls: Vec<Spanned<String>>,
    #[serde(default)]
    allow_platform_token: bool,
    #[serde(default)]
    allow_reveal: bool,
    #[serde(default)]
    allow_login_totp: bool,
    #[serde(default)]
    who: RawWho,
    #[serde(default)]
    levels: RawLevels,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    timezone: Option<Spanned<String>>,
    days: Option<Vec<Spanned<String>>>,
    from: Spanned<String>,
    to: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWho {
    #[serde(default)]
    users: Vec<Spanned<String>>,
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    clients: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLevels {
    general: Option<RawLevel>,
    major: Option<RawLevel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    /// Required, so that how many leaders sign off is always written down.
    approvals: Spanned<u8>,
    #[serde(default)]
    require_content_binding: bool,
    /// Minutes an approval stays claimable; 1 to 1440, default 30.
    claim_minutes: Option<Spanned<u64>>,
}

/// An approval nobody claims must not stay usable for weeks.
const DEFAULT_CLAIM_MINUTES: u64 = 30;
const MAX_CLAIM_MINUTES: u64 = 24 * 60;

impl RawLevel {
    fn validate(self) -> Result<LevelRule, SpanError> {
        let approvals = *self.approvals.get_ref();
        if approvals > MAX_APPROVALS {
            return Err((
                self.approvals.span(),
                format!("approvals must be 0, 1 or 2, not {approvals}"),
            ));
        }
        let claim_minutes = match self.claim_minutes {
            None => DEFAULT_CLAIM_MINUTES,
            Some(m) => {
                let v = *m.get_ref();
                if !(1..=MAX_CLAIM_MINUTES).contains(&v) {
                    return Err((
                        m.span(),
                        format!("claim_minutes must be 1 to {MAX_CLAIM_MINUTES}, not {v}"),
                    ));
                }
                v
            }
        };
        Ok(LevelRule {
            approvals,
            require_content_binding: self.require_content_binding,
            claim_window: Duration::from_secs(claim_minutes * 60),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const FULL: &str = r#"
account = "wechat-main"
exclusive = true
default_ttl_minutes = 10
max_ttl_minutes = 30
allowed_networks = ["127.0.0.0/8", "10.20.0.0/16", "fd00::/8"]
allowed_calls = ["POST cgi-bin/draft/add", "GET cgi-bin/material/*"]
[who]
users = ["alice"]
roles = ["publisher"]
clients = ["cms"]
[levels.general]
approvals = 0
[levels.major]
approvals = 1
require_content_binding = true
"#;

    fn parse(text: &str) -> Result<AccountPolicy, PolicyError> {
        AccountPolicy::parse(Path::new("policies/t.toml"), text).map(|(p, _)| p)
    }

    fn with(extra: &str) -> Result<AccountPolicy, PolicyError> {
        parse(&format!("account = \"a\"\n{extra}"))
    }

    fn subject<'a>(user: &'a str, roles: &'a [String], client: &'a str) -> Subject<'a> {
        Subject {
            username: user,
            roles,
            client_id: "c_123",
            client_name: client,
        }
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn full_policy_parses() {
        let p = parse(FULL).unwrap();
        assert_eq!(p.account(), "wechat-main");
        assert!(p.exclusive());
        assert!(!p.allow_reveal() && !p.allow_platform_token() && !p.allow_login_totp());
        assert_eq!(
            p.allowed_calls(),
            vec!["POST cgi-bin/draft/add", "GET cgi-bin/material/*"]
        );
        assert_eq!(p.level(Level::Major).unwrap().approvals, 1);
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "wechat.toml",
            "account = \"wechat-main\"\n\n[who]\nusers = [\"alice\"]\n\n[levels.general]\napprovals = 0\nexclusiv = true\n",
        );
        let e = PolicySet::load_dir(dir.path()).unwrap_err();
        assert_eq!(e.file, dir.path().join("wechat.toml"));
        assert_eq!(e.line, Some(8));
        assert_eq!(e.column, Some(1));
        assert!(e.message.contains("unknown field `exclusiv`"), "{e}");
        let shown = e.to_string();
        assert!(
            shown.ends_with(&format!("wechat.toml:8:1: {}", e.message)),
            "{shown}"
        );

        let e = with("[who]\nuser = [\"alice\"]\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        let e = with("[levels.urgent]\napprovals = 0\n").unwrap_err();
        assert!(e.message.contains("urgent"), "{e}");
    }

    #[test]
    fn ttl_limits_are_validated() {
        let e = with("max_ttl_minutes = 61\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(19)));
        assert!(e.message.contains("max_ttl_minutes"), "{e}");
        assert!(with("default_ttl_minutes = 90\n").is_err());
        let e = with("max_ttl_minutes = 20\ndefault_ttl_minutes = 25\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(with("max_ttl_minutes = 0\n").is_err());
        assert!(with("max_ttl_minutes = -5\n").is_err());
        // A lowered maximum pulls the implied default down with it.
        let p = with("max_ttl_minutes = 5\n").unwrap();
        assert_eq!(p.ttl(None), Ok(Duration::from_secs(300)));
    }

    #[test]
    fn ttl_default_and_max() {
        let p = with("").unwrap();
        assert_eq!(p.ttl(None), Ok(Duration::from_secs(15 * 60)));
        assert_eq!(p.ttl(Some(3600)), Ok(Duration::from_secs(3600)));
        assert_eq!(
            p.ttl(Some(3601)),
            Err(Denial::TtlTooLong { max_seconds: 3600 })
        );
        assert_eq!(p.ttl(Some(0)), Err(Denial::TtlInvalid));
        assert!(p.ttl(Some(u64::MAX)).is_err());

        let p = parse(FULL).unwrap();
        assert_eq!(p.ttl(None), Ok(Duration::from_secs(600)));
        assert_eq!(p.ttl(Some(1800)), Ok(Duration::from_secs(1800)));
        assert_eq!(
            p.ttl(Some(1801)),
            Err(Denial::TtlTooLong { max_seconds: 1800 })
        );
    }

    #[test]
    fn bad_cidr_is_reported_with_line() {
        let e = with(
            "exclusive = false\nallowed_networks = [\n  \"10.0.0.0/8\",\n  \"10.20.0.0/33\",\n]\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (Some(5), Some(3)));
        assert!(e.message.contains("10.20.0.0/33"), "{e}");
        let e = with("allowed_networks = [\"10.20.1.0/16\"]\n").unwrap_err();
        assert!(e.message.contains("10.20.0.0/16"), "{e}");
        assert!(with("allowed_networks = [\"::ffff:10.0.0.0/104\"]\n").is_err());
        assert!(with("allowed_networks = [\"bogus\"]\n").is_err());
        // A single address is its own network.
        let p = with("allowed_networks = [\"192.0.2.7\"]\n").unwrap();
        assert!(p.source_allowed("192.0.2.7".parse().unwrap()).is_ok());
        assert!(p.source_allowed("192.0.2.8".parse().unwrap()).is_err());
    }

    #[test]
    fn other_semantic_errors() {
        let e = with("[who]\nroles = [\"root\"]\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown role `root`"), "{e}");
        let e = with("[levels.major]\napprovals = 3\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(with("[levels.major]\nrequire_content_binding = true\n").is_err());
        assert!(parse("account = \"WeChat Main\"\n").is_err());
        assert!(parse("exclusive = true\n").is_err());
        let e = with("allowed_hours = { from = \"07:00\", to = \"25:00\" }\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("25:00"), "{e}");
        assert!(with("allowed_hours = { from = \"7:00\", to = \"23:00\" }\n").is_err());
        assert!(with("allowed_hours = { from = \"07:00\", to = \"07:00\" }\n").is_err());
        assert!(
            with("allowed_hours = { from = \"07:00\", to = \"23:00\", days = [\"monday\"] }\n")
                .is_err()
        );
        assert!(
            with("allowed_hours = { from = \"07:00\", to = \"23:00\", timezone = \"Europe/Berlin\" }\n")
                .is_err()
        );
        assert!(
            with("allowed_hours = { from = \"07:00\", to = \"23:00\", zone = \"UTC\" }\n").is_err()
        );
        for bad in [
            "POST /cgi-bin/draft/add",
            "post cgi-bin/draft/add",
            "POST cgi-bin/../x",
            "POST cgi-bin//x",
            "POST cgi-bin/*/x",
            "POST  cgi-bin/x",
            "POST",
        ] {
            assert!(
                with(&format!("allowed_calls = [\"{bad}\"]\n")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn deny_by_default() {
        let set = PolicySet::empty();
        assert!(set.is_empty());
        assert!(set.for_account("wechat-main").is_none());

        let roles = vec!["admin".to_owned(), "publisher".to_owned()];
        let p = with("").unwrap();
        assert_eq!(
            p.admits(&subject("alice", &roles, "cms")),
            Err(Denial::NotListed)
        );
        assert_eq!(p.level(Level::General), Err(Denial::LevelNotAllowed));
        assert!(!p.call_allowed("POST", "cgi-bin/draft/add"));

        let p = with("[who]\n").unwrap();
        assert_eq!(
            p.admits(&subject("alice", &roles, "cms")),
            Err(Denial::NotListed)
        );
        // An explicitly empty network list admits no address.
        let p = with("allowed_networks = []\n").unwrap();
        assert_eq!(
            p.source_allowed(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Err(Denial::Network)
        );
    }

    #[test]
    fn admission_by_user_or_role_and_client() {
        let p = parse(FULL).unwrap();
        let none: Vec<String> = vec![];
        let publisher = vec!["publisher".to_owned()];
        let auditor = vec!["auditor".to_owned()];
        assert_eq!(p.admits(&subject("alice", &none, "cms")), Ok(()));
        assert_eq!(p.admits(&subject("bob", &publisher, "cms")), Ok(()));
        assert_eq!(
            p.admits(&subject("bob", &auditor, "cms")),
            Err(Denial::NotListed)
        );
        assert_eq!(
            p.admits(&subject("Alice", &none, "cms")),
            Err(Denial::NotListed)
        );
        assert_eq!(
            p.admits(&subject("alice", &none, "other-tool")),
            Err(Denial::ClientNotListed)
        );
        // Listed by id instead of name.
        let by_id = with("[who]\nusers = [\"alice\"]\nclients = [\"c_123\"]\n").unwrap();
        assert_eq!(by_id.admits(&subject("alice", &none, "whatever")), Ok(()));
        // No clients listed: no tool may check the account out.
        let no_clients = with("[who]\nusers = [\"alice\"]\n").unwrap();
        assert_eq!(
            no_clients.admits(&subject("alice", &none, "cms")),
            Err(Denial::ClientNotListed)
        );
    }

    #[test]
    fn networks_including_ipv4_mapped() {
        let p = parse(FULL).unwrap();
        let ok = |s: &str| p.source_allowed(s.parse().unwrap()).is_ok();
        assert!(ok("127.0.0.1"));
        assert!(ok("10.20.3.4"));
        assert!(!ok("10.21.0.1"));
        assert!(ok("::ffff:10.20.3.4"));
        assert!(!ok("::ffff:192.168.1.1"));
        assert!(ok("fd12::1"));
        assert!(!ok("2001:db8::1"));
        assert!(!ok("::1"));
        let any = with("").unwrap();
        assert!(any.source_allowed(IpAddr::V6(Ipv6Addr::LOCALHOST)).is_ok());
        assert!(any.source_allowed("203.0.113.9".parse().unwrap()).is_ok());
    }

    #[test]
    fn hours_across_midnight() {
        // Friday 22:00 to Saturday 02:00, Shanghai time.
        let p = with("allowed_hours = { days = [\"fri\"], from = \"22:00\", to = \"02:00\" }\n")
            .unwrap();
        let ok = |t: OffsetDateTime| p.hours_allowed(t).is_ok();
        assert!(ok(datetime!(2025-01-03 22:30 +08:00))); // Fri
        assert!(ok(datetime!(2025-01-04 01:59 +08:00))); // Sat, still Friday's window
        assert!(!ok(datetime!(2025-01-04 02:00 +08:00)));
        assert!(!ok(datetime!(2025-01-04 22:30 +08:00))); // Sat evening
        assert!(!ok(datetime!(2025-01-03 01:00 +08:00))); // Fri early: Thursday's window
        assert!(!ok(datetime!(2025-01-03 21:59 +08:00)));
        // The same instant given in UTC: Fri 14:30Z is Fri 22:30 in Shanghai.
        assert!(ok(datetime!(2025-01-03 14:30 UTC)));
        match p.hours_allowed(datetime!(2025-01-03 12:00 UTC)) {
            Err(Denial::Hours { allowed }) => assert_eq!(allowed, "fri 22:00-02:00 Asia/Shanghai"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hours_shanghai_versus_utc() {
        let sh = with("allowed_hours = { from = \"07:00\", to = \"23:00\" }\n").unwrap();
        let utc =
            with("allowed_hours = { timezone = \"UTC\", from = \"07:00\", to = \"23:00\" }\n")
                .unwrap();
        let plus8 =
            with("allowed_hours = { timezone = \"+08:00\", from = \"07:00\", to = \"23:00\" }\n")
                .unwrap();
        // 03:00Z is 11:00 in Shanghai.
        let t = datetime!(2025-03-10 03:00 UTC);
        assert!(sh.hours_allowed(t).is_ok());
        assert!(plus8.hours_allowed(t).is_ok());
        assert!(utc.hours_allowed(t).is_err());
        // 16:00Z is 00:00 next day in Shanghai.
        let t = datetime!(2025-03-10 16:00 UTC);
        assert!(sh.hours_allowed(t).is_err());
        assert!(utc.hours_allowed(t).is_ok());
        // Weekdays are those of the policy's zone: Sunday 23:30Z is Monday 07:30 in Shanghai.
        let weekdays = with(
            "allowed_hours = { days = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"], from = \"07:00\", to = \"24:00\" }\n",
        )
        .unwrap();
        assert!(
            weekdays
                .hours_allowed(datetime!(2025-03-09 23:30 UTC))
                .is_ok()
        );
        assert!(
            weekdays
                .hours_allowed(datetime!(2025-03-09 15:30 UTC))
                .is_err()
        );
        // No allowed_hours: any time.
        assert!(
            with("")
                .unwrap()
                .hours_allowed(datetime!(2025-03-09 03:00 UTC))
                .is_ok()
        );
    }

    #[test]
    fn calls_exact_prefix_and_traversal() {
        let p = parse(FULL).unwrap();
        assert!(p.call_allowed("POST", "cgi-bin/draft/add"));
        assert!(p.call_allowed("POST", "/cgi-bin/draft/add"));
        assert_eq!(
            p.query_refused("POST", "cgi-bin/draft/add", ["x"]),
            Some("x")
        );
        assert_eq!(
            p.query_refused("POST", "cgi-bin/draft/add", ["access_token"]),
            None
        );
        assert!(!p.call_allowed("GET", "cgi-bin/draft/add"));
        assert!(!p.call_allowed("POST", "cgi-bin/draft/add/x"));
        assert!(!p.call_allowed("POST", "cgi-bin/draft/addx"));
        assert!(p.call_allowed("GET", "cgi-bin/material/get_material"));
        assert!(p.call_allowed("GET", "cgi-bin/material/a/b"));
        assert!(!p.call_allowed("GET", "cgi-bin/material"));
        assert!(!p.call_allowed("GET", "cgi-bin/material/../draft/add"));
        assert!(!p.call_allowed("GET", "cgi-bin/material/./x"));
        assert!(!p.call_allowed("GET", "cgi-bin/material//x"));
        assert!(!p.call_allowed("GET", "cgi-bin/material/x/"));
        assert!(!p.call_allowed("GET", "cgi-bin/material/%2e%2e/x"));
        assert!(!p.call_allowed("GET", "cgi-bin/material/x?y=1"));
        assert!(!p.call_allowed("POST", "//cgi-bin/draft/add"));
        assert!(!p.call_allowed("POST", ""));
    }

    #[test]
    fn content_binding() {
        let p = parse(FULL).unwrap();
        let major = p.level(Level::Major).unwrap();
        assert_eq!(
            major.check_content_binding(false),
            Err(Denial::ContentBindingRequired)
        );
        assert_eq!(major.check_content_binding(true), Ok(()));
        let general = p.level(Level::General).unwrap();
        assert_eq!(general.check_content_binding(false), Ok(()));
    }

    #[test]
    fn duplicate_account_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.toml", "account = \"wechat-main\"\n");
        write(dir.path(), "b.toml", "# copy\naccount = \"wechat-main\"\n");
        write(dir.path(), "notes.txt", "not a policy");
        let e = PolicySet::load_dir(dir.path()).unwrap_err();
        assert_eq!(e.file, dir.path().join("b.toml"));
        assert_eq!(e.line, Some(2));
        assert!(
            e.message
                .contains(&dir.path().join("a.toml").display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn load_dir_empty_missing_and_subdirs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(PolicySet::load_dir(dir.path()).unwrap().is_empty());
        assert!(PolicySet::load_dir(&dir.path().join("missing")).is_err());
        std::fs::create_dir(dir.path().join("playbooks")).unwrap();
        write(&dir.path().join("playbooks"), "x.toml", "id = \"x\"\n");
        write(dir.path(), "w.toml", FULL);
        let set = PolicySet::load_dir(dir.path()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.for_account("wechat-main").is_some());
    }

    #[test]
    fn shipped_policies_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let set = PolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let wechat = set.for_account("wechat-main").unwrap();
        assert!(wechat.call_allowed("POST", "cgi-bin/draft/add"));
        assert!(wechat.level(Level::Major).unwrap().approvals >= 1);
        let weibo = set.for_account("weibo-main").unwrap();
        assert!(weibo.call_allowed("POST", "2/statuses/share.json"));
    }
}
