//! Around a proxied call: what is written before it is sent (the `platform.send` entry, and for
//! a publish the evidence record, status `sending`, in the same commit) and what is written from
//! the platform's answer (the ids of uploads and drafts this checkout created; the publish's
//! platform ids and final status). The second half runs on the call's own task, so it happens
//! even if the tool hangs up.

use serde_json::{Value, json};

use super::gate::Plan;
use super::{ProxyCall, Publishing};
use crate::accounts::Platform;
use crate::actor::Actor;
use crate::audit::AuditWriter;
use crate::checkout::TokenGrant;
use crate::clock::{Clock, rfc3339_unix};
use crate::error::{Conflict, Error, Result};
use crate::platforms::PlatformResponse;
use crate::store::AppendRow;
use crate::store::posts::{MediaRow, NewPost, PostUpdate};
use crate::store::types::{MediaKind, PostStatus};

/// What to do with the platform's answer.
#[derive(Debug)]
pub(super) enum Follow {
    Nothing,
    /// Remember the URL (inline image) or media_id (cover, draft) the platform returns.
    Media {
        kind: MediaKind,
        sha256: String,
    },
    /// Complete the evidence record `post_id`; `draft` is given back if the publish fails.
    Post {
        post_id: String,
        draft: Option<String>,
    },
    /// A `freepublish/get` of this checkout's post: its final status and article id.
    PublishStatus {
        post_id: String,
    },
}

fn new_post_id() -> Result<String> {
    let mut raw = [0u8; 12];
    crate::crypto::random_bytes(&mut raw)?;
    Ok(format!("post_{}", hex::encode(raw)))
}

