//! What a platform credential is, per platform, and how it is sealed.

use serde::{Deserialize, Serialize};

use crate::crypto::{Aad, CryptoError, Keyring, SecretString};
use crate::error::{Error, Result};

pub use crate::store::types::Platform;

/// Credential fields as a client sends them; which are required depends on the platform.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialInput {
    pub app_id: Option<String>,
    pub app_secret: Option<SecretString>,
    pub app_key: Option<String>,
    pub access_token: Option<SecretString>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub login_password: Option<SecretString>,
    pub login_totp_seed: Option<SecretString>,
}

/// A checked credential. Identifiers (`app_id`, `app_key`, `username`) are not secret but are kept
/// sealed with the rest, so the database row says nothing about the platform account. It is
/// deserialized only from its own sealed form; client input goes through [`CredentialInput::check`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub app_id: Option<String>,
    pub app_secret: Option<SecretString>,
    pub app_key: Option<String>,
    pub access_token: Option<SecretString>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub login_password: Option<SecretString>,
    pub login_totp_seed: Option<SecretString>,
}

/// The sealed JSON form, borrowed so no extra plaintext copy lives in an unwiped `String`.
#[derive(Serialize)]
struct SealedForm<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    login_password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    login_totp_seed: Option<&'a str>,
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

pub fn aad(account: &str, version: i64) -> Aad<'_> {
    Aad {
        table: "credential_versions",
        row: account,
        field: "credential",
        version,
    }
}

impl Credential {
    pub fn seal(
        &self,
        keys: &Keyring,
        account: &str,
        version: i64,
    ) -> Result<Vec<u8>, CryptoError> {
        let form = SealedForm {
            app_id: self.app_id.as_deref(),
            app_secret: self.app_secret.as_ref().map(SecretString::expose),
            app_key: self.app_key.as_deref(),
            access_token: self.access_token.as_ref().map(SecretString::expose),
            username: self.username.as_deref(),
            password: self.password.as_ref().map(SecretString::expose),
            login_password: self.login_password.as_ref().map(SecretString::expose),
            login_totp_seed: self.login_totp_seed.as_ref().map(SecretString::expose),
        };
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(&form).map_err(|_| CryptoError::Malformed("credential encoding"))?,
        );
        keys.seal(&aad(account, version), &json)
    }

    pub fn open(
        keys: &Keyring,
        account: &str,
        version: i64,
        sealed: &[u8],
    ) -> Result<Self, CryptoError> {
        let plain = keys.open(&aad(account, version), sealed)?;
        serde_json::from_slice(plain.expose())
            .map_err(|_| CryptoError::Malformed("credential encoding"))
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
