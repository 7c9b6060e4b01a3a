//! Parsing and evaluation of access policies, on inline TOML and on the shipped `policies/`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::policy::{Level, PolicyError};

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
    assert!(
        !p.allow_break_glass(),
        "break-glass is off unless a policy turns it on"
    );
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
        with(
            "allowed_hours = { from = \"07:00\", to = \"23:00\", timezone = \"Europe/Berlin\" }\n"
        )
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
    let p =
        with("allowed_hours = { days = [\"fri\"], from = \"22:00\", to = \"02:00\" }\n").unwrap();
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
        with("allowed_hours = { timezone = \"UTC\", from = \"07:00\", to = \"23:00\" }\n").unwrap();
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let set = PolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let wechat = set.for_account("wechat-main").unwrap();
    assert!(wechat.call_allowed("POST", "cgi-bin/draft/add"));
    assert!(wechat.level(Level::Major).unwrap().approvals >= 1);
    let weibo = set.for_account("weibo-main").unwrap();
    assert!(weibo.call_allowed("POST", "2/statuses/share.json"));
}

/// The properties the `policy_toml` fuzz target checks, on generated text: parsing never panics,
/// and a refusal says something and names a line of the text.
mod props {
    use proptest::prelude::*;

    use super::*;

    fn refused_clearly(text: &str, e: &PolicyError) {
        assert!(!e.message.trim().is_empty(), "no message for {text:?}");
        if let Some(line) = e.line {
            assert!(
                (1..=text.lines().count() + 1).contains(&line),
                "line {line} outside {text:?}"
            );
        }
    }

    /// A policy made of the real keys with values that are often wrong.
    fn policy_text() -> impl Strategy<Value = String> {
        (
            "[a-z0-9.\\-_ A-Z]{0,12}",
            any::<i64>().prop_map(|n| n % 100),
            any::<i64>().prop_map(|n| n % 100),
            prop::collection::vec("[0-9a-f:./]{0,20}", 0..3),
            prop::collection::vec("(GET|POST|PUT|get|FOO) ?[a-z/*?=&]{0,16}", 0..3),
            "[a-z]{0,10}",
            prop::option::of("[A-Za-z]{2,3} [0-9:]{3,6}-[0-9:]{3,6}"),
        )
            .prop_map(|(account, max, default, nets, calls, role, hours)| {
                let q = |v: &[String]| {
                    v.iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let mut t = format!(
                    "account = {account:?}\nmax_ttl_minutes = {max}\ndefault_ttl_minutes = {default}\nallowed_networks = [{}]\nallowed_calls = [{}]\n",
                    q(&nets),
                    q(&calls)
                );
                if let Some(h) = hours {
                    t.push_str(&format!("allowed_hours = {{ days = {:?}, time = {:?} }}\n", "Mon-Fri", h));
                }
                t.push_str(&format!("[who]\nroles = [{role:?}]\n[levels.general]\napprovals = 0\n"));
                t
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_parses_or_is_refused_clearly(text in "\\PC{0,200}") {
            if let Err(e) = AccountPolicy::parse_str(&text) {
                refused_clearly(&text, &e);
            }
        }

        #[test]
        fn policy_shaped_text_parses_or_is_refused_clearly(text in policy_text()) {
            if let Err(e) = AccountPolicy::parse_str(&text) {
                refused_clearly(&text, &e);
            }
        }
    }
}

#[test]
fn post_budgets_are_read_in_range_and_named_at_their_line_otherwise() {
    assert!(
        with("").unwrap().post_budgets().is_empty(),
        "none by default"
    );
    let p = with("max_posts_per_hour = 25\nmax_posts_per_day = 100\n").unwrap();
    assert_eq!(
        p.post_budgets(),
        [
            PostBudget {
                limit: 25,
                per: BudgetWindow::Hour
            },
            PostBudget {
                limit: 100,
                per: BudgetWindow::Day
            }
        ]
    );
    let e = with("max_posts_per_hour = 0\n").unwrap_err();
    assert_eq!(e.line, Some(2));
    assert!(
        e.message
            .contains("max_posts_per_hour must be 1 to 10000, not 0"),
        "{e}"
    );
}
