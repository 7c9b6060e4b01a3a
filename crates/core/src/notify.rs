//! Webhook notifications: generic JSON, WeCom group robot, DingTalk robot and Feishu (飞书) custom
//! bot (each of the last two with its signed mode).
//! Channels come from config only.
//!
//! A notice leaves the vault, so it is recorded in the audit log (`notify.send`, by channel name,
//! never the URL, which carries the robot's key) before the first attempt. Delivery runs on its
//! own task, so a channel that is down or never answers cannot delay or fail the action that
//! raised the notice. Each attempt has the channel's timeout; failures are retried with
//! exponential backoff; a notice that finally fails is recorded as a dead letter
//! (`notify.dead_letter`, outcome `error`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

use crate::audit::{AuditWriter, NewEntry, Outcome};
use crate::clock::Clock;
use crate::config::{NotifyChannel, NotifyKind};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Notice {
    pub event: String,
    pub account: String,
    pub summary: String,
    pub checkout_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// The person the notice is for, when it answers someone: the requester of a checkout that
    /// was decided. Group robots show it first, so the requester sees the decision is theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Notice {
    pub fn new(event: &str, account: &str, summary: String) -> Self {
        Self {
            event: event.to_owned(),
            account: account.to_owned(),
            summary,
            checkout_id: None,
            incident_id: None,
            to: None,
        }
    }
}

#[derive(Clone)]
pub struct Notifier {
    channels: Arc<Vec<NotifyChannel>>,
    client: reqwest::Client,
    audit: AuditWriter,
    clock: Clock,
    in_flight: Arc<AtomicUsize>,
}

/// Why one attempt failed; never holds the URL (a robot URL carries its key).
fn attempt_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        e.without_url().to_string()
    }
}

