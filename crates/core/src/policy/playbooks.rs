//! Incident playbooks: the automated actions an incident starts with, and the manual checklist
//! (with owners and deadlines) that follows.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{PolicyError, Role, parse_toml, read_text, toml_files, valid_id};

/// A deadline further out than this is almost certainly a unit mistake (hours or seconds typed
/// as minutes).
const MAX_DUE_MINUTES: u32 = 30 * 24 * 60;

/// All loaded playbooks, by id.
#[derive(Debug, Clone, Default)]
pub struct PlaybookSet {
    playbooks: BTreeMap<String, Playbook>,
}

impl PlaybookSet {
    /// Loads every `*.toml` file directly in `dir`. An empty directory gives an empty set; a
    /// missing one is an error, as for access policies, so a wrong path is noticed at start and
    /// not in the middle of an incident.
    pub fn load_dir(dir: &Path) -> Result<PlaybookSet, PolicyError> {
        let mut set = PlaybookSet::empty();
        let mut sources: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in toml_files(dir)? {
            let text = read_text(&file)?;
            let (playbook, id_span) = Playbook::parse(&file, &text)?;
            if let Some(first) = sources.get(&playbook.id) {
                return Err(PolicyError::at(
                    &file,
                    &text,
                    Some(id_span),
                    format!(
                        "playbook id `{}` is already used by {}",
                        playbook.id,
                        first.display()
                    ),
                ));
            }
            sources.insert(playbook.id.clone(), file.clone());
            set.playbooks.insert(playbook.id.clone(), playbook);
        }
        Ok(set)
    }

    /// Like [`Self::load_dir`], but a broken file (or a duplicate id) does not keep the others
    /// out: the good playbooks load and every problem is returned, named with its file and line.
    /// This is what the server uses, so one typo cannot disable every emergency plan.
    pub fn load_dir_lenient(dir: &Path) -> (PlaybookSet, Vec<PolicyError>) {
        let mut set = PlaybookSet::empty();
        let mut problems = Vec::new();
        let files = match toml_files(dir) {
            Ok(f) => f,
            Err(e) => return (set, vec![e]),
        };
        let mut sources: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in files {
            let text = match read_text(&file) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            match Playbook::parse(&file, &text) {
                Ok((playbook, id_span)) => {
                    if let Some(first) = sources.get(&playbook.id) {
                        problems.push(PolicyError::at(
                            &file,
                            &text,
                            Some(id_span),
                            format!(
                                "playbook id `{}` is already used by {}",
                                playbook.id,
                                first.display()
                            ),
                        ));
                        continue;
                    }
                    sources.insert(playbook.id.clone(), file.clone());
                    set.playbooks.insert(playbook.id.clone(), playbook);
                }
                Err(e) => problems.push(e),
            }
        }
        (set, problems)
    }

    pub fn empty() -> Self {
        PlaybookSet::default()
    }

    pub fn get(&self, id: &str) -> Option<&Playbook> {
        self.playbooks.get(id)
    }

    /// Playbooks in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Playbook> {
        self.playbooks.values()
    }

    pub fn len(&self) -> usize {
        self.playbooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.playbooks.is_empty()
    }
}

/// One playbook, as served by `GET /playbooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Playbook {
    pub id: String,
    pub title: String,
    pub description: String,
    /// Automated steps first (they run when the incident opens), then the manual checklist.
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Step {
    pub kind: StepKind,
    /// Set exactly for automated steps.
    pub action: Option<AutoAction>,
    pub title: String,
    /// Set exactly for manual steps: who must do it.
    pub owner_role: Option<Role>,
    /// For manual steps: minutes after the incident opens by which it should be done.
    pub due_minutes: Option<u32>,
    /// For manual steps: what the vault does once the owner confirms the step with their TOTP
    /// code (e.g. delete the captured posts). Such a step cannot be ticked off with a note alone.
    pub confirm: Option<ConfirmedAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Auto,
    Manual,
}

/// What the incident engine can do by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutoAction {
    /// Freeze the account, which also revokes its live tokens.
    FreezeAccount,
    /// Revoke every live publishing token of the account.
    RevokeTokens,
    /// Drop the cached platform access token and fetch a new one, invalidating the old one.
    RefreshPlatformToken,
    /// Send the incident to the configured notification channels.
    Notify,
    /// Mark the account's current credential compromised: the account cannot be unfrozen until a
    /// rotation made after the incident opened is current.
    MarkCompromised,
    /// Seal a signed audit checkpoint of the chain head into the incident.
    SealCheckpoint,
    /// Fetch the post named when the incident opened and keep it as evidence (content, digest,
    /// platform id).
    CaptureEvidence,
}

