//! A roster: the people an admin adds in one go (onboarding an office), as CSV with a header row
//! (`username,display_name,department,roles`; roles separated by `;`, `|` or spaces). The admin
//! CLI reads it from a file and the console from a pasted text; both hand the parsed rows to
//! `people().import`, which checks every row before anything is created.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most people one import adds.
pub const MAX_ROWS: usize = 200;

/// One person of a roster.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    pub username: String,
    pub display_name: String,
    #[serde(default)]
    pub department: Option<String>,
    pub roles: Vec<String>,
}

const COLUMNS: [&str; 4] = ["username", "display_name", "department", "roles"];

/// Parses a roster. Errors name the line. A UTF-8 byte order mark (Excel's "CSV UTF-8") is
/// skipped; blank lines and lines starting with `#` are ignored; fields may be quoted with `"`
/// (a doubled `""` inside is one quote).
pub fn parse_csv(text: &str) -> Result<Vec<RosterEntry>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut header: Option<Vec<String>> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let fields = split_line(line).map_err(|e| bad(n, &e))?;
        let Some(cols) = &header else {
            let cols: Vec<String> = fields.iter().map(|f| f.trim().to_lowercase()).collect();
            for c in &cols {
                if !COLUMNS.contains(&c.as_str()) {
                    return Err(bad(
                        n,
                        &format!(
                            "unknown column {c:?}; the header names some of: {}",
                            COLUMNS.join(",")
                        ),
                    ));
                }
            }
            for needed in ["username", "display_name", "roles"] {
                if !cols.iter().any(|c| c == needed) {
                    return Err(bad(n, &format!("the header needs a column {needed:?}")));
                }
            }
            header = Some(cols);
            continue;
        };
        if fields.len() != cols.len() {
            return Err(bad(
                n,
                &format!(
                    "{} fields where the header has {}",
                    fields.len(),
                    cols.len()
                ),
            ));
        }
        let get = |name: &str| {
            cols.iter()
                .position(|c| c == name)
                .and_then(|i| fields.get(i))
                .map(|f| f.trim().to_owned())
                .unwrap_or_default()
        };
        let roles: Vec<String> = get("roles")
            .split([';', '|', ' ', '；'])
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_lowercase)
            .collect();
        let department = Some(get("department")).filter(|d| !d.is_empty());
        out.push(RosterEntry {
            username: get("username"),
            display_name: get("display_name"),
            department,
            roles,
        });
        if out.len() > MAX_ROWS {
            return Err(bad(
                n,
                &format!("a roster adds at most {MAX_ROWS} people; split it"),
            ));
        }
    }
    if header.is_none() || out.is_empty() {
        return Err(Error::invalid(
            "roster",
            "the roster is empty: a header line (username,display_name,department,roles) and one line per person",
        ));
    }
    Ok(out)
}

fn bad(line: usize, detail: &str) -> Error {
    Error::invalid("roster", format!("line {line}: {detail}"))
}

/// One CSV line into its fields (RFC 4180 quoting; no field spans lines).
fn split_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => return Err("a quote in the middle of a field".into()),
            (false, ',') => {
                fields.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            (false, c) if was_quoted && !c.is_whitespace() => {
                return Err("text after a closing quote".into());
            }
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(cur);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_roster_with_quotes_bom_comments_and_role_lists() {
        let text = "\u{feff}username,display_name,department,roles\r\n\
                    # 宣传处\n\
                    zhangsan,张三,宣传处,publisher\n\
                    \n\
                    lisi,\"李四, 处长\",办公室,publisher;approver\n\
                    wangwu,王五,,AUDITOR\n";
        let rows = parse_csv(text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].display_name, "李四, 处长");
        assert_eq!(rows[1].roles, vec!["publisher", "approver"]);
        assert_eq!(rows[2].department, None);
        assert_eq!(rows[2].roles, vec!["auditor"]);
    }

    #[test]
    fn columns_may_come_in_any_order_and_department_may_be_left_out() {
        let rows = parse_csv("roles,username,display_name\npublisher,a1,A\n").unwrap();
        assert_eq!(rows[0].username, "a1");
        assert_eq!(rows[0].department, None);
    }

    #[test]
    fn mistakes_name_their_line() {
        let err = |t: &str| parse_csv(t).unwrap_err().to_string();
        assert!(err("username,display_name,roles\na,b\n").contains("line 2"));
        assert!(err("username,name,roles\n").contains("unknown column \"name\""));
        assert!(err("username,display_name\n").contains("\"roles\""));
        assert!(err("username,display_name,roles\n\"a,b,c\n").contains("not closed"));
        assert!(err("username,display_name,roles\n").contains("empty"));
        assert!(err("").contains("empty"));
        let many: String = std::iter::once("username,display_name,roles\n".to_owned())
            .chain((0..=MAX_ROWS).map(|i| format!("u{i},U,publisher\n")))
            .collect();
        assert!(err(&many).contains("at most"));
    }

    /// The properties the `names_roster` fuzz target checks for a roster: parsing any text never
    /// panics and a refusal says why; a roster written out with quoting reads back to its rows.
    mod props {
        use proptest::prelude::*;

        use super::*;

        fn quote(s: &str) -> String {
            format!("\"{}\"", s.replace('"', "\"\""))
        }

        fn entry() -> impl Strategy<Value = RosterEntry> {
            (
                "[a-z][a-z0-9]{0,8}",
                "[^\r\n\u{feff}#\\s][^\r\n]{0,10}",
                prop::option::of("[^\r\n\\s][^\r\n]{0,8}[^\r\n\\s]"),
                prop::collection::vec("admin|publisher|approver|auditor", 1..3),
            )
                .prop_map(|(username, display_name, department, roles)| RosterEntry {
                    username,
                    display_name: display_name.trim().to_owned(),
                    department,
                    roles,
                })
                .prop_filter("a display name", |e| !e.display_name.is_empty())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_text_parses_or_is_refused_clearly(text in "\\PC{0,200}|username,display_name,roles\n\\PC{0,120}") {
                if let Err(e) = parse_csv(&text) {
                    prop_assert!(!e.to_string().trim().is_empty());
                }
            }

            #[test]
            fn a_written_roster_reads_back(entries in prop::collection::vec(entry(), 1..5)) {
                let mut text = String::from("username,display_name,department,roles\n");
                for e in &entries {
                    text.push_str(&format!(
                        "{},{},{},{}\n",
                        quote(&e.username),
                        quote(&e.display_name),
                        quote(e.department.as_deref().unwrap_or("")),
                        e.roles.join(";")
                    ));
                }
                prop_assert_eq!(parse_csv(&text).unwrap(), entries);
            }
        }
    }
}