impl Notifier {
    pub fn new(channels: Vec<NotifyChannel>, audit: AuditWriter, clock: Clock) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self {
            channels: Arc::new(channels),
            client,
            audit,
            clock,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many deliveries are still running (attempts and backoff included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The body each kind of robot expects.
    pub fn body(kind: NotifyKind, n: &Notice) -> serde_json::Value {
        let text = match &n.to {
            Some(to) => format!("【mediavault】致 {to}：{}", n.summary),
            None => format!("【mediavault】{}", n.summary),
        };
        match kind {
            NotifyKind::Generic => {
                json!({ "source": "mediavault", "event": n.event, "account": n.account, "checkout_id": n.checkout_id, "incident_id": n.incident_id, "to": n.to, "summary": n.summary })
            }
            NotifyKind::Wecom | NotifyKind::Dingtalk => {
                json!({ "msgtype": "text", "text": { "content": text } })
            }
            NotifyKind::Feishu => json!({ "msg_type": "text", "content": { "text": text } }),
        }
    }

    /// DingTalk signed mode: `timestamp` (ms) and `sign` = base64(HMAC-SHA256(secret,
    /// "timestamp\nsecret")), URL-encoded, appended to the robot URL.
    pub fn dingtalk_signed_url(url: &str, secret: &str, timestamp_ms: i64) -> String {
        let to_sign = format!("{timestamp_ms}\n{secret}");
        let mac = crate::crypto::hmac_sha256(secret.as_bytes(), to_sign.as_bytes());
        let sign = base64::engine::general_purpose::STANDARD.encode(mac);
        let sep = if url.contains('?') { '&' } else { '?' };
        format!(
            "{url}{sep}timestamp={timestamp_ms}&sign={}",
            url_encode(&sign)
        )
    }

    /// Feishu signed mode: `timestamp` (seconds) and `sign` = base64(HMAC-SHA256 keyed with
    /// "timestamp\nsecret" over nothing), added to the body.
    pub fn feishu_sign(body: &mut serde_json::Value, secret: &str, timestamp_s: i64) {
        let key = format!("{timestamp_s}\n{secret}");
        let mac = crate::crypto::hmac_sha256(key.as_bytes(), b"");
        body["timestamp"] = json!(timestamp_s.to_string());
        body["sign"] = json!(base64::engine::general_purpose::STANDARD.encode(mac));
    }

    /// Queues the notice for every channel and returns at once.
    pub fn send(&self, notice: Notice) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for ch in self.channels.iter() {
            let me = self.clone();
            let ch = ch.clone();
            let notice = notice.clone();
            me.in_flight.fetch_add(1, Ordering::Relaxed);
            rt.spawn(async move {
                me.deliver(&ch, &notice).await;
                me.in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    fn entry(action: &str, ch: &NotifyChannel, n: &Notice, outcome: Outcome) -> NewEntry {
        let mut e = NewEntry::system(action, &format!("notify:{}", ch.name), outcome)
            .detail("event", n.event.clone())
            .detail("account", n.account.clone())
            .detail(
                "kind",
                match ch.kind {
                    NotifyKind::Generic => "generic",
                    NotifyKind::Wecom => "wecom",
                    NotifyKind::Dingtalk => "dingtalk",
                    NotifyKind::Feishu => "feishu",
                },
            );
        if let Some(id) = &n.incident_id {
            e = e.detail("incident_id", id.clone());
        }
        if let Some(id) = &n.checkout_id {
            e = e.detail("checkout_id", id.clone());
        }
        e
    }

    async fn deliver(&self, ch: &NotifyChannel, notice: &Notice) {
        // Recorded before it leaves; a notice that cannot be recorded is not sent.
        if let Err(e) = self
            .audit
            .record(Self::entry("notify.send", ch, notice, Outcome::Success))
            .await
        {
            tracing::error!(channel = %ch.name, error = %e, "notice not recorded, so not sent");
            return;
        }
        let body = Self::body(ch.kind, notice);
        let mut wait = Duration::from_millis(ch.backoff_ms);
        let mut last = String::new();
        for attempt in 1..=ch.attempts {
            match self.attempt(ch, &body).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(channel = %ch.name, attempt, error = %e, "notification attempt failed");
                    last = e;
                }
            }
            if attempt < ch.attempts {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        let dead = Self::entry("notify.dead_letter", ch, notice, Outcome::Error)
            .detail("attempts", ch.attempts)
            .detail("error", last);
        // A dead letter is what security staff must see; retried like security events.
        for i in 0..5u64 {
            match self.audit.record(dead.clone()).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(channel = %ch.name, error = %e, "dead letter not yet audited");
                    tokio::time::sleep(Duration::from_millis(200 * (i + 1))).await;
                }
            }
        }
    }

    async fn attempt(&self, ch: &NotifyChannel, body: &serde_json::Value) -> Result<(), String> {
        let url = match (&ch.kind, &ch.secret) {
            (NotifyKind::Dingtalk, Some(secret)) => {
                let ms = i64::try_from(self.clock.now().unix_timestamp_nanos() / 1_000_000)
                    .unwrap_or_default();
                Self::dingtalk_signed_url(&ch.url, secret.expose(), ms)
            }
            _ => ch.url.clone(),
        };
        // Signed afresh for each attempt: Feishu refuses a timestamp more than an hour off.
        let signed;
        let body = match (&ch.kind, &ch.secret) {
            (NotifyKind::Feishu, Some(secret)) => {
                let mut b = body.clone();
                Self::feishu_sign(&mut b, secret.expose(), self.clock.unix());
                signed = b;
                &signed
            }
            _ => body,
        };
        let r = self
            .client
            .post(&url)
            .timeout(Duration::from_secs(ch.timeout_seconds))
            .json(body)
            .send()
            .await
            .map_err(attempt_error)?;
        let status = r.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        if ch.kind == NotifyKind::Generic {
            return Ok(());
        }
        // The robots answer 200 with a code: WeCom and DingTalk `errcode`, Feishu `code` (and in
        // its older form `StatusCode`); 0 is success.
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        let key = match ch.kind {
            NotifyKind::Feishu if v.get("code").is_none() => "StatusCode",
            NotifyKind::Feishu => "code",
            _ => "errcode",
        };
        match v.get(key).and_then(serde_json::Value::as_i64) {
            None | Some(0) => Ok(()),
            Some(code) => Err(format!("robot answered {key} {code}")),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_signature_matches_the_documented_algorithm() {
        // Computed independently: base64(HMAC-SHA256("SECabc", "1700000000000\nSECabc")).
        let url = Notifier::dingtalk_signed_url(
            "https://oapi.dingtalk.com/robot/send?access_token=t",
            "SECabc",
            1_700_000_000_000,
        );
        assert!(url.starts_with(
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1700000000000&sign="
        ));
        let sign = url.rsplit("sign=").next().unwrap();
        let mac = crate::crypto::hmac_sha256(b"SECabc", b"1700000000000\nSECabc");
        let expected = url_encode(&base64::engine::general_purpose::STANDARD.encode(mac));
        assert_eq!(sign, expected);
        assert!(!sign.contains('+') && !sign.contains('/') && !sign.contains('='));
    }

    #[test]
    fn feishu_signature_matches_the_documented_algorithm() {
        // Feishu's documented example: HMAC-SHA256 keyed with "timestamp\nsecret" over an empty
        // message, base64; the timestamp travels as a string of seconds.
        let mut body = json!({"msg_type": "text", "content": {"text": "hi"}});
        Notifier::feishu_sign(&mut body, "demo-secret", 1_599_360_473);
        assert_eq!(body["timestamp"], "1599360473");
        let mac = crate::crypto::hmac_sha256(b"1599360473\ndemo-secret", b"");
        assert_eq!(
            body["sign"],
            base64::engine::general_purpose::STANDARD.encode(mac)
        );
        assert_eq!(body["content"]["text"], "hi", "the message is untouched");
    }
}