impl AutoAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoAction::FreezeAccount => "freeze_account",
            AutoAction::RevokeTokens => "revoke_tokens",
            AutoAction::RefreshPlatformToken => "refresh_platform_token",
            AutoAction::Notify => "notify",
            AutoAction::MarkCompromised => "mark_compromised",
            AutoAction::SealCheckpoint => "seal_checkpoint",
            AutoAction::CaptureEvidence => "capture_evidence",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AutoAction::FreezeAccount,
            AutoAction::RevokeTokens,
            AutoAction::RefreshPlatformToken,
            AutoAction::Notify,
            AutoAction::MarkCompromised,
            AutoAction::SealCheckpoint,
            AutoAction::CaptureEvidence,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// What a manual step does when its owner confirms it with TOTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmedAction {
    /// Delete every post captured as evidence from the platform (WeChat `freepublish/delete`,
    /// Weibo `statuses/destroy`). The evidence stays.
    DeletePost,
}

impl ConfirmedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmedAction::DeletePost => "delete_post",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s == "delete_post").then_some(ConfirmedAction::DeletePost)
    }
}

impl Playbook {
    /// Parses one playbook from text, as if read from `playbook.toml`. Not for product code
    /// (playbooks are loaded a directory at a time, [`PlaybookSet::load_dir`]); it exists because
    /// the `fuzz/` targets, a package of their own, can only reach a public function.
    #[doc(hidden)]
    pub fn parse_str(text: &str) -> Result<Playbook, PolicyError> {
        Self::parse(Path::new("playbook.toml"), text).map(|(p, _)| p)
    }

    fn parse(file: &Path, text: &str) -> Result<(Playbook, Range<usize>), PolicyError> {
        let raw: RawPlaybook = parse_toml(file, text)?;
        let err = |span: Range<usize>, msg: String| PolicyError::at(file, text, Some(span), msg);

        let id = raw.id.get_ref().clone();
        if !valid_id(&id) {
            return Err(err(
                raw.id.span(),
                format!(
                    "playbook id `{id}` must be 1-64 characters of a-z, 0-9, `-`, `_` or `.`, starting with a letter or digit"
                ),
            ));
        }
        let title = non_blank(&raw.title, "title").map_err(|(s, m)| err(s, m))?;
        if raw.steps.is_empty() {
            return Err(err(
                raw.id.span(),
                format!("playbook `{id}` has no steps; add at least one [[steps]]"),
            ));
        }

        let mut steps = Vec::with_capacity(raw.steps.len());
        let mut seen_manual = false;
        for (n, raw_step) in raw.steps.into_iter().enumerate() {
            let span = raw_step.span();
            let step = raw_step.into_inner();
            let n = n + 1;
            let title = non_blank(&step.title, "step title").map_err(|(s, m)| err(s, m))?;
            let due_minutes = match &step.due_minutes {
                Some(d) if !(1..=MAX_DUE_MINUTES).contains(d.get_ref()) => {
                    return Err(err(
                        d.span(),
                        format!("due_minutes must be 1 to {MAX_DUE_MINUTES}"),
                    ));
                }
                Some(d) => Some(*d.get_ref()),
                None => None,
            };
            match step.kind {
                StepKind::Auto => {
                    if step.action.is_none() {
                        return Err(err(
                            span,
                            format!(
                                "step {n} is automatic but has no action (one of freeze_account, revoke_tokens, refresh_platform_token, notify, mark_compromised, seal_checkpoint, capture_evidence)"
                            ),
                        ));
                    }
                    if step.owner_role.is_some() || due_minutes.is_some() || step.confirm.is_some()
                    {
                        return Err(err(
                            span,
                            format!(
                                "step {n} is automatic and runs at once; owner_role, due_minutes and confirm belong to manual steps"
                            ),
                        ));
                    }
                    if seen_manual {
                        return Err(err(
                            span,
                            format!(
                                "step {n} is automatic but follows a manual step; automatic steps run when the incident opens, so list them first"
                            ),
                        ));
                    }
                }
                StepKind::Manual => {
                    seen_manual = true;
                    if step.action.is_some() {
                        return Err(err(
                            span,
                            format!("step {n} is manual and must not have an action"),
                        ));
                    }
                    if step.owner_role.is_none() {
                        return Err(err(
                            span,
                            format!(
                                "step {n} is manual and needs an owner_role (admin, auditor, approver, publisher)"
                            ),
                        ));
                    }
                }
            }
            steps.push(Step {
                kind: step.kind,
                action: step.action,
                title,
                owner_role: step.owner_role,
                due_minutes,
                confirm: step.confirm,
            });
        }

        let playbook = Playbook {
            id,
            title,
            description: raw.description.trim().to_owned(),
            steps,
        };
        Ok((playbook, raw.id.span()))
    }
}

