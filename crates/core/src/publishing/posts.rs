//! The evidence of what went out: one record per post (who, which department, approved by whom
//! and when, which approved content, the platform's ids and the final status), listed for
//! auditors and admins, and exported as one packet per post (the record, its checkout and
//! approvals, and the approved content with its images) that can be handed over.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::actor::Actor;
use crate::clock::{parse_rfc3339, rfc3339_unix};
use crate::content::Post;
use crate::error::{Error, Result};
use crate::identity::Role;
use crate::store::posts::PostRow;
use crate::store::types::PostStatus;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// What `GET /posts` and the export filter on.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PostQuery {
    pub account: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// 1-1000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// An evidence record as shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PostView {
    pub post_id: String,
    pub checkout_id: String,
    pub account: String,
    pub platform: String,
    pub operator: String,
    pub department: Option<String>,
    pub client: String,
    /// `[{approver, at}]`, as recorded when the post was sent.
    pub approvals: Value,
    pub content_sha256: Option<String>,
    pub live_sha256: String,
    #[schema(schema_with = crate::schema::post_status)]
    pub status: PostStatus,
    pub media_id: Option<String>,
    pub publish_id: Option<String>,
    pub article_id: Option<String>,
    pub article_url: Option<String>,
    pub status_id: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<PostRow> for PostView {
    fn from(p: PostRow) -> Self {
        Self {
            approvals: serde_json::from_str(&p.approvals).unwrap_or(Value::Array(Vec::new())),
            post_id: p.id,
            checkout_id: p.checkout_id,
            account: p.account_id,
            platform: p.platform,
            operator: p.operator,
            department: p.department,
            client: p.client_id,
            content_sha256: p.content_sha256,
            live_sha256: p.live_sha256,
            status: p.status,
            media_id: p.media_id,
            publish_id: p.publish_id,
            article_id: p.article_id,
            article_url: p.article_url,
            status_id: p.status_id,
            error: p.error,
            created_at: rfc3339_unix(p.created_at),
            updated_at: rfc3339_unix(p.updated_at),
        }
    }
}

/// The posts service; `vault.posts()`.
#[derive(Clone)]
pub struct Posts {
    pub(crate) store: crate::store::Store,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) checkouts: crate::checkout::Checkouts,
}

impl Posts {
    async fn rows(&self, q: &PostQuery) -> Result<Vec<PostRow>> {
        let since = match q.since.as_deref() {
            None => None,
            Some(s) => Some(
                parse_rfc3339(s)
                    .ok_or_else(|| Error::invalid("since", "since must be an RFC 3339 time"))?
                    .unix_timestamp(),
            ),
        };
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("limit must be 1-{MAX_LIMIT}"),
            ));
        }
        Ok(self
            .store
            .posts_list(q.account.as_deref(), since, limit)
            .await?)
    }

    /// Evidence records, newest first: auditors and admins.
    pub async fn list(&self, actor: &Actor, q: &PostQuery) -> Result<Vec<PostView>> {
        actor.action("post.list", q.account.as_deref());
        actor.require(&[Role::Auditor, Role::Admin])?;
        Ok(self
            .rows(q)
            .await?
            .into_iter()
            .map(PostView::from)
            .collect())
    }

    pub async fn get(&self, actor: &Actor, id: &str) -> Result<PostView> {
        actor.action("post.get", Some(id));
        actor.require(&[Role::Auditor, Role::Admin])?;
        self.store
            .post_get(id)
            .await?
            .map(PostView::from)
            .ok_or_else(|| Error::NotFound(format!("post {id:?}")))
    }

    /// One packet per post, as JSON lines: the record, its checkout with the approvals, and the
    /// approved content in full (images as base64 with their digests). Recorded as an export.
    pub async fn export(&self, actor: &Actor, q: &PostQuery) -> Result<String> {
        actor.action("post.export", q.account.as_deref());
        actor.require(&[Role::Auditor, Role::Admin])?;
        let rows = self.rows(q).await?;
        let mut out = String::new();
        for p in rows {
            let checkout = self.checkouts.get(actor, &p.checkout_id).await?;
            let content = match self.store.checkout_content(&p.checkout_id).await? {
                Some(c) => {
                    self.keys.know_term_of(&c.sealed).await?;
                    let post = Post::open(&self.keys, &p.checkout_id, &c.sealed)?;
                    let images: Vec<Value> = post
                        .images
                        .iter()
                        .map(|i| {
                            json!({
                                "name": i.name,
                                "role": i.role,
                                "content_type": i.content_type,
                                "sha256": i.sha256,
                                "data_base64": STANDARD.encode(&i.data),
                            })
                        })
                        .collect();
                    json!({
                        "sha256": c.content_sha256,
                        "title": post.title,
                        "author": post.author,
                        "digest": post.digest,
                        "body": post.body,
                        "text": post.text,
                        "images": images,
                        "targets": post.targets,
                    })
                }
                None => Value::Null,
            };
            let packet = json!({
                "packet": "mediavault.post.v1",
                "post": PostView::from(p),
                "checkout": {
                    "checkout_id": checkout.checkout_id,
                    "purpose": checkout.purpose,
                    "level": checkout.level,
                    "operator": checkout.operator,
                    "client": checkout.client,
                    "requested_at": checkout.requested_at,
                    "approvals": checkout.approvals,
                },
                "content": content,
            });
            out.push_str(&packet.to_string());
            out.push('\n');
        }
        actor.action("post.export", q.account.as_deref());
        Ok(out)
    }
}
