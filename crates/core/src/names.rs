//! Parsed names: once a value has one of these types it is known to be well formed.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

fn check_id(field: &str, s: &str, max: usize) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{field} must be 1-{max} characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit"
            ),
        ))
    }
}

macro_rules! name_type {
    ($name:ident, $field:literal, $max:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, Error> {
                check_id($field, s, $max)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(Username, "username", 32);
name_type!(AccountId, "id", 64);

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Publisher,
    Approver,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Publisher => "publisher",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s {
            "admin" => Ok(Role::Admin),
            "publisher" => Ok(Role::Publisher),
            "approver" => Ok(Role::Approver),
            "auditor" => Ok(Role::Auditor),
            _ => Err(UnknownName {
                what: "role",
                name: s.to_owned(),
                expected: "admin, publisher, approver, auditor",
            }),
        }
    }
}

pub use crate::store::types::UnknownName;

/// A valid set of roles, no duplicates, following the separation of duties (等保 level 3,
/// SECURITY.md): an admin holds no other role, an auditor holds no other role, an approver may
/// also publish (and never approves their own request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(Vec<Role>);

impl Roles {
    /// Roles asked for by a person: at least one, each known, and separated as the table says.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, Error> {
        let roles = Self::parse_any(names)?;
        if roles.0.is_empty() {
            return Err(Error::invalid("roles", "a user needs at least one role"));
        }
        roles.separated()?;
        Ok(roles)
    }

    fn parse_any<S: AsRef<str>>(names: &[S]) -> Result<Self, Error> {
        let mut roles = names
            .iter()
            .map(|n| {
                n.as_ref()
                    .parse()
                    .map_err(|e: UnknownName| Error::invalid("roles", e.to_string()))
            })
            .collect::<Result<Vec<Role>, _>>()?;
        roles.sort();
        roles.dedup();
        Ok(Self(roles))
    }

    /// The separation-of-duties check: admin and auditor each stand alone.
    pub fn separated(&self) -> Result<(), Error> {
        for alone in [Role::Admin, Role::Auditor] {
            if self.has(alone) && self.0.len() > 1 {
                return Err(Error::invalid(
                    "roles",
                    format!(
                        "{alone} cannot be combined with another role (separation of duties: {})",
                        self.names().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// These roles plus `role`, if the result is still separated.
    pub fn with(&self, role: Role) -> Result<Self, Error> {
        let mut roles = self.0.clone();
        roles.push(role);
        roles.sort();
        roles.dedup();
        let out = Self(roles);
        out.separated()?;
        Ok(out)
    }

    /// Roles whose grant a second admin must confirm.
    pub fn needs_confirmation(role: Role) -> bool {
        matches!(role, Role::Admin | Role::Approver)
    }

    /// The roles granted at once and those that wait for a second admin.
    pub fn split_confirmed(&self) -> (Roles, Vec<Role>) {
        let (pending, now): (Vec<Role>, Vec<Role>) =
            self.0.iter().partition(|r| Self::needs_confirmation(**r));
        (Roles(now), pending)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// From the stored comma-separated form. Not re-checked for separation, so a store from an
    /// older version keeps working; empty while every role still waits for confirmation.
    pub fn from_stored(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split(',').filter(|p| !p.is_empty()).collect();
        Self::parse_any(&parts)
    }

    pub fn to_stored(&self) -> String {
        self.names().join(",")
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|r| r.as_str().to_owned()).collect()
    }

    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_odd_characters() {
        assert!(Username::parse("alice").is_ok());
        for bad in ["", "Alice", "a b", "a/b", "../x", "-x", "x;drop", "é"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
        assert!(AccountId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn separation_of_duties() {
        for bad in [
            &["admin", "auditor"][..],
            &["admin", "publisher"],
            &["admin", "approver"],
            &["auditor", "publisher"],
            &["auditor", "approver"],
        ] {
            assert!(Roles::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Roles::parse::<&str>(&[]).is_err());
        assert!(Roles::parse(&["root"]).is_err());
        let r = Roles::parse(&["publisher", "approver", "publisher"]).unwrap();
        assert_eq!(r.to_stored(), "publisher,approver");
        assert!(r.with(Role::Auditor).is_err());
        let (now, pending) = r.split_confirmed();
        assert_eq!(now.names(), ["publisher"]);
        assert_eq!(pending, [Role::Approver]);
    }

    /// The properties the `names_roster` fuzz target checks for names: parsing never panics, and a
    /// name that parses renders as itself.
    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn names_parse_to_themselves_or_are_refused(s in "\\PC{0,70}|[a-z0-9][a-z0-9._-]{0,70}") {
                match Username::parse(&s) {
                    Ok(u) => {
                        prop_assert_eq!(u.as_str(), s.as_str());
                        prop_assert_eq!(Username::parse(&u.to_string()).ok(), Some(u));
                    }
                    Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
                }
                match AccountId::parse(&s) {
                    Ok(a) => prop_assert_eq!(a.to_string(), s.clone()),
                    Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
                }
                if let Ok(r) = s.parse::<Role>() {
                    prop_assert_eq!(r.as_str(), s.as_str());
                }
            }

            #[test]
            fn role_lists_parse_or_are_refused(names in prop::collection::vec("admin|publisher|approver|auditor|[a-z]{0,6}", 0..5)) {
                if let Ok(roles) = Roles::parse(&names) {
                    prop_assert!(roles.separated().is_ok());
                }
            }
        }
    }
}
