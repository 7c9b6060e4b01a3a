//! `admin policies`: which accounts, people and tools each loaded access policy covers, and what
//! no policy covers.

use serde_json::Value;

use super::{Session, cell, show};

/// Shows which accounts, people and tools each loaded policy covers.
pub(super) async fn run(session: &Session) -> anyhow::Result<()> {
    let v = session.api.get("/policies").await?;
    if session.json_out {
        return show(&v);
    }
    print_policies(&v);
    Ok(())
}

fn print_policies(v: &Value) {
    for p in v["policies"].as_array().into_iter().flatten() {
        let exists = if p["account_exists"] == true {
            ""
        } else {
            " (no such account yet)"
        };
        println!("{} [{}]{exists}", cell(&p["account"]), cell(&p["file"]));
        println!(
            "  who: roles {}; users {}",
            cell(&p["roles"]),
            cell(&p["users"])
        );
        let admitted: Vec<String> = p["admitted_clients"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} ({})", cell(&c["name"]), cell(&c["client_id"])))
            .collect();
        println!(
            "  tools: {}",
            if admitted.is_empty() {
                "none registered".to_owned()
            } else {
                admitted.join(", ")
            }
        );
        if p["unmatched_clients"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            println!(
                "  listed but no live tool bound to this account: {}",
                cell(&p["unmatched_clients"])
            );
        }
        let level = |v: &Value| match v {
            Value::Null => "not allowed".to_owned(),
            n => format!("{n} approval(s)"),
        };
        println!(
            "  general: {}; major: {}; {}",
            level(&p["approvals_general"]),
            level(&p["approvals_major"]),
            if p["exclusive"] == true {
                "one checkout at a time"
            } else {
                "shared"
            }
        );
    }
    if v["policies"].as_array().is_none_or(|a| a.is_empty()) {
        println!("no policy is loaded: no account can be checked out");
    }
    for (key, what) in [
        (
            "accounts_without_policy",
            "accounts no policy covers (no checkout possible)",
        ),
        ("clients_without_policy", "tools no policy admits"),
    ] {
        if v[key].as_array().is_some_and(|a| !a.is_empty()) {
            println!("{what}: {}", cell(&v[key]));
        }
    }
}
