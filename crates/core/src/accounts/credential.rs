//! What a person sends as a platform credential, checked per platform before it becomes a
//! [`Credential`] (defined with the platforms, which read it; sealed there too).

use serde::Deserialize;

use crate::crypto::SecretString;
use crate::error::{Error, Result};

pub use crate::platforms::credential::{Credential, aad};
pub use crate::store::types::Platform;

/// Credential fields as a client sends them; which are required depends on the platform.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialInput {
    pub app_id: Option<String>,
    #[schema(value_type = Option<String>, format = Password)]
    pub app_secret: Option<SecretString>,
    pub app_key: Option<String>,
    #[schema(value_type = Option<String>, format = Password)]
    pub access_token: Option<SecretString>,
    pub username: Option<String>,
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
    #[schema(value_type = Option<String>, format = Password)]
    pub login_password: Option<SecretString>,
    #[schema(value_type = Option<String>, format = Password)]
    pub login_totp_seed: Option<SecretString>,
}

fn present(field: &str, v: &Option<String>) -> Result<()> {
    match v.as_deref().map(str::trim) {
        None => Err(Error::invalid(
            field,
            format!("credential.{field} is required"),
        )),
        Some("") => Err(Error::invalid(
            field,
            format!("credential.{field} must not be empty"),
        )),
        Some(s) if s.len() > 128 || s.chars().any(char::is_control) => Err(Error::invalid(
            field,
            format!("credential.{field} must be at most 128 printable characters"),
        )),
        Some(_) => Ok(()),
    }
}

fn secret_present(field: &str, v: &Option<SecretString>) -> Result<()> {
    match v {
        None => Err(Error::invalid(
            field,
            format!("credential.{field} is required"),
        )),
        Some(s) if s.expose().trim().is_empty() => Err(Error::invalid(
            field,
            format!("credential.{field} must not be empty"),
        )),
        Some(s) if s.expose().len() > 4096 || s.expose().chars().any(char::is_control) => {
            Err(Error::invalid(
                field,
                format!("credential.{field} must be at most 4096 printable characters"),
            ))
        }
        Some(_) => Ok(()),
    }
}

fn absent<T>(platform: Platform, field: &str, v: &Option<T>) -> Result<()> {
    if v.is_some() {
        return Err(Error::invalid(
            field,
            format!(
                "credential.{field} does not belong to a {} account",
                platform.as_str()
            ),
        ));
    }
    Ok(())
}

impl CredentialInput {
    /// Checks the fields against the platform: required ones present and non-empty, foreign
    /// ones refused, the login TOTP seed valid base32.
    pub fn check(self, platform: Platform) -> Result<Credential> {
        match platform {
            Platform::Wechat => {
                present("app_id", &self.app_id)?;
                secret_present("app_secret", &self.app_secret)?;
                absent(platform, "app_key", &self.app_key)?;
                absent(platform, "access_token", &self.access_token)?;
                absent(platform, "username", &self.username)?;
                absent(platform, "password", &self.password)?;
            }
            Platform::Weibo => {
                present("app_key", &self.app_key)?;
                secret_present("app_secret", &self.app_secret)?;
                secret_present("access_token", &self.access_token)?;
                absent(platform, "app_id", &self.app_id)?;
                absent(platform, "username", &self.username)?;
                absent(platform, "password", &self.password)?;
            }
            Platform::Generic => {
                present("username", &self.username)?;
                secret_present("password", &self.password)?;
                absent(platform, "app_id", &self.app_id)?;
                absent(platform, "app_secret", &self.app_secret)?;
                absent(platform, "app_key", &self.app_key)?;
                absent(platform, "access_token", &self.access_token)?;
            }
        }
        if self.login_password.is_some() {
            secret_present("login_password", &self.login_password)?;
        }
        if let Some(seed) = &self.login_totp_seed
            && crate::identity::totp::seed_from_base32(seed.expose()).is_none()
        {
            {
                return Err(Error::invalid(
                    "login_totp_seed",
                    "credential.login_totp_seed must be a base32 TOTP seed of at least 80 bits",
                ));
            }
        }
        let trim = |v: Option<String>| v.map(|s| s.trim().to_owned());
        Ok(Credential {
            app_id: trim(self.app_id),
            app_secret: self.app_secret,
            app_key: trim(self.app_key),
            access_token: self.access_token,
            username: trim(self.username),
            password: self.password,
            login_password: self.login_password,
            login_totp_seed: self.login_totp_seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> CredentialInput {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn platform_fields_are_checked() {
        assert!(
            input(r#"{"app_id":"wx1","app_secret":"s"}"#)
                .check(Platform::Wechat)
                .is_ok()
        );
        let e = input(r#"{"app_id":"wx1","app_secret":"  "}"#)
            .check(Platform::Wechat)
            .unwrap_err();
        assert!(e.to_string().contains("must not be empty"), "{e}");
        let e = input(r#"{"app_id":"wx1"}"#)
            .check(Platform::Wechat)
            .unwrap_err();
        assert!(e.to_string().contains("app_secret is required"), "{e}");
        let e = input(r#"{"app_id":"wx1","app_secret":"s","password":"p"}"#)
            .check(Platform::Wechat)
            .unwrap_err();
        assert!(e.to_string().contains("does not belong"), "{e}");
        assert!(serde_json::from_str::<CredentialInput>(r#"{"app_sekret":"s"}"#).is_err());
        let e = input(r#"{"username":"u","password":"p","login_totp_seed":"not base32!"}"#)
            .check(Platform::Generic)
            .unwrap_err();
        assert!(e.to_string().contains("base32"), "{e}");
    }

    #[test]
    fn debug_of_a_credential_shows_no_secret() {
        let c = input(r#"{"app_key":"k","app_secret":"MARKER1","access_token":"MARKER2"}"#)
            .check(Platform::Weibo)
            .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("MARKER"), "{d}");
    }
}