impl Publishing {
    /// Writes what must be durable before the call leaves; answers what to do after.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn before_send(
        &self,
        actor: &Actor,
        grant: &TokenGrant,
        call: &ProxyCall,
        platform: Platform,
        plan: Plan,
        content_sha: Option<String>,
        media: &[MediaRow],
        payload_sha: &str,
    ) -> Result<Follow> {
        let account = call.account.as_str();
        let entry = actor.entry("platform.send", account);
        let (live, draft) = match plan {
            Plan::Plain => {
                self.audit.record(entry).await?;
                return Ok(Follow::Nothing);
            }
            Plan::Upload { kind, sha256 } => {
                self.audit.record(entry).await?;
                return Ok(Follow::Media { kind, sha256 });
            }
            Plan::Draft { live_sha256 } => {
                self.audit.record(entry).await?;
                return Ok(Follow::Media {
                    kind: MediaKind::Draft,
                    sha256: live_sha256,
                });
            }
            Plan::PublishStatus { publish_id } => {
                let post = self
                    .store
                    .post_by_wechat_publish(account, &publish_id)
                    .await?
                    .filter(|p| p.checkout_id == grant.checkout_id);
                if post.is_none() && content_sha.is_some() {
                    actor.detail("refused", "this publish_id is not this checkout's");
                    return Err(Error::ContentNotApproved);
                }
                self.audit.record(entry).await?;
                return Ok(
                    post.map_or(Follow::Nothing, |p| Follow::PublishStatus { post_id: p.id })
                );
            }
            Plan::Submit {
                media_id,
                live_sha256,
            } => {
                let known = media
                    .iter()
                    .find(|m| m.kind == MediaKind::Draft && m.platform_id == media_id);
                let live = match known {
                    Some(m) if live_sha256.is_empty() => m.sha256.clone(),
                    _ if live_sha256.is_empty() => payload_sha.to_owned(),
                    _ => live_sha256,
                };
                (live, known.map(|_| media_id))
            }
            Plan::WeiboStatus { live_sha256 } => (live_sha256, None),
        };
        // A publish: the evidence record commits with the send entry.
        let operator = self.store.user_by_name(&grant.operator).await?;
        let department = operator.and_then(|u| u.department);
        let mut approvals: Vec<Value> = self
            .store
            .approvals_of(&grant.checkout_id)
            .await?
            .into_iter()
            .filter(|a| a.decision == "approve")
            .map(|a| json!({"approver": a.approver, "at": rfc3339_unix(a.at)}))
            .collect();
        // A checkout an admin released alone: the record says so, with who and why.
        if let Some(b) = self.store.break_glass_get(&grant.checkout_id).await? {
            approvals.push(json!({
                "approver": b.released_by,
                "at": rfc3339_unix(b.released_at),
                "break_glass": true,
                "reason": b.reason,
            }));
        }
        let approvals = Value::Array(approvals).to_string();
        let post_id = new_post_id()?;
        let (pid, cid, acct, op, client) = (
            post_id.clone(),
            grant.checkout_id.clone(),
            account.to_owned(),
            grant.operator.clone(),
            grant.client_id.clone(),
        );
        let used = draft.clone();
        let now = self.clock.unix();
        let platform_name = platform.as_str();
        // The account's own budget, mirroring the platform's, so the vault refuses before the
        // platform penalises the app.
        let budgets = self
            .policies
            .current()
            .for_account(account)
            .map(|p| p.post_budgets().to_vec())
            .unwrap_or_default();
        actor.detail("post_id", post_id.clone());
        self.audit
            .commit(entry, move |tx| {
                Box::pin(async move {
                    if let Some(d) = &used
                        && !tx
                            .checkout_media_use(&cid, &acct, MediaKind::Draft, d, now)
                            .await?
                    {
                        return Err(Error::ContentNotApproved);
                    }
                    for b in &budgets {
                        let window = b.per.seconds();
                        let (posts, oldest) = tx.posts_window(&acct, now - window + 1).await?;
                        if posts >= i64::from(b.limit) {
                            let free_at = oldest.unwrap_or(now) + window;
                            return Err(Error::PublishingBudget {
                                account: acct.clone(),
                                limit: b.limit,
                                per: b.per.as_str(),
                                retry_after: u64::try_from(free_at - now).unwrap_or(1).max(1),
                            });
                        }
                    }
                    let inserted = tx
                        .post_insert(NewPost {
                            id: &pid,
                            checkout_id: &cid,
                            account_id: &acct,
                            platform: platform_name,
                            operator: &op,
                            department: department.as_deref(),
                            client_id: &client,
                            content_sha256: content_sha.as_deref(),
                            live_sha256: &live,
                            approvals: &approvals,
                            media_id: used.as_deref(),
                            now,
                        })
                        .await?;
                    if !inserted {
                        return Err(Error::conflict(
                            Conflict::AlreadyExists,
                            format!("this checkout's post already went out on {acct}"),
                        ));
                    }
                    tx.note("post_id", pid.as_str());
                    Ok(())
                })
            })
            .await?;
        Ok(Follow::Post { post_id, draft })
    }
}

fn body_json(answer: &PlatformResponse) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
}

