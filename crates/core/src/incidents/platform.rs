//! The platform calls the vault makes on its own behalf for an incident (fetching a post as
//! evidence, deleting posts): each recorded in the audit log before it is sent, then forwarded
//! through the broker with the account's current credential.

use std::sync::Arc;

use crate::platforms::Method;
use bytes::Bytes;
use serde_json::{Value, json};

use super::Incidents;
use crate::accounts::Platform;
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::platforms::broker::ApiRequest;

impl Incidents {
    /// Records, durably and before it is sent, a call the vault itself makes to a platform.
    pub(super) async fn record_send(
        &self,
        actor: &Actor,
        account: &str,
        incident: &str,
        call: &str,
    ) -> Result<()> {
        let mut entry = actor.entry("platform.send", account);
        entry.detail.insert("incident_id".into(), incident.into());
        entry.detail.insert("call".into(), call.into());
        self.audit.record(entry).await?;
        Ok(())
    }

    /// One platform call the vault makes on its own behalf (evidence, deletion), through the
    /// broker with the account's current credential. The caller has recorded it already.
    pub(super) async fn platform_call(
        &self,
        account: &str,
        method: Method,
        path: &str,
        query: &str,
        body: Value,
        form: bool,
    ) -> Result<Value> {
        let (row, cred) = self.accounts.current_credential(account).await?;
        let (bytes, ct) = if method == Method::GET {
            (Bytes::new(), None)
        } else if form {
            let s = body
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join("&")
                })
                .unwrap_or_default();
            (Bytes::from(s), Some("application/x-www-form-urlencoded"))
        } else {
            (Bytes::from(body.to_string()), Some("application/json"))
        };
        let broker = Arc::clone(&self.broker);
        let answer = broker
            .forward(
                &row.id,
                row.platform,
                &cred,
                ApiRequest {
                    method,
                    path,
                    query,
                    body: bytes,
                    content_type: ct,
                },
            )
            .await
            .map_err(Error::from_platform)?;
        if let Some(e) = answer.error(row.platform.as_str()) {
            return Err(Error::from_platform(e));
        }
        Ok(serde_json::from_slice(&answer.body).unwrap_or(Value::Null))
    }

    /// Fetches the post as the platform has it now and keeps it as evidence.
    pub(crate) async fn fetch_post(&self, account: &str, post: &str) -> Result<Value> {
        let row = self.accounts.row(account).await?;
        match row.platform {
            Platform::Wechat => {
                self.platform_call(
                    account,
                    Method::POST,
                    "/cgi-bin/freepublish/getarticle",
                    "",
                    json!({ "article_id": post }),
                    false,
                )
                .await
            }
            Platform::Weibo => {
                if !post.chars().all(|c| c.is_ascii_digit()) {
                    return Err(Error::invalid("post", "a Weibo status id is a number"));
                }
                self.platform_call(
                    account,
                    Method::GET,
                    "/2/statuses/show.json",
                    &format!("id={post}"),
                    Value::Null,
                    false,
                )
                .await
            }
            Platform::Generic => Err(Error::invalid(
                "account",
                "generic accounts have no platform API",
            )),
        }
    }
}