fn non_blank(s: &Spanned<String>, what: &str) -> Result<String, (Range<usize>, String)> {
    let trimmed = s.get_ref().trim();
    if trimmed.is_empty() {
        Err((s.span(), format!("{what} must not be empty")))
    } else {
        Ok(trimmed.to_owned())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    id: Spanned<String>,
    title: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    steps: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    kind: StepKind,
    action: Option<AutoAction>,
    title: Spanned<String>,
    owner_role: Option<Role>,
    due_minutes: Option<Spanned<u32>>,
    confirm: Option<ConfirmedAction>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "account-compromised"
title = "账号疑似被盗"
description = "..."

[[steps]]
kind = "auto"
action = "freeze_account"
title = "冻结账号"

[[steps]]
kind = "manual"
title = "修改平台密码"
owner_role = "admin"
due_minutes = 30
"#;

    fn parse(text: &str) -> Result<Playbook, PolicyError> {
        Playbook::parse(Path::new("policies/playbooks/t.toml"), text).map(|(p, _)| p)
    }

    #[test]
    fn good_playbook_parses_and_serializes() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[0].action, Some(AutoAction::FreezeAccount));
        assert_eq!(p.steps[1].owner_role, Some(Role::Admin));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["steps"][0]["kind"], "auto");
        assert_eq!(json["steps"][0]["action"], "freeze_account");
        assert_eq!(json["steps"][1]["owner_role"], "admin");
        assert_eq!(json["steps"][1]["due_minutes"], 30);
    }

    #[test]
    fn invalid_playbooks_are_rejected_with_lines() {
        let e = parse(&GOOD.replace("owner_role", "owner")).unwrap_err();
        assert_eq!(e.line, Some(14));
        assert!(e.message.contains("unknown field `owner`"), "{e}");

        let e = parse(&GOOD.replace("freeze_account", "wipe_disk")).unwrap_err();
        assert_eq!(e.line, Some(8));

        let e = parse(&GOOD.replace("action = \"freeze_account\"\n", "")).unwrap_err();
        assert!(e.message.contains("no action"), "{e}");
        assert!(e.line.is_some());

        let e = parse(&GOOD.replace("owner_role = \"admin\"", "action = \"notify\"")).unwrap_err();
        assert!(e.message.contains("must not have an action"), "{e}");

        let e = parse(&GOOD.replace("\"admin\"", "\"leader\"")).unwrap_err();
        assert_eq!(e.line, Some(14));

        assert!(parse(&GOOD.replace("due_minutes = 30", "due_minutes = 0")).is_err());
        assert!(parse("id = \"x\"\ntitle = \"t\"\n").is_err());
        assert!(parse(&GOOD.replace("account-compromised", "Bad Id")).is_err());

        // An automatic step after a manual one would never run at the right time.
        let reordered =
            format!("{GOOD}\n[[steps]]\nkind = \"auto\"\naction = \"notify\"\ntitle = \"通知\"\n");
        assert!(parse(&reordered).is_err());
    }

    #[test]
    fn duplicate_ids_name_both_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.toml"), GOOD).unwrap();
        let e = PlaybookSet::load_dir(dir.path()).unwrap_err();
        assert_eq!(e.file, dir.path().join("b.toml"));
        assert_eq!(e.line, Some(2));
        assert!(
            e.message
                .contains(&dir.path().join("a.toml").display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn shipped_playbooks_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/playbooks");
        let set = PlaybookSet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let compromised = set.get("wechat-account-compromised").unwrap();
        let actions: Vec<_> = compromised.steps.iter().filter_map(|s| s.action).collect();
        assert_eq!(
            actions,
            vec![
                AutoAction::FreezeAccount,
                AutoAction::RevokeTokens,
                AutoAction::MarkCompromised,
                AutoAction::RefreshPlatformToken,
                AutoAction::SealCheckpoint,
                AutoAction::Notify
            ]
        );
        for id in [
            "weibo-account-compromised",
            "appsecret-leaked",
            "credential-rejected",
            "harmful-content",
        ] {
            assert!(set.get(id).is_some(), "{id}");
        }
        let harmful = set.get("harmful-content").unwrap();
        assert!(
            harmful
                .steps
                .iter()
                .any(|s| s.confirm == Some(ConfirmedAction::DeletePost))
        );
        assert_eq!(set.len(), 5);
        // Every title is bilingual.
        for p in set.iter() {
            for s in &p.steps {
                assert!(s.title.contains("/ "), "{}: {}", p.id, s.title);
            }
        }
    }

    #[test]
    fn a_broken_playbook_does_not_keep_the_others_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), GOOD).unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            GOOD.replace("account-compromised", "other")
                .replace("due_minutes = 30", "due_minutes = 0"),
        )
        .unwrap();
        let (set, problems) = PlaybookSet::load_dir_lenient(dir.path());
        assert_eq!(set.len(), 1);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].file, dir.path().join("b.toml"));
        assert_eq!(problems[0].line, Some(15));
    }

    #[test]
    fn confirm_belongs_to_manual_steps() {
        let bad = GOOD.replace(
            "title = \"冻结账号\"",
            "title = \"冻结账号\"\nconfirm = \"delete_post\"",
        );
        assert!(parse(&bad).is_err());
        let good = GOOD.replace(
            "due_minutes = 30",
            "due_minutes = 30\nconfirm = \"delete_post\"",
        );
        assert_eq!(
            parse(&good).unwrap().steps[1].confirm,
            Some(ConfirmedAction::DeletePost)
        );
    }

    /// The properties the `playbook_toml` fuzz target checks: parsing never panics, a refusal says
    /// something, and a playbook that parses renders to TOML that parses to the same playbook.
    mod props {
        use proptest::prelude::*;

        use super::*;

        fn step() -> impl Strategy<Value = String> {
            (
                prop::sample::select(vec!["auto", "manual"]),
                prop::option::of(prop::sample::select(vec![
                    "freeze_account",
                    "notify",
                    "capture_evidence",
                    "wipe",
                ])),
                "\\PC{0,12}",
                prop::option::of(prop::sample::select(vec!["admin", "auditor", "boss"])),
                prop::option::of(0u32..50_000),
                prop::option::of(prop::sample::select(vec!["delete_post", "nuke"])),
            )
                .prop_map(|(kind, action, title, owner, due, confirm)| {
                    let mut s = format!("[[steps]]\nkind = {kind:?}\ntitle = {title:?}\n");
                    if let Some(a) = action {
                        s.push_str(&format!("action = {a:?}\n"));
                    }
                    if let Some(o) = owner {
                        s.push_str(&format!("owner_role = {o:?}\n"));
                    }
                    if let Some(d) = due {
                        s.push_str(&format!("due_minutes = {d}\n"));
                    }
                    if let Some(c) = confirm {
                        s.push_str(&format!("confirm = {c:?}\n"));
                    }
                    s
                })
        }

        fn playbook_text() -> impl Strategy<Value = String> {
            (
                "[a-z0-9][a-z0-9._-]{0,10}|[A-Z ]{0,3}",
                "\\PC{0,16}",
                "\\PC{0,16}",
                prop::collection::vec(step(), 0..4),
            )
                .prop_map(|(id, title, description, steps)| {
                    format!(
                        "id = {id:?}\ntitle = {title:?}\ndescription = {description:?}\n{}",
                        steps.concat()
                    )
                })
        }

        fn check(text: &str) {
            match Playbook::parse_str(text) {
                Ok(playbook) => {
                    let rendered = toml::to_string(&playbook).unwrap();
                    assert_eq!(
                        Playbook::parse_str(&rendered),
                        Ok(playbook),
                        "rendered as {rendered}"
                    );
                }
                Err(e) => {
                    assert!(!e.message.trim().is_empty(), "no message for {text:?}");
                    if let Some(line) = e.line {
                        assert!((1..=text.lines().count() + 1).contains(&line), "{e}");
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_text_parses_or_is_refused_clearly(text in "\\PC{0,200}") {
                check(&text);
            }

            #[test]
            fn playbook_shaped_text_round_trips_or_is_refused_clearly(text in playbook_text()) {
                check(&text);
            }
        }

        #[test]
        fn the_example_round_trips() {
            check(GOOD);
            assert!(Playbook::parse_str(GOOD).is_ok());
        }
    }
}
