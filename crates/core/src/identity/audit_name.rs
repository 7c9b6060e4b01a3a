//! How a login attempt names its user in the audit log.
//!
//! Failed attempts must be attributed to the name tried, or guessing against one account cannot be
//! seen. But what is typed into the username field is not always a username: a password typed into
//! the wrong box would be kept, readable by every auditor, for the six months the law keeps logs.
//! So a name that matches a user is recorded as that user, and anything else as `unknown:` and the
//! first 16 hex digits of an HMAC under a key derived from the keyring's MAC master: repeated
//! attempts with one name still show as one, and whoever holds the vault's keys can test a
//! suspected name, but the log alone does not reveal what was typed.

use crate::crypto::hmac_parts;

use super::users::People;

impl People {
    /// The name a login attempt is recorded under: the user's own name when `known` (the typed
    /// text parsed as a username that exists), else the keyed digest of what was typed.
    pub(crate) fn login_audit_name(&self, typed: &str, known: Option<&str>) -> String {
        if let Some(name) = known {
            return name.to_owned();
        }
        let mac = hmac_parts(&self.keys.mac().login_name, &[typed.as_bytes()]);
        format!("unknown:{}", hex::encode(&mac[..8]))
    }
}
