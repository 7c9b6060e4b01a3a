//! What can go wrong talking to a platform.
//!
//! Every message here is built from platform codes, platform messages and fixed text. Nothing is
//! ever formatted from a `reqwest::Error` (its `Display` includes the URL, whose query holds the
//! access token or, for the classic token endpoint, the AppSecret), and platform messages pass
//! through `scrub` so a platform that echoes a credential back cannot leak it either.

use std::fmt;

/// Why a request never got a platform answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// DNS, TCP or TLS failed.
    Connect,
    /// No complete answer within `platforms.request_timeout_seconds`.
    Timeout,
    /// The answer was bigger than the broker accepts.
    TooLarge,
    /// Anything else below HTTP (reset connection, broken body, client setup).
    Other,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Connect => "connection failed",
            TransportKind::Timeout => "timed out",
            TransportKind::TooLarge => "answer too large",
            TransportKind::Other => "request failed",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The platform answered with an error code (WeChat `errcode`, Weibo `error_code`).
    #[error("{platform} error {code}: {message}")]
    Api {
        platform: &'static str,
        code: i64,
        message: String,
    },
    /// The platform could not be reached or did not answer in time.
    #[error("{platform} unreachable: {kind}")]
    Transport {
        platform: &'static str,
        kind: TransportKind,
    },
    /// The platform answered, but not in a shape the broker understands (e.g. a token answer
    /// without `access_token`).
    #[error("{platform} answered unexpectedly (HTTP {status}): {detail}")]
    Protocol {
        platform: &'static str,
        status: u16,
        detail: &'static str,
    },
    /// The stored credential cannot be used for this (a field is missing, or the platform has no
    /// API adapter), or the requested path is not one the broker forwards.
    #[error("{platform}: {detail}")]
    Refused {
        platform: &'static str,
        detail: &'static str,
    },
}

impl PlatformError {
    pub fn platform(&self) -> &'static str {
        match self {
            PlatformError::Api { platform, .. }
            | PlatformError::Transport { platform, .. }
            | PlatformError::Protocol { platform, .. }
            | PlatformError::Refused { platform, .. } => platform,
        }
    }

    /// The platform's own error code, when the platform gave one.
    pub fn code(&self) -> Option<i64> {
        match self {
            PlatformError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn transport(platform: &'static str, e: &reqwest::Error) -> Self {
        // Classified, never formatted: `e`'s Display names the URL and thus the token.
        let kind = if e.is_timeout() {
            TransportKind::Timeout
        } else if e.is_connect() {
            TransportKind::Connect
        } else {
            TransportKind::Other
        };
        PlatformError::Transport { platform, kind }
    }
}

/// Replaces every occurrence of each non-empty secret in `message` with `[REDACTED]`.
pub(crate) fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(s) {
            out = out.replace(s, "[REDACTED]");
        }
    }
    // Platform messages are short; a huge one is either a bug or an attack on the log.
    if out.len() > 512 {
        let mut cut = 512;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// An answer body with every occurrence of each non-empty secret replaced by `[REDACTED]`: an
/// error answer goes back to the tool as the platform sent it, except for a credential the platform
/// echoed. The secrets here are tokens and AppSecrets, whose characters never need JSON escaping,
/// so a JSON body stays JSON. Copies only when a secret is found.
pub(crate) fn scrub_body(body: bytes::Bytes, secrets: &[&str]) -> bytes::Bytes {
    let found = |s: &&str| !s.is_empty() && body.windows(s.len()).any(|w| w == s.as_bytes());
    if !secrets.iter().any(found) {
        return body;
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut out = text;
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "[REDACTED]");
    }
    bytes::Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_secrets_and_bounds_length() {
        let m = scrub("bad secret s3cr3t and token tok", &["s3cr3t", "tok", ""]);
        assert_eq!(m, "bad secret [REDACTED] and [REDACTED]en [REDACTED]");
        let long = "x".repeat(2000);
        assert!(scrub(&long, &[]).len() < 600);
    }

    #[test]
    fn scrub_body_cuts_an_echoed_token_and_leaves_other_bodies_alone() {
        let body = bytes::Bytes::from_static(
            br#"{"errcode":40001,"errmsg":"invalid credential TOKEN-abc hint"}"#,
        );
        let out = scrub_body(body, &["TOKEN-abc"]);
        assert_eq!(
            &out[..],
            br#"{"errcode":40001,"errmsg":"invalid credential [REDACTED] hint"}"#
        );
        let same = bytes::Bytes::from_static(b"{\"errcode\":45009}");
        assert_eq!(scrub_body(same.clone(), &["TOKEN-abc", ""]), same);
    }
}
