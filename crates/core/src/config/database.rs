//! Where the store is: the embedded SQLite file in `data_dir` (the default), or a PostgreSQL
//! database for several vault nodes on one database.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Absent or `sqlite:`: `<data_dir>/mediavault.db`. `postgres://user[:password]@host[:port]/db`
    /// (or `postgresql://`): that PostgreSQL database. `MEDIAVAULT_DATABASE__URL` overrides it,
    /// so a password need not be written into the file.
    pub url: Option<DatabaseUrl>,
}

/// A connection URL, which may hold a password: shown only redacted, in `Debug` as anywhere.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, for the composition root to connect with; never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its password, for messages.
    pub fn redacted(&self) -> String {
        if self.is_sqlite() {
            return self.0.clone();
        }
        crate::store::redacted(&self.0)
    }

    fn is_sqlite(&self) -> bool {
        matches!(self.0.as_str(), "sqlite:" | "sqlite://")
    }

    fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Which backend a configuration names, and where its store is.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// The SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(DatabaseUrl),
}

impl StoreLocation {
    /// Where the store is, for messages (a URL without its password).
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => path.display().to_string(),
            StoreLocation::Postgres(url) => url.redacted(),
        }
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match &self.url {
            None => Ok(()),
            Some(u) if u.is_sqlite() || u.is_postgres() => Ok(()),
            // The value is not repeated: it may hold a password.
            Some(_) => Err(ConfigError(
                "database.url must be `sqlite:` (the SQLite file in data_dir, also the default) or a \
                 PostgreSQL URL `postgres://user@host:port/database`"
                    .into(),
            )),
        }
    }

    /// The backend and store this configuration names; `data_dir` holds the SQLite file.
    pub(super) fn location(&self, sqlite_file: PathBuf) -> StoreLocation {
        match &self.url {
            Some(u) if u.is_postgres() => StoreLocation::Postgres(u.clone()),
            _ => StoreLocation::Sqlite(sqlite_file),
        }
    }
}
