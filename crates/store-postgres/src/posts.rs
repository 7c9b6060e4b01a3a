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

use async_trait::async_trait;
use mediavault_store::Result;
use mediavault_store::posts::*;
use mediavault_store::types::{MediaKind, PostStatus};

use crate::{PgStore, PgTx};

macro_rules! select_posts {
    ($tail:literal) => {
        concat!("SELECT id, checkout_id, account_id, platform, operator, department, client_id, content_sha256, live_sha256, approvals, status, media_id, publish_id, article_id, article_url, status_id, error, created_at, updated_at FROM posts ", $tail)
    };
}

#[async_trait]
impl PostReads for PgStore {
    async fn post_get(&self, id: &str) -> Result<Option<PostRow>> {
        Ok(sqlx::query_as(select_posts!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn posts_for_account(&self, account: &str, since: i64) -> Result<Vec<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE account_id = $1 AND created_at >= $2 ORDER BY created_at, id"
        ))
        .bind(account)
        .bind(since)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn posts_list(
        &self,
        account: Option<&str>,
        since: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE ($1 IS NULL OR account_id = $1) AND ($2 IS NULL OR created_at >= $2)
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(account)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn posts_of_checkout(&self, checkout: &str) -> Result<Vec<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE checkout_id = $1 ORDER BY created_at, id"
        ))
        .bind(checkout)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn post_by_wechat_article(
        &self,
        account: &str,
        article_id: &str,
    ) -> Result<Option<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE account_id = $1 AND platform = 'wechat' AND article_id = $2"
        ))
        .bind(account)
        .bind(article_id)
        .fetch_optional(&self.reader)
        .await?)
    }
    async fn post_by_wechat_publish(
        &self,
        account: &str,
        publish_id: &str,
    ) -> Result<Option<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE account_id = $1 AND platform = 'wechat' AND publish_id = $2"
        ))
        .bind(account)
        .bind(publish_id)
        .fetch_optional(&self.reader)
        .await?)
    }
    async fn post_by_weibo_status(
        &self,
        account: &str,
        status_id: &str,
    ) -> Result<Option<PostRow>> {
        Ok(sqlx::query_as(select_posts!(
            "WHERE account_id = $1 AND platform = 'weibo' AND status_id = $2"
        ))
        .bind(account)
        .bind(status_id)
        .fetch_optional(&self.reader)
        .await?)
    }
    async fn checkout_content(&self, checkout: &str) -> Result<Option<ContentRow>> {
        Ok(sqlx::query_as(
            "SELECT checkout_id, content_sha256, sealed, created_at FROM checkout_content WHERE checkout_id = $1",
        )
        .bind(checkout)
        .fetch_optional(&self.reader)
        .await?)
    }
    async fn checkout_has_content(&self, checkout: &str) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM checkout_content WHERE checkout_id = $1)",
        )
        .bind(checkout)
        .fetch_one(&self.reader)
        .await?)
    }
    async fn checkout_targets(&self, checkout: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT account_id FROM checkout_targets WHERE checkout_id = $1 ORDER BY account_id",
        )
        .bind(checkout)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn checkout_media(&self, checkout: &str, account: &str) -> Result<Vec<MediaRow>> {
        Ok(sqlx::query_as(
            "SELECT checkout_id, account_id, kind, platform_id, sha256, created_at, used_at FROM checkout_media
             WHERE checkout_id = $1 AND account_id = $2 ORDER BY created_at, platform_id",
        )
        .bind(checkout)
        .bind(account)
        .fetch_all(&self.reader)
        .await?)
    }
}

#[async_trait]
impl PostWrites for PgTx {
    async fn checkout_content_insert(
        &mut self,
        checkout: &str,
        content_sha256: &str,
        sealed: &[u8],
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkout_content (checkout_id, content_sha256, sealed, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(checkout)
        .bind(content_sha256)
        .bind(sealed)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }
    async fn checkout_target_insert(&mut self, checkout: &str, account: &str) -> Result<()> {
        sqlx::query("INSERT INTO checkout_targets (checkout_id, account_id) VALUES ($1, $2)")
            .bind(checkout)
            .bind(account)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn checkout_media_insert(&mut self, m: &MediaRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkout_media (checkout_id, account_id, kind, platform_id, sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
    async fn checkout_media_use(
        &mut self,
        checkout: &str,
        account: &str,
        kind: MediaKind,
        platform_id: &str,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE checkout_media SET used_at = $5
             WHERE checkout_id = $1 AND account_id = $2 AND kind = $3 AND platform_id = $4 AND used_at IS NULL",
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
    async fn checkout_media_release(
        &mut self,
        checkout: &str,
        account: &str,
        kind: MediaKind,
        platform_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE checkout_media SET used_at = NULL
             WHERE checkout_id = $1 AND account_id = $2 AND kind = $3 AND platform_id = $4",
        )
        .bind(checkout)
        .bind(account)
        .bind(kind)
        .bind(platform_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }
    async fn posts_window(&mut self, account: &str, since: i64) -> Result<(i64, Option<i64>)> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM posts WHERE account_id = $1 AND created_at >= $2",
        )
        .bind(account)
        .bind(since)
        .fetch_one(self.conn())
        .await?)
    }
    async fn post_insert(&mut self, p: NewPost<'_>) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO posts (id, checkout_id, account_id, platform, operator, department, client_id, content_sha256, live_sha256, approvals, status, media_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'sending', $11, $12, $12)
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
    async fn post_update(
        &mut self,
        id: &str,
        status: PostStatus,
        u: &PostUpdate,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE posts SET status = $2,
                publish_id = COALESCE($3, publish_id), article_id = COALESCE($4, article_id),
                article_url = COALESCE($5, article_url), status_id = COALESCE($6, status_id),
                error = COALESCE($7, error), updated_at = $8
             WHERE id = $1",
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