fn id_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Records what the platform's answer means for this checkout. `answer` is None when the call
/// got no answer: a publish then stays `sending` (nobody knows whether it went out; the
/// publication watch settles it).
#[allow(clippy::too_many_arguments)]
pub(super) async fn after_send(
    audit: &AuditWriter,
    clock: &Clock,
    actor: &Actor,
    checkout: &str,
    account: &str,
    platform: Platform,
    follow: Follow,
    answer: Option<&PlatformResponse>,
) -> Result<()> {
    let Some(answer) = answer else {
        return Ok(());
    };
    let now = clock.unix();
    let body = body_json(answer);
    let failed = answer.is_error().then(|| {
        format!(
            "{} {}",
            answer.errcode.unwrap_or_default(),
            answer.errmsg.clone().unwrap_or_default()
        )
    });
    let (cid, acct) = (checkout.to_owned(), account.to_owned());
    match follow {
        Follow::Nothing => Ok(()),
        Follow::Media { kind, sha256 } => {
            let key = if kind == MediaKind::ImageUrl {
                "url"
            } else {
                "media_id"
            };
            let (Some(id), None) = (id_field(&body, key), failed) else {
                return Ok(());
            };
            let row = MediaRow {
                checkout_id: cid,
                account_id: acct,
                kind,
                platform_id: id,
                sha256,
                created_at: now,
                used_at: None,
            };
            // The media row is this request's change: the request's own `platform.call` entry
            // commits with it (one entry per request, one commit fewer before the answer). A
            // plain row, so its batch stays on the store's append path.
            actor.detail("platform_status", answer.status);
            let entry = actor
                .entry("platform.call", account)
                .detail(
                    "media_kind",
                    serde_json::to_value(row.kind).unwrap_or_default(),
                )
                .detail("platform_id", row.platform_id.as_str())
                .detail("media_sha256", row.sha256.as_str());
            audit
                .commit_row(entry, AppendRow::CheckoutMedia(row))
                .await?;
            actor.recorded();
            Ok(())
        }
        Follow::Post { post_id, draft } => {
            let (status, update) = match (&failed, platform) {
                (Some(e), _) => (
                    PostStatus::Failed,
                    PostUpdate {
                        error: Some(e.clone()),
                        ..Default::default()
                    },
                ),
                (None, Platform::Weibo) => (
                    PostStatus::Published,
                    PostUpdate {
                        status_id: id_field(&body, "idstr").or_else(|| id_field(&body, "id")),
                        ..Default::default()
                    },
                ),
                (None, _) => (
                    PostStatus::Submitted,
                    PostUpdate {
                        publish_id: id_field(&body, "publish_id"),
                        ..Default::default()
                    },
                ),
            };
            update_post(audit, actor, post_id, status, update, now, move |tx| {
                Box::pin(async move {
                    if status == PostStatus::Failed
                        && let Some(d) = draft
                    {
                        tx.checkout_media_release(&cid, &acct, MediaKind::Draft, &d)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await
        }
        Follow::PublishStatus { post_id } => {
            if failed.is_some() {
                return Ok(());
            }
            let code = body.get("publish_status").and_then(Value::as_i64);
            let (status, update) = match code {
                Some(0) => (
                    PostStatus::Published,
                    PostUpdate {
                        article_id: id_field(&body, "article_id"),
                        article_url: body
                            .pointer("/article_detail/item/0/article_url")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        ..Default::default()
                    },
                ),
                Some(1) | None => return Ok(()),
                Some(n) => (
                    PostStatus::Failed,
                    PostUpdate {
                        error: Some(format!("publish_status {n}")),
                        ..Default::default()
                    },
                ),
            };
            update_post(audit, actor, post_id, status, update, now, |_| {
                Box::pin(async { Ok(()) })
            })
            .await
        }
    }
}

/// Moves an evidence record on, with its own audit entry (`post.update`), plus `also` in the
/// same transaction.
async fn update_post<F>(
    audit: &AuditWriter,
    actor: &Actor,
    post_id: String,
    status: PostStatus,
    update: PostUpdate,
    now: i64,
    also: F,
) -> Result<()>
where
    F: for<'t> FnOnce(&'t mut crate::store::Tx) -> crate::audit::TxFuture<'t, ()> + Send + 'static,
{
    let mut entry = actor.entry("post.update", &post_id);
    entry.detail.insert("status".into(), status.as_str().into());
    for (k, v) in [
        ("publish_id", &update.publish_id),
        ("article_id", &update.article_id),
        ("status_id", &update.status_id),
    ] {
        if let Some(v) = v {
            entry.detail.insert(k.into(), v.clone().into());
        }
    }
    audit
        .commit(entry, move |tx| {
            Box::pin(async move {
                tx.post_update(&post_id, status, &update, now).await?;
                also(tx).await
            })
        })
        .await
}
