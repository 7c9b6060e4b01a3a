//! The one source of wall-clock time.
//!
//! Every expiry, lockout, TOTP step and audit timestamp reads `Clock::now`, so a test can move time
//! forward with `advance` instead of sleeping. Production code never calls `OffsetDateTime::now_utc`
//! directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// System time plus an offset that only tests move.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> OffsetDateTime {
        // The one wall-clock read of the vault (clippy.toml refuses it everywhere else).
        #[allow(clippy::disallowed_methods)]
        let wall = OffsetDateTime::now_utc();
        wall + time::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Unix seconds, the unit stored in the database.
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Moves this clock (and every clone of it) forward. Meant for tests and demo scripts.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// RFC 3339 in UTC, the only time format the API speaks.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn rfc3339_unix(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(rfc3339)
        .unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}
