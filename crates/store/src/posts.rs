//! Reviewed publishing: the sealed post a checkout carries, the accounts it targets, what the
//! platforms created under it, and the evidence record of every post sent through the vault.
//!
//! Read API for other services (the publication watch compares what is live on an account with
//! these records):
//! - [`Store::posts_for_account`]: every record of an account since a time;
//! - [`Store::post_by_wechat_article`], [`Store::post_by_wechat_publish`],
//!   [`Store::post_by_weibo_status`]: the record behind a platform id;
//! - [`PostRow::live_sha256`]: SHA-256 (hex) of what the platform should show: for WeChat the
//!   article's `content` HTML as it was drafted, for Weibo the status text.

use crate::Result;
use crate::types::{MediaKind, PostStatus};
use async_trait::async_trait;

/// One evidence record: who published what, approved by whom, where it went.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PostRow {
    pub id: String,
    pub checkout_id: String,
    pub account_id: String,
    /// `wechat` or `weibo`.
    pub platform: String,
    pub operator: String,
    pub department: Option<String>,
    pub client_id: String,
    /// Digest of the approved post (canonical content JSON); None for a digest-bound checkout.
    pub content_sha256: Option<String>,
    /// Digest of what the platform should show (WeChat article HTML, Weibo status text).
    pub live_sha256: String,
    /// JSON `[{"approver": .., "at": unix}]`, as the checkout's approvals stood when it was sent.
    pub approvals: String,
    pub status: PostStatus,
    /// WeChat: the draft's media_id.
    pub media_id: Option<String>,
    /// WeChat: `freepublish/submit`'s publish_id.
    pub publish_id: Option<String>,
    /// WeChat: the published article's article_id (from `freepublish/get`).
    pub article_id: Option<String>,
    pub article_url: Option<String>,
    /// Weibo: the status id (`idstr`).
    pub status_id: Option<String>,
    /// The platform's refusal, for a failed post (code and message, never a secret).
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A new evidence record, written (status `sending`) before the platform is called.
pub struct NewPost<'a> {
    pub id: &'a str,
    pub checkout_id: &'a str,
    pub account_id: &'a str,
    pub platform: &'a str,
    pub operator: &'a str,
    pub department: Option<&'a str>,
    pub client_id: &'a str,
    pub content_sha256: Option<&'a str>,
    pub live_sha256: &'a str,
    pub approvals: &'a str,
    pub media_id: Option<&'a str>,
    pub now: i64,
}

/// What the platform's answer adds to a record.
#[derive(Debug, Default, Clone)]
pub struct PostUpdate {
    pub publish_id: Option<String>,
    pub article_id: Option<String>,
    pub article_url: Option<String>,
    pub status_id: Option<String>,
    pub error: Option<String>,
}

/// The sealed post of a checkout.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContentRow {
    pub checkout_id: String,
    pub content_sha256: String,
    pub sealed: Vec<u8>,
    pub created_at: i64,
}

/// Something a platform created under a checkout.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MediaRow {
    pub checkout_id: String,
    pub account_id: String,
    pub kind: MediaKind,
    pub platform_id: String,
    /// The image's digest, or for a draft the digest of its article's content HTML.
    pub sha256: String,
    pub created_at: i64,
    pub used_at: Option<i64>,
}

#[async_trait]
pub trait PostReads: Send + Sync {
    async fn post_get(&self, id: &str) -> Result<Option<PostRow>>;
    /// Evidence records of an account created at or after `since` (unix seconds), oldest first.
    async fn posts_for_account(&self, account: &str, since: i64) -> Result<Vec<PostRow>>;
    /// Evidence records, newest first, optionally of one account and since a time.
    async fn posts_list(
        &self,
        account: Option<&str>,
        since: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PostRow>>;
    async fn posts_of_checkout(&self, checkout: &str) -> Result<Vec<PostRow>>;
    /// The record behind a published WeChat article.
    async fn post_by_wechat_article(
        &self,
        account: &str,
        article_id: &str,
    ) -> Result<Option<PostRow>>;
    /// The record behind a WeChat publish job.
    async fn post_by_wechat_publish(
        &self,
        account: &str,
        publish_id: &str,
    ) -> Result<Option<PostRow>>;
    /// The record behind a Weibo status.
    async fn post_by_weibo_status(&self, account: &str, status_id: &str)
    -> Result<Option<PostRow>>;
    async fn checkout_content(&self, checkout: &str) -> Result<Option<ContentRow>>;
    /// Whether a checkout carries a post for review. Fixed once the checkout exists (its content
    /// is written in the same change), so a token's grant may remember it.
    async fn checkout_has_content(&self, checkout: &str) -> Result<bool>;
    /// The accounts a checkout may publish to (empty for a checkout from before 0005: then only
    /// its own account).
    async fn checkout_targets(&self, checkout: &str) -> Result<Vec<String>>;
    /// What the platform of `account` created under a checkout.
    async fn checkout_media(&self, checkout: &str, account: &str) -> Result<Vec<MediaRow>>;
}

#[async_trait]
pub trait PostWrites: Send {
    async fn checkout_content_insert(
        &mut self,
        checkout: &str,
        content_sha256: &str,
        sealed: &[u8],
        now: i64,
    ) -> Result<()>;
    async fn checkout_target_insert(&mut self, checkout: &str, account: &str) -> Result<()>;
    /// Remembers something the platform created under a checkout.
    async fn checkout_media_insert(&mut self, m: &MediaRow) -> Result<()>;
    /// Marks a draft of this checkout as submitted, once. False if it is not this checkout's or
    /// was already used.
    async fn checkout_media_use(
        &mut self,
        checkout: &str,
        account: &str,
        kind: MediaKind,
        platform_id: &str,
        now: i64,
    ) -> Result<bool>;
    /// Gives a used draft back (its publish failed), so the approved post can be sent again.
    async fn checkout_media_release(
        &mut self,
        checkout: &str,
        account: &str,
        kind: MediaKind,
        platform_id: &str,
    ) -> Result<()>;
    /// Inserts a record in status `sending`. False if this checkout already has a post on this
    /// account that did not fail (an approved post goes out once per account).
    /// The posts of `account` recorded at or after `since`: how many, and when the oldest of them
    /// was. Read inside the write transaction, so two publishes cannot both take the last slot.
    async fn posts_window(&mut self, account: &str, since: i64) -> Result<(i64, Option<i64>)>;
    async fn post_insert(&mut self, p: NewPost<'_>) -> Result<bool>;
    /// Moves a record on with what the platform answered; ids already known are kept.
    async fn post_update(
        &mut self,
        id: &str,
        status: PostStatus,
        u: &PostUpdate,
        now: i64,
    ) -> Result<bool>;
}
