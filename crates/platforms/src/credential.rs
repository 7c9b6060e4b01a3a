//! What a platform credential is, and how it is sealed: the broker reads one to call a platform;
//! the accounts service checks what a person sends before it becomes one.

use serde::{Deserialize, Serialize};

use mediavault_base::crypto::{Aad, CryptoError, Keyring, SecretString};

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
