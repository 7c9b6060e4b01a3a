//! The publication watch and the early-warning rules.
//!
//! **Watch.** [`Incidents::watch_round`] lists what is live on each WeChat and Weibo account
//! (`freepublish/batchget`, `statuses/user_timeline`; each listing is recorded in the audit log
//! before it is sent) and matches it against the evidence records of every post the vault let
//! through (`posts`, issue 9). A WeChat record that has a `publish_id` but no `article_id` yet is
//! resolved with `freepublish/get`. A live post the vault has no record of is recorded once
//! (`watch.unknown_post`) and raises the `unknown_post` rules at once.
//!
//! **After publishing.** The watch also follows the vault's own recent posts (`watch.follow_days`,
//! at most `page_size` per account and round): WeChat's `freepublish/get` reports an article
//! deleted by the account's own users (`publish_status` 5) or blocked by the platform after
//! success (6); Weibo's `statuses/show` answers 20101 for a deleted status and shows a restricted
//! one's `visible.type`. The record moves to `deleted`, `blocked` or `hidden` in the same commit as
//! its `watch.post_removed` entry, which keeps the platform's answer as evidence, and every channel
//! is told.
//!
//! **Rules.** Every rule counts audit entries of one kind inside its window, per key (an account,
//! or a user for TOTP failures), and fires when the count since its last firing reaches its
//! threshold: an `alert.raised` audit entry, a notice to every channel, and with `open_playbook`
//! an incident from that playbook on the account (unless one from it is already open there).
//! [`Incidents::evaluate_rules`] runs on a schedule and right after each security event or
//! unknown post. The time of the last firing is kept in memory, so a restart may repeat an alert.

use std::collections::{HashMap, HashSet};
use std::sync::PoisonError;

use crate::platforms::Method;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Incidents, OpenIncident};
use crate::accounts::Platform;
use crate::actor::Actor;
use crate::audit::writer::unix_ms;
use crate::audit::{NewEntry, Outcome};
use crate::config::{RuleKind, WarningRule};
use crate::error::{Error, Result};
use crate::platforms::broker::ApiRequest;
use crate::store::audit::AuditRow;
use crate::store::posts::{PostRow, PostUpdate};
use crate::store::types::PostStatus;

/// A live post the vault did not publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPost {
    pub account: String,
    pub platform_id: String,
}

/// The audit entries a rule of this kind counts, and the key it counts them by.
/// The successful actions a rule counts; every other rule counts failures only (see [`matches`]),
/// so the store hands over nothing else.
const RULE_ACTIONS: &[&str] = &[
    "credential.reveal",
    "platform.token_handout",
    "platform.canary_tripped",
    "platform.token_cancelled_externally",
    "platform.heartbeat_failed",
    "watch.unknown_post",
];

fn matches(kind: RuleKind, r: &AuditRow, detail: &Value) -> Option<String> {
    let code = detail.get("code").and_then(Value::as_str);
    match kind {
        RuleKind::TotpFailuresUser | RuleKind::TotpFailuresAny => {
            // A login answers every refusal alike; its entry says when the code was the reason.
            let refused = detail.get("refused").and_then(Value::as_str);
            let totp = |c: Option<&str>| matches!(c, Some("totp_invalid" | "user_locked"));
            if !totp(code) && !totp(refused) {
                return None;
            }
            if kind == RuleKind::TotpFailuresAny {
                return Some("*".into());
            }
            let user = ["operator", "username"]
                .iter()
                .find_map(|k| detail.get(*k).and_then(Value::as_str))
                .unwrap_or(&r.actor_id);
            Some(user.to_owned())
        }
        RuleKind::CheckoutRefused => (r.action == "checkout.request"
            && r.outcome == "denied"
            && code == Some("not_permitted"))
        .then(|| r.target.clone()),
        RuleKind::Reveals => {
            (r.action == "credential.reveal" && r.outcome == "success").then(|| r.target.clone())
        }
        RuleKind::Handouts => (r.action == "platform.token_handout" && r.outcome == "success")
            .then(|| r.target.clone()),
        RuleKind::CanaryTripped => {
            (r.action == "platform.canary_tripped").then(|| r.target.clone())
        }
        RuleKind::TokenCancelled => {
            (r.action == "platform.token_cancelled_externally").then(|| r.target.clone())
        }
        RuleKind::HeartbeatFailed => {
            (r.action == "platform.heartbeat_failed").then(|| r.target.clone())
        }
        RuleKind::UnknownPost => (r.action == "watch.unknown_post").then(|| r.target.clone()),
    }
}

