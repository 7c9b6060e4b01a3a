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

use super::types::{MediaKind, PostStatus};
use super::{Result, Store, Tx};

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

macro_rules! select_posts {
    ($tail:literal) => {
        concat!("SELECT id, checkout_id, account_id, platform, operator, department, client_id, content_sha256, live_sha256, approvals, status, media_id, publish_id, article_id, article_url, status_id, error, created_at, updated_at FROM posts ", $tail)
    };
}

impl Store {
    pub async fn post_get(&self, id: &str) -> Result<Option<PostRow>> {
        Ok(sqlx::query_as(select_posts!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// Evidence records of an account created at or after `since` (unix seconds), oldest first.
    pub async fn posts_for_account(&self, account: &str, since: i64) -> Result<Vec<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE account_id = ? AND created_at >= ? ORDER BY created_at, id"
        ))
        .bind(account)
        .bind(since)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Evidence records, newest first, optionally of one account and since a time.
    pub async fn posts_list(
        &self,
        account: Option<&str>,
        since: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE (?1 IS NULL OR account_id = ?1) AND (?2 IS NULL OR created_at >= ?2)
             ORDER BY created_at DESC, id DESC LIMIT ?3"
        ))
        .bind(account)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    pub async fn posts_of_checkout(&self, checkout: &str) -> Result<Vec<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE checkout_id = ? ORDER BY created_at, id"
        ))
        .bind(checkout)
        .fetch_all(&self.reader)
        .await?)
    }

    /// The record behind a published WeChat article.
    pub async fn post_by_wechat_article(
        &self,
        account: &str,
        article_id: &str,
    ) -> Result<Option<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE account_id = ? AND platform = 'wechat' AND article_id = ?"
        ))
        .bind(account)
        .bind(article_id)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// The record behind a WeChat publish job.
    pub async fn post_by_wechat_publish(
        &self,
        account: &str,
        publish_id: &str,
    ) -> Result<Option<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE account_id = ? AND platform = 'wechat' AND publish_id = ?"
        ))
        .bind(account)
        .bind(publish_id)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// The record behind a Weibo status.
    pub async fn post_by_weibo_status(
        &self,
        account: &str,
        status_id: &str,
    ) -> Result<Option<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE account_id = ? AND platform = 'weibo' AND status_id = ?"
        ))
        .bind(account)
        .bind(status_id)
        .fetch_optional(&self.reader)
        .await?)
    }

    pub async fn checkout_content(&self, checkout: &str) -> Result<Option<ContentRow>> {
        Ok(sqlx::query_as(
            "SELECT checkout_id, content_sha256, sealed, created_at FROM checkout_content WHERE checkout_id = ?",
        )
        .bind(checkout)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// Whether a checkout carries a post for review. Fixed once the checkout exists (its content
    /// is written in the same change), so a token's grant may remember it.
    pub async fn checkout_has_content(&self, checkout: &str) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM checkout_content WHERE checkout_id = ?)",
        )
        .bind(checkout)
        .fetch_one(&self.reader)
        .await?)
    }

    /// The accounts a checkout may publish to (empty for a checkout from before 0005: then only
    /// its own account).
    pub async fn checkout_targets(&self, checkout: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT account_id FROM checkout_targets WHERE checkout_id = ? ORDER BY account_id",
        )
        .bind(checkout)
        .fetch_all(&self.reader)
        .await?)
    }

    /// What the platform of `account` created under a checkout.
    pub async fn checkout_media(&self, checkout: &str, account: &str) -> Result<Vec<MediaRow>> {
        Ok(sqlx::query_as(
            "SELECT checkout_id, account_id, kind, platform_id, sha256, created_at, used_at FROM checkout_media
             WHERE checkout_id = ? AND account_id = ? ORDER BY created_at, platform_id",
        )
        .bind(checkout)
        .bind(account)
        .fetch_all(&self.reader)
        .await?)
    }
}

impl Tx {
    pub async fn checkout_content_insert(
        &mut self,
        checkout: &str,
        content_sha256: &str,
        sealed: &[u8],
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkout_content (checkout_id, content_sha256, sealed, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(checkout)
        .bind(content_sha256)
        .bind(sealed)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn checkout_target_insert(&mut self, checkout: &str, account: &str) -> Result<()> {
        sqlx::query("INSERT INTO checkout_targets (checkout_id, account_id) VALUES (?, ?)")
            .bind(checkout)
            .bind(account)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Remembers something the platform created under a checkout.
    pub async fn checkout_media_insert(&mut self, m: &MediaRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkout_media (checkout_id, account_id, kind, platform_id, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.checkout_id)
        .bind(&m.account_id)
        .bind(m.kind)
        .bind(&m.platform_id)
        .bind(&m.sha256)
        .bind(m.created_at)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Marks a draft of this checkout as submitted, once. False if it is not this checkout's or
    /// was already used.
    pub async fn checkout_media_use(
        &mut self,
        checkout: &str,
        account: &str,
        kind: MediaKind,
        platform_id: &str,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE checkout_media SET used_at = ?5
             WHERE checkout_id = ?1 AND account_id = ?2 AND kind = ?3 AND platform_id = ?4 AND used_at IS NULL",
        )
        .bind(checkout)
        .bind(account)
        .bind(kind)
        .bind(platform_id)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives a used draft back (its publish failed), so the approved post can be sent again.
    pub async fn checkout_media_release(
        &mut self,
        checkout: &str,
        account: &str,
        kind: MediaKind,
        platform_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE checkout_media SET used_at = NULL
             WHERE checkout_id = ? AND account_id = ? AND kind = ? AND platform_id = ?",
        )
        .bind(checkout)
        .bind(account)
        .bind(kind)
        .bind(platform_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Inserts a record in status `sending`. False if this checkout already has a post on this
    /// account that did not fail (an approved post goes out once per account).
    pub async fn post_insert(&mut self, p: NewPost<'_>) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO posts (id, checkout_id, account_id, platform, operator, department, client_id, content_sha256, live_sha256, approvals, status, media_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'sending', ?11, ?12, ?12)
             ON CONFLICT DO NOTHING",
        )
        .bind(p.id)
        .bind(p.checkout_id)
        .bind(p.account_id)
        .bind(p.platform)
        .bind(p.operator)
        .bind(p.department)
        .bind(p.client_id)
        .bind(p.content_sha256)
        .bind(p.live_sha256)
        .bind(p.approvals)
        .bind(p.media_id)
        .bind(p.now)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Moves a record on with what the platform answered; ids already known are kept.
    pub async fn post_update(
        &mut self,
        id: &str,
        status: PostStatus,
        u: &PostUpdate,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE posts SET status = ?2,
                publish_id = COALESCE(?3, publish_id), article_id = COALESCE(?4, article_id),
                article_url = COALESCE(?5, article_url), status_id = COALESCE(?6, status_id),
                error = COALESCE(?7, error), updated_at = ?8
             WHERE id = ?1",
        )
        .bind(id)
        .bind(status)
        .bind(&u.publish_id)
        .bind(&u.article_id)
        .bind(&u.article_url)
        .bind(&u.status_id)
        .bind(&u.error)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
