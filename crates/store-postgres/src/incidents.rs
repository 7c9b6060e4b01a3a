//! Incidents: their steps, timeline, close signatures and captured evidence; credential versions
//! marked compromised; posts the publication watch has reported.

use async_trait::async_trait;
use mediavault_store::Result;
use mediavault_store::incidents::*;
use mediavault_store::types::{IncidentStatus, StepStatus};

use crate::{PgStore, PgTx};

macro_rules! select_incidents {
    ($tail:literal) => {
        concat!("SELECT id, account_id, playbook, title, summary, status, trigger, opened_by, opened_at, opened_ms, checkpoint, closed_at, review FROM incidents ", $tail)
    };
}

#[async_trait]
impl IncidentReads for PgStore {
    async fn incident_get(&self, id: &str) -> Result<Option<IncidentRow>> {
        Ok(sqlx::query_as(select_incidents!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn incidents_list(
        &self,
        account: Option<&str>,
        status: Option<IncidentStatus>,
    ) -> Result<Vec<IncidentRow>> {
        Ok(sqlx::query_as(select_incidents!(
            "WHERE ($1 IS NULL OR account_id = $1) AND ($2 IS NULL OR status = $2) ORDER BY opened_ms DESC, id LIMIT 1000"
        ))
        .bind(account)
        .bind(status)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn incident_steps(&self, id: &str) -> Result<Vec<StepRow>> {
        Ok(sqlx::query_as(
            "SELECT n, kind, action, title, owner_role, due_at, status, done_by, done_at_ms, note FROM incident_steps WHERE incident_id = $1 ORDER BY n",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn incident_timeline(&self, id: &str) -> Result<Vec<TimelineRow>> {
        Ok(sqlx::query_as(
            "SELECT at_ms, actor, event, step, detail FROM incident_timeline WHERE incident_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn incident_signatures(&self, id: &str) -> Result<Vec<SignatureRow>> {
        Ok(sqlx::query_as(
            "SELECT username, signed_at, review FROM incident_signatures WHERE incident_id = $1 ORDER BY signed_at, username",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn incident_evidence(&self, id: &str) -> Result<Vec<EvidenceRow>> {
        Ok(sqlx::query_as(
            "SELECT id, platform_id, content, sha256, captured_at, captured_by, deleted_at, deleted_by FROM incident_evidence WHERE incident_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn credential_compromised_up_to(&self, account: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(version) FROM credential_compromised WHERE account_id = $1",
        )
        .bind(account)
        .fetch_one(&self.reader)
        .await?)
    }
    async fn incident_open_for(&self, account: &str, playbook: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM incidents WHERE account_id = $1 AND playbook = $2 AND status = 'open' ORDER BY opened_ms DESC LIMIT 1",
        )
        .bind(account)
        .bind(playbook)
        .fetch_optional(&self.reader)
        .await?)
    }
    async fn watch_seen(&self, account: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT platform_id FROM watch_seen WHERE account_id = $1")
                .bind(account)
                .fetch_all(&self.reader)
                .await?,
        )
    }
}

#[async_trait]
impl IncidentWrites for PgTx {
    async fn incident_insert(&mut self, i: NewIncident<'_>, steps: &[NewStep]) -> Result<()> {
        sqlx::query(
            "INSERT INTO incidents (id, account_id, playbook, title, summary, trigger, opened_by, opened_at, opened_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(i.id)
        .bind(i.account)
        .bind(i.playbook)
        .bind(i.title)
        .bind(i.summary)
        .bind(i.trigger)
        .bind(i.opened_by)
        .bind(i.now)
        .bind(i.now_ms)
        .execute(self.conn())
        .await?;
        for s in steps {
            sqlx::query(
                "INSERT INTO incident_steps (incident_id, n, kind, action, title, owner_role, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(i.id)
            .bind(s.n)
            .bind(s.kind)
            .bind(s.action)
            .bind(&s.title)
            .bind(s.owner_role)
            .bind(s.due_at)
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }
    async fn incident_set_checkpoint(&mut self, id: &str, line: &str) -> Result<()> {
        sqlx::query("UPDATE incidents SET checkpoint = $1 WHERE id = $2")
            .bind(line)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn incident_step_settle(
        &mut self,
        id: &str,
        n: i64,
        status: StepStatus,
        by: &str,
        at_ms: i64,
        note: &str,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE incident_steps SET status = $1, done_by = $2, done_at_ms = $3, note = $4 WHERE incident_id = $5 AND n = $6 AND status = 'pending'",
        )
        .bind(status)
        .bind(by)
        .bind(at_ms)
        .bind(note)
        .bind(id)
        .bind(n)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    async fn incident_timeline_add(
        &mut self,
        id: &str,
        at_ms: i64,
        actor: &str,
        event: &str,
        step: Option<i64>,
        detail: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO incident_timeline (incident_id, at_ms, actor, event, step, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(at_ms)
        .bind(actor)
        .bind(event)
        .bind(step)
        .bind(detail)
        .execute(self.conn())
        .await?;
        Ok(())
    }
    async fn incident_sign(
        &mut self,
        id: &str,
        username: &str,
        now: i64,
        review: &str,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO incident_signatures (incident_id, username, signed_at, review) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(username)
        .bind(now)
        .bind(review)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    async fn incident_signers(&mut self, id: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM incident_signatures WHERE incident_id = $1")
                .bind(id)
                .fetch_one(self.conn())
                .await?,
        )
    }
    async fn incident_is_open(&mut self, id: &str) -> Result<bool> {
        let s: Option<IncidentStatus> =
            sqlx::query_scalar("SELECT status FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(self.conn())
                .await?;
        Ok(s == Some(IncidentStatus::Open))
    }
    async fn incident_close(&mut self, id: &str, now: i64, review: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE incidents SET status = 'closed', closed_at = $1, review = $2 WHERE id = $3 AND status = 'open'",
        )
        .bind(now)
        .bind(review)
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    #[allow(clippy::too_many_arguments)]
    async fn evidence_insert(
        &mut self,
        incident: &str,
        platform_id: &str,
        content: &str,
        sha256: &str,
        now: i64,
        by: &str,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO incident_evidence (incident_id, platform_id, content, sha256, captured_at, captured_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(incident)
        .bind(platform_id)
        .bind(content)
        .bind(sha256)
        .bind(now)
        .bind(by)
        .fetch_one(self.conn())
        .await?)
    }
    async fn evidence_mark_deleted(
        &mut self,
        incident: &str,
        platform_id: &str,
        by: &str,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE incident_evidence SET deleted_at = $1, deleted_by = $2 WHERE incident_id = $3 AND platform_id = $4 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(by)
        .bind(incident)
        .bind(platform_id)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    async fn credential_mark_compromised(
        &mut self,
        account: &str,
        incident: &str,
        now: i64,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO credential_compromised (account_id, version, incident_id, marked_at)
             SELECT id, current_version, $1, $2 FROM accounts WHERE id = $3 RETURNING version",
        )
        .bind(incident)
        .bind(now)
        .bind(account)
        .fetch_one(self.conn())
        .await?)
    }
    async fn credential_is_compromised(&mut self, account: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credential_compromised c JOIN accounts a ON a.id = c.account_id
             WHERE c.account_id = $1 AND a.current_version <= c.version",
        )
        .bind(account)
        .fetch_one(self.conn())
        .await?;
        Ok(n > 0)
    }
    async fn watch_seen_add(&mut self, account: &str, platform_id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO watch_seen (account_id, platform_id, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(account)
        .bind(platform_id)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
