//! Webhook notifications (generic JSON, WeCom robot, DingTalk robot). Channels come from config
//! only. Delivery is best effort and off the request path: a notice is never a substitute for the
//! audit record, which is written first and fails closed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::config::{NotifyChannel, NotifyKind};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Notice {
    pub event: String,
    pub account: String,
    pub summary: String,
    pub checkout_id: Option<String>,
}

#[derive(Clone)]
pub struct Notifier {
    channels: Arc<Vec<NotifyChannel>>,
    client: reqwest::Client,
}

impl Notifier {
    pub fn new(channels: Vec<NotifyChannel>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            channels: Arc::new(channels),
            client,
        }
    }

    /// The body each kind of robot expects.
    pub fn body(kind: NotifyKind, n: &Notice) -> serde_json::Value {
        let text = format!("【mediavault】{}", n.summary);
        match kind {
            NotifyKind::Generic => {
                json!({ "source": "mediavault", "event": n.event, "account": n.account, "checkout_id": n.checkout_id, "summary": n.summary })
            }
            NotifyKind::Wecom | NotifyKind::Dingtalk => {
                json!({ "msgtype": "text", "text": { "content": text } })
            }
        }
    }

    pub fn send(&self, notice: Notice) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for ch in self.channels.iter() {
            let body = Self::body(ch.kind, &notice);
            let client = self.client.clone();
            let url = ch.url.clone();
            let name = ch.name.clone();
            rt.spawn(async move {
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(channel = %name, status = %r.status(), "notification refused"),
                    Err(e) => tracing::warn!(channel = %name, error = %e.without_url(), "notification failed"),
                }
            });
        }
    }
}