fn concerns_an_account(kind: RuleKind) -> bool {
    !matches!(kind, RuleKind::TotpFailuresUser | RuleKind::TotpFailuresAny)
}

impl Incidents {
    /// Evaluates the early-warning rules (all, or those of one kind) over the audit log now.
    /// Returns how many alerts fired.
    pub async fn evaluate_rules(&self, only: Option<RuleKind>) -> Result<usize> {
        let rules: Vec<WarningRule> = self
            .config
            .early_warning
            .rules
            .iter()
            .filter(|r| only.is_none_or(|k| r.kind == k))
            .cloned()
            .collect();
        if rules.is_empty() {
            return Ok(0);
        }
        let now_ms = unix_ms(&self.clock);
        let widest = rules
            .iter()
            .map(|r| i64::from(r.window_minutes) * 60_000)
            .max()
            .unwrap_or(0);
        const PAGE: i64 = 10_000;
        let mut after = 0;
        let mut rows = Vec::new();
        loop {
            let page = self
                .store
                .audit_alert_candidates(now_ms - widest, after, PAGE, RULE_ACTIONS)
                .await?;
            let full = page.len() as i64 == PAGE;
            let Some(last) = page.last() else { break };
            after = last.seq;
            rows.extend(page);
            if !full {
                break;
            }
        }
        let parsed: Vec<(AuditRow, Value)> = rows
            .into_iter()
            .map(|r| {
                let d = serde_json::from_str(&r.detail).unwrap_or(Value::Null);
                (r, d)
            })
            .collect();
        let mut fired_now = 0;
        for rule in rules {
            let since = now_ms - i64::from(rule.window_minutes) * 60_000;
            let mut counts: HashMap<String, (u32, i64)> = HashMap::new();
            for (r, d) in &parsed {
                if r.ts < since {
                    continue;
                }
                let Some(key) = matches(rule.kind, r, d) else {
                    continue;
                };
                let last = self
                    .alerts_fired
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&(rule.name.clone(), key.clone()))
                    .copied()
                    .unwrap_or(i64::MIN);
                if r.ts <= last {
                    continue;
                }
                let e = counts.entry(key).or_insert((0, 0));
                e.0 += 1;
                e.1 = e.1.max(r.ts);
            }
            for (key, (n, newest)) in counts {
                if n < rule.threshold {
                    continue;
                }
                self.alerts_fired
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert((rule.name.clone(), key.clone()), newest);
                fired_now += 1;
                self.fire(&rule, &key, n).await;
            }
        }
        Ok(fired_now)
    }

    async fn fire(&self, rule: &WarningRule, key: &str, count: u32) {
        let summary = format!(
            "预警 early warning {} ({}): {count} in {} min for {key}",
            rule.name,
            rule.kind.as_str(),
            rule.window_minutes
        );
        let entry = NewEntry::system("alert.raised", key, Outcome::Denied)
            .detail("rule", rule.name.clone())
            .detail("kind", rule.kind.as_str())
            .detail("count", count);
        if let Err(e) = self.audit.record(entry).await {
            tracing::error!(rule = %rule.name, error = %e, "alert not recorded");
        }
        tracing::warn!(rule = %rule.name, key, count, "early-warning rule fired");
        self.notifier.send(crate::notify::Notice::new(
            &format!("alert.{}", rule.kind.as_str()),
            if concerns_an_account(rule.kind) {
                key
            } else {
                ""
            },
            summary.clone(),
        ));
        let Some(playbook) = &rule.open_playbook else {
            return;
        };
        if !concerns_an_account(rule.kind) {
            return;
        }
        match self.store.incident_open_for(key, playbook).await {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot check open incidents");
                return;
            }
        }
        let opened = self
            .open_by_rule(
                &rule.name,
                OpenIncident {
                    account: key.to_owned(),
                    playbook: playbook.clone(),
                    summary,
                    post: None,
                },
            )
            .await;
        if let Err(e) = opened {
            tracing::error!(rule = %rule.name, error = %e, "rule could not open its incident");
        }
    }

    /// The platform ids of every post the vault published on the account, from the evidence
    /// records; WeChat records without an `article_id` yet are resolved with `freepublish/get`.
    async fn vault_published(&self, account: &str, platform: Platform) -> Result<HashSet<String>> {
        let mut known = HashSet::new();
        for p in self.store.posts_for_account(account, 0).await? {
            match platform {
                Platform::Wechat => match (&p.article_id, &p.publish_id) {
                    (Some(a), _) => {
                        known.insert(a.clone());
                    }
                    (None, Some(pid)) => {
                        let answer = self
                            .watch_call(
                                account,
                                Method::POST,
                                "/cgi-bin/freepublish/get",
                                "",
                                json!({ "publish_id": pid }).to_string(),
                            )
                            .await;
                        if let Ok(v) = answer
                            && let Some(a) = v.get("article_id").and_then(Value::as_str)
                        {
                            known.insert(a.to_owned());
                        }
                    }
                    _ => {}
                },
                _ => {
                    if let Some(s) = &p.status_id {
                        known.insert(s.clone());
                    }
                }
            }
        }
        Ok(known)
    }

    /// One read the watch makes, recorded before it is sent.
    async fn watch_call(
        &self,
        account: &str,
        method: Method,
        path: &str,
        query: &str,
        body: String,
    ) -> Result<Value> {
        let entry = Actor::system()
            .entry("platform.send", account)
            .detail("call", format!("{method} {}", path.trim_start_matches('/')))
            .detail("by", "publication watch");
        self.audit.record(entry).await?;
        let (row, cred) = self.accounts.current_credential(account).await?;
        let content_type = (method == Method::POST).then_some("application/json");
        let answer = self
            .broker
            .forward(
                &row.id,
                row.platform,
                &cred,
                ApiRequest {
                    method,
                    path,
                    query,
                    body: Bytes::from(body),
                    content_type,
                },
            )
            .await
            .map_err(Error::from_platform)?;
        if let Some(e) = answer.error(row.platform.as_str()) {
            return Err(Error::from_platform(e));
        }
        serde_json::from_slice(&answer.body).map_err(Error::internal)
    }

    /// What is live on one account now: platform ids, newest first.
    async fn live_posts(&self, account: &str, platform: Platform) -> Result<Vec<String>> {
        let n = self.config.watch.page_size;
        match platform {
            Platform::Wechat => {
                let v = self
                    .watch_call(
                        account,
                        Method::POST,
                        "/cgi-bin/freepublish/batchget",
                        "",
                        json!({ "offset": 0, "count": n.min(20), "no_content": 1 }).to_string(),
                    )
                    .await?;
                Ok(v.get("item")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|i| i.get("article_id").and_then(Value::as_str))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default())
            }
            Platform::Weibo => {
                let v = self
                    .watch_call(
                        account,
                        Method::GET,
                        "/2/statuses/user_timeline.json",
                        &format!("count={n}"),
                        String::new(),
                    )
                    .await?;
                Ok(v.get("statuses")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|i| i.get("idstr").and_then(Value::as_str))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default())
            }
            Platform::Generic => Ok(Vec::new()),
        }
    }

    /// What became of one of the vault's posts after it went out, if anything: its new status,
    /// why (English, Chinese), and the platform's answer as evidence.
    async fn fate_of(
        &self,
        account: &str,
        platform: Platform,
        post: &PostRow,
    ) -> Option<(PostStatus, &'static str, &'static str, Value)> {
        match platform {
            Platform::Wechat => {
                let pid = post.publish_id.as_deref()?;
                let v = self
                    .watch_call(
                        account,
                        Method::POST,
                        "/cgi-bin/freepublish/get",
                        "",
                        json!({ "publish_id": pid }).to_string(),
                    )
                    .await
                    .ok()?;
                match v.get("publish_status").and_then(Value::as_i64) {
                    Some(5) => Some((
                        PostStatus::Deleted,
                        "deleted on WeChat by the account's own users (publish_status 5)",
                        "已被公众号自己的用户在微信删除（publish_status 5）",
                        v,
                    )),
                    Some(6) => Some((
                        PostStatus::Blocked,
                        "blocked by WeChat after it was published (publish_status 6)",
                        "发布成功后被微信平台封禁（publish_status 6）",
                        v,
                    )),
                    _ => None,
                }
            }
            Platform::Weibo => {
                let id = post.status_id.as_deref()?;
                match self
                    .watch_call(
                        account,
                        Method::GET,
                        "/2/statuses/show.json",
                        &format!("id={id}"),
                        String::new(),
                    )
                    .await
                {
                    Err(Error::Platform { code: 20101, .. }) => Some((
                        PostStatus::Deleted,
                        "deleted on Weibo (20101: the status does not exist)",
                        "已在微博被删除（20101：该微博不存在）",
                        json!({ "error_code": 20101 }),
                    )),
                    Ok(v) if v.get("deleted").and_then(Value::as_str) == Some("1") => Some((
                        PostStatus::Deleted,
                        "deleted on Weibo (the status says deleted)",
                        "已在微博被删除",
                        v,
                    )),
                    Ok(v)
                        if v.pointer("/visible/type")
                            .and_then(Value::as_i64)
                            .is_some_and(|t| t != 0) =>
                    {
                        Some((
                            PostStatus::Hidden,
                            "no longer public on Weibo (its visibility is restricted)",
                            "在微博上已不再公开（可见范围受限）",
                            v,
                        ))
                    }
                    _ => None,
                }
            }
            Platform::Generic => None,
        }
    }

    /// Follows the vault's own recent posts on one account; returns how many moved on.
    async fn follow_posts(&self, account: &str, platform: Platform) -> Result<usize> {
        let days = i64::from(self.config.watch.follow_days);
        if days == 0 {
            return Ok(0);
        }
        let now = self.clock.unix();
        let mut posts: Vec<PostRow> = self
            .store
            .posts_for_account(account, now - days * 86_400)
            .await?
            .into_iter()
            .filter(|p| matches!(p.status, PostStatus::Published | PostStatus::Submitted))
            .collect();
        posts.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        posts.truncate(self.config.watch.page_size as usize);
        let mut moved = 0;
        for post in posts {
            let Some((status, en, zh, answer)) = self.fate_of(account, platform, &post).await
            else {
                continue;
            };
            let evidence = answer.to_string();
            let sha = crate::crypto::sha256_hex(evidence.as_bytes());
            // The digest is of the whole answer; the entry keeps its first part.
            let evidence = crate::audit::capped("evidence", evidence, &mut serde_json::Map::new());
            let (pid, at) = (post.id.clone(), self.clock.unix());
            let platform_id = post
                .article_id
                .clone()
                .or_else(|| post.status_id.clone())
                .unwrap_or_default();
            self.audit
                .change(&Actor::system(), "watch.post_removed", account, move |tx| {
                    Box::pin(async move {
                        tx.note("post_id", pid.clone());
                        tx.note("platform_id", platform_id);
                        tx.note("status", status.as_str());
                        tx.note("reason", en);
                        tx.note("evidence", evidence);
                        tx.note("evidence_sha256", sha);
                        let update = PostUpdate {
                            error: Some(en.to_owned()),
                            ..PostUpdate::default()
                        };
                        tx.post_update(&pid, status, &update, at).await?;
                        Ok(())
                    })
                })
                .await?;
            tracing::warn!(account, post = %post.id, status = status.as_str(), "a post the vault published was taken down");
            self.notifier.send(crate::notify::Notice {
                event: "post.removed".into(),
                account: account.to_owned(),
                summary: format!(
                    "发布后处置 post {} on {account} {zh} / {en}; checkout {}, operator {}",
                    post.id, post.checkout_id, post.operator
                ),
                checkout_id: Some(post.checkout_id.clone()),
                incident_id: None,
                to: None,
            });
            moved += 1;
        }
        Ok(moved)
    }

    /// One round of the publication watch over every WeChat and Weibo account. Each post the
    /// vault did not publish is recorded once and raises the `unknown_post` rules at once. An
    /// account whose platform cannot be read is logged and skipped.
    pub async fn watch_round(&self) -> Result<Vec<UnknownPost>> {
        let mut found = Vec::new();
        for row in self.store.accounts_list().await? {
            if row.platform == Platform::Generic {
                continue;
            }
            if let Err(e) = self.follow_posts(&row.id, row.platform).await {
                tracing::warn!(account = %row.id, error = %e, "publication watch: following posts failed");
            }
            let live = match self.live_posts(&row.id, row.platform).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(account = %row.id, error = %e, "publication watch: listing failed");
                    continue;
                }
            };
            if live.is_empty() {
                continue;
            }
            let seen: HashSet<String> = self.store.watch_seen(&row.id).await?.into_iter().collect();
            let fresh: Vec<&String> = live.iter().filter(|p| !seen.contains(*p)).collect();
            if fresh.is_empty() {
                continue;
            }
            let known = self.vault_published(&row.id, row.platform).await?;
            for pid in fresh {
                if known.contains(pid) {
                    continue;
                }
                let (aid, p, now) = (row.id.clone(), pid.clone(), self.clock.unix());
                let recorded = self
                    .audit
                    .change(&Actor::system(), "watch.unknown_post", &row.id, move |tx| {
                        Box::pin(async move {
                            tx.note("platform_id", p.clone());
                            Ok(tx.watch_seen_add(&aid, &p, now).await?)
                        })
                    })
                    .await?;
                if recorded {
                    tracing::warn!(account = %row.id, post = %pid, "a post the vault did not publish is live");
                    found.push(UnknownPost {
                        account: row.id.clone(),
                        platform_id: pid.clone(),
                    });
                }
            }
        }
        if !found.is_empty() {
            self.evaluate_rules(Some(RuleKind::UnknownPost)).await?;
        }
        Ok(found)
    }
}
