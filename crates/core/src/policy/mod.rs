//! Access policies (`policies/*.toml`, one per account) and incident playbooks
//! (`policies/playbooks/*.toml`).
//!
//! Both are parsed strictly: an unknown key, a value out of range or a contradiction is an error
//! that names the file, line and column, so that a typo can never silently widen (or narrow)
//! access. Evaluation is deny by default: an account without a policy, a `[who]` that lists
//! nobody, a level that is not listed, or a call that is not listed is refused.

mod access;
mod playbooks;

pub use access::{AccountPolicy, BudgetWindow, Denial, LevelRule, PolicySet, PostBudget, Subject};
pub use playbooks::{AutoAction, ConfirmedAction, Playbook, PlaybookSet, Step, StepKind};

use std::fmt;
use std::ops::Range;

pub use crate::names::{Role, UnknownName};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A policy or playbook file that cannot be loaded. `Display` is `file:line:col: message` (line and
/// column are 1-based; the column counts characters, not bytes, because titles are often Chinese).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl PolicyError {
    fn file(file: &Path, message: impl Into<String>) -> Self {
        PolicyError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// An error located at a byte span of `text` (the file's contents).
    fn at(file: &Path, text: &str, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        let (line, column) = match span {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        PolicyError {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// 1-based line and character column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    // toml reports byte offsets; one inside a multi-byte character must not panic the slicing.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The `.toml` files directly in `dir`, sorted by name so that loading (and which of two
/// duplicates is reported as the second) does not depend on directory order.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| PolicyError::file(dir, format!("cannot read directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| PolicyError::file(dir, format!("cannot read directory: {e}")))?;
        let path = entry.path();
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        // `is_file` follows symlinks, so a linked policy counts; a directory named `x.toml` does not.
        if is_toml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_text(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|e| PolicyError::file(path, format!("cannot read: {e}")))
}

fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, PolicyError> {
    toml::from_str(text).map_err(|e| PolicyError::at(path, text, e.span(), e.message().trim()))
}

/// Whether `id` is a valid account or playbook id: the same rule as account ids everywhere else,
/// so every account that can exist can have a policy.
fn valid_id(id: &str) -> bool {
    crate::names::AccountId::parse(id).is_ok()
}

/// Checkout level (stored typed, so defined with the rows). Ordinary items are signed off by a
/// deputy leader, major items by the principal leader (office plan, 发布审核); the policy maps each
/// level to the approvals it needs.
pub use crate::store::types::Level;

/// The policies and playbooks in force, swapped whole by a reload (SIGHUP) while requests read
/// them: each reader gets the set that was current when it asked.
pub struct Live {
    policies: std::sync::RwLock<std::sync::Arc<PolicySet>>,
    playbooks: std::sync::RwLock<std::sync::Arc<PlaybookSet>>,
}

impl Live {
    pub fn new(policies: PolicySet, playbooks: PlaybookSet) -> Self {
        Self {
            policies: std::sync::RwLock::new(std::sync::Arc::new(policies)),
            playbooks: std::sync::RwLock::new(std::sync::Arc::new(playbooks)),
        }
    }

    /// The access policies in force.
    pub fn current(&self) -> std::sync::Arc<PolicySet> {
        self.policies
            .read()
            .map(|p| std::sync::Arc::clone(&p))
            .unwrap_or_else(|p| std::sync::Arc::clone(&p.into_inner()))
    }

    /// The incident playbooks in force.
    pub fn playbooks(&self) -> std::sync::Arc<PlaybookSet> {
        self.playbooks
            .read()
            .map(|p| std::sync::Arc::clone(&p))
            .unwrap_or_else(|p| std::sync::Arc::clone(&p.into_inner()))
    }

    /// Puts a freshly loaded policy set in force.
    pub fn set_policies(&self, fresh: PolicySet) {
        if let Ok(mut p) = self.policies.write() {
            *p = std::sync::Arc::new(fresh);
        }
    }

    /// Puts freshly loaded playbooks in force.
    pub fn set_playbooks(&self, fresh: PlaybookSet) {
        if let Ok(mut p) = self.playbooks.write() {
            *p = std::sync::Arc::new(fresh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let text = "a = 1\ntitle = \"账号\" x\n";
        let offset = text.find('x').unwrap();
        assert_eq!(line_col(text, offset), (2, 14));
        assert_eq!(line_col(text, 0), (1, 1));
        // Inside a multi-byte character: clamps back rather than panicking.
        let inside = text.find('账').unwrap() + 1;
        assert_eq!(line_col(text, inside).0, 2);
    }

    #[test]
    fn level_and_role_parse() {
        assert_eq!("major".parse::<Level>(), Ok(Level::Major));
        assert!("Major".parse::<Level>().is_err());
        assert_eq!("auditor".parse::<Role>(), Ok(Role::Auditor));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn error_display() {
        let e = PolicyError {
            file: PathBuf::from("policies/wechat.toml"),
            line: Some(7),
            column: Some(1),
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "policies/wechat.toml:7:1: boom");
    }
}
