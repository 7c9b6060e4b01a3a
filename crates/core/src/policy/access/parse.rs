//! Reading policy files: strict TOML (unknown keys refused) into raw structs, then validation
//! into the model, every error naming the file, line and column so that a typo can never silently
//! widen or narrow access.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Deserialize;
use time::UtcOffset;
use toml::Spanned;

use super::model::{
    AccountPolicy, BudgetWindow, CallRule, DAYS, Hours, LevelRule, POSTS_CEILING, PolicySet,
    PostBudget,
};
use crate::policy::{PolicyError, Role, parse_toml, read_text, toml_files, valid_id};

/// Hard ceiling from the office's rules: no publishing token lives longer than an hour.
const TTL_CEILING_MINUTES: u32 = 60;
const DEFAULT_TTL_MINUTES: u32 = 15;
/// More approvers than this cannot be found in the office (deputy + principal leader).
const MAX_APPROVALS: u8 = 2;
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

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
}

impl AccountPolicy {
    /// Parses one policy from text, as if read from `policy.toml`. Not for product code (policies
    /// are loaded a directory at a time, [`PolicySet::load_dir`]); it exists because the `fuzz/`
    /// targets, a package of their own, can only reach a public function, and the parser is what
    /// they need to feed untrusted text without a file.
    #[doc(hidden)]
    pub fn parse_str(text: &str) -> Result<AccountPolicy, PolicyError> {
        Self::parse(Path::new("policy.toml"), text).map(|(p, _)| p)
    }

    /// Parses and validates one policy file; also returns the span of `account` for reporting a
    /// duplicate.
    pub(super) fn parse(
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

        let mut post_budgets = Vec::new();
        for (value, per) in [
            (&raw.max_posts_per_hour, BudgetWindow::Hour),
            (&raw.max_posts_per_day, BudgetWindow::Day),
        ] {
            if let Some(v) = value {
                let limit = *v.get_ref();
                if !(1..=POSTS_CEILING).contains(&limit) {
                    return Err(err(
                        v.span(),
                        format!(
                            "max_posts_per_{} must be 1 to {POSTS_CEILING}, not {limit}",
                            per.as_str()
                        ),
                    ));
                }
                post_budgets.push(PostBudget { limit, per });
            }
        }

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
            allow_break_glass: raw.allow_break_glass,
            post_budgets,
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
pub(super) fn check_path(path: &str, prefix: bool) -> Result<(), &'static str> {
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
    allow_break_glass: bool,
    max_posts_per_hour: Option<Spanned<u32>>,
    max_posts_per_day: Option<Spanned<u32>>,
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
