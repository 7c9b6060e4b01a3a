//! Seeding the benchmark's store before the vault under test starts: its policy, the account, the
//! tool, the auditor and the operators (through the services, as the system actor), and the audit
//! log topped up to the size to verify.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::anyhow;
use serde_json::json;

use super::{ACCOUNT, APP_ID, BenchArgs, Progress, TOOL, random_word};
use crate::Vault;
use crate::actor::Actor;
use crate::audit::{NewEntry, Outcome};
use crate::crypto::{SecretBytes, SecretString};
use crate::identity::totp;
use crate::identity::users::NewUserInput;

pub(super) fn policy() -> String {
    format!(
        "# Benchmark policy: loopback only, any hour, not exclusive (many operators at once).\n\
         account = \"{ACCOUNT}\"\nexclusive = false\nallowed_networks = [\"127.0.0.0/8\", \"::1/128\"]\n\
         allowed_calls = [\"POST cgi-bin/draft/add\"]\n\n[who]\nroles = [\"publisher\"]\nclients = [\"{TOOL}\"]\n\n\
         [levels.general]\napprovals = 0\n"
    )
}

/// A seeded publisher and its TOTP seed: the load computes each current code itself.
pub(super) struct Operator {
    pub(super) name: String,
    pub(super) seed: SecretBytes,
}

/// What the seeded store holds that the scenarios need.
pub(super) struct Seeded {
    pub(super) client_key: SecretString,
    pub(super) auditor_password: String,
    pub(super) auditor_seed: SecretBytes,
    /// The publisher whose checkout gives scenarios 2 and 3 their token.
    pub(super) publisher: Vec<Operator>,
    /// The operators of scenario 4, each to check out once with its current code.
    pub(super) operators: Arc<Vec<Operator>>,
}

/// Seeds the new store through its services, before the vault under test opens it: the account
/// and its credential, the tool, an auditor, the publishers and the audit log.
pub(super) async fn populate(
    vault: &Arc<Vault>,
    args: &BenchArgs,
    app_secret: &str,
    progress: &Progress,
) -> anyhow::Result<Seeded> {
    // The log first: its entries span the last six months up to now, and an entry is never
    // stamped before the one ahead of it, so what the seeding itself records (the account, the
    // people) must come after them.
    seed_audit(vault, args.audit_entries, args.operators, progress).await?;
    let system = Actor::system();
    let input = serde_json::from_value(json!({"id": ACCOUNT, "platform": "wechat",
        "display_name": "基准测试公众号", "credential": {"app_id": APP_ID, "app_secret": app_secret}}))?;
    vault
        .accounts()
        .create(&system, input)
        .await
        .map_err(|e| anyhow!("account: {e}"))?;
    let (_, client_key) = vault
        .clients()
        .create(&system, TOOL, &[ACCOUNT.to_owned()], None, None)
        .await
        .map_err(|e| anyhow!("client: {e}"))?;
    let auditor_pw = format!("bench-{}", random_word(8)?);
    let auditor = vault
        .people()
        .create(
            &system,
            NewUserInput {
                username: "bench-auditor".into(),
                display_name: "bench auditor".into(),
                roles: vec!["auditor".into()],
                password: SecretString::new(auditor_pw.clone()),
            },
            None,
        )
        .await
        .map_err(|e| anyhow!("auditor: {e}"))?;
    let auditor_seed = totp::seed_from_base32(auditor.totp_secret.expose())
        .ok_or_else(|| anyhow!("auditor secret is not base32"))?;
    let publisher = make_operators(vault, "bench-publisher-", 1, progress).await?;
    let operators = Arc::new(make_operators(vault, "bench-op-", args.operators, progress).await?);
    Ok(Seeded {
        client_key,
        auditor_password: auditor_pw,
        auditor_seed,
        publisher,
        operators,
    })
}

/// Creates `n` publishers through the people service, a few at a time (each hashes a password).
async fn make_operators(
    vault: &Arc<Vault>,
    prefix: &str,
    n: usize,
    progress: &Progress,
) -> anyhow::Result<Vec<Operator>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let vault = Arc::clone(vault);
        let next = Arc::clone(&next);
        let prefix = prefix.to_owned();
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let name = format!("{prefix}{i:04}");
                let e = vault
                    .people()
                    .create(
                        &Actor::system(),
                        NewUserInput {
                            username: name.clone(),
                            display_name: name.clone(),
                            roles: vec!["publisher".into()],
                            password: SecretString::new(format!("bench-{}", random_word(8)?)),
                        },
                        None,
                    )
                    .await
                    .map_err(|e| anyhow!("creating operator {name}: {e}"))?;
                let seed = totp::seed_from_base32(e.totp_secret.expose())
                    .ok_or_else(|| anyhow!("enrolment secret of {name} is not base32"))?;
                out.push(Operator { name, seed });
            }
            anyhow::Ok(out)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        all.extend(r??);
        progress.line(&format!("preparing: {} of {n} operators", all.len()));
    }
    Ok(all)
}

/// The actions of a busy office's log, most frequent first (a token introspection or proxied
/// call per publishing step, a login a day per person, a rotation now and then).
pub(super) const ACTIONS: [&str; 12] = [
    "token.introspect",
    "platform.call",
    "platform.send",
    "checkout.create",
    "auth.login",
    "audit.query",
    "checkout.approve",
    "post.review",
    "account.view",
    "credential.rotate",
    "incident.open",
    "user.create",
];

/// The accounts (targets) the seeded entries name, besides the benchmark's own.
pub(super) const SEEDED_ACCOUNTS: usize = 8;

/// How long the seeded log spans, ending now: six months of a busy office.
pub(super) const SEEDED_SPAN_MS: i64 = 183 * 24 * 3600 * 1000;

/// Entries per seeding transaction (and per timestamp: one batch of the writer's, much larger).
const CHUNK: usize = 20_000;

/// The seeded entry `i`: a person, an action, an account and an outcome drawn from a fixed
/// sequence (the same log each run), skewed the way a real one is: most entries succeed, about
/// one in fifty is refused, one in a few hundred fails or is rate limited.
pub(super) fn seeded_entry(i: u64, people: usize) -> NewEntry {
    // splitmix64: a fixed, well-spread sequence without a dependency.
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let pick = |bits: u32, n: usize| ((z >> bits) % n.max(1) as u64) as usize;
    // Skewed towards the first actions: the larger of two draws.
    let action = ACTIONS[pick(0, ACTIONS.len()).min(pick(8, ACTIONS.len()))];
    let outcome = match pick(16, 1000) {
        0..=19 => Outcome::Denied,
        20..=24 => Outcome::Error,
        25..=26 => Outcome::RateLimited,
        _ => Outcome::Success,
    };
    let mut e = NewEntry::system(action, &seeded_account(pick(28, SEEDED_ACCOUNTS)), outcome);
    e.actor_kind = crate::audit::context::ActorKind::User;
    e.actor_id = seeded_person(pick(40, people));
    e.source_ip = "127.0.0.1".into();
    e.detail("note", "synthetic entry for the benchmark")
}

pub(super) fn seeded_account(i: usize) -> String {
    if i == 0 {
        ACCOUNT.to_owned()
    } else {
        format!("bench-account-{i}")
    }
}

pub(super) fn seeded_person(i: usize) -> String {
    format!("bench-op-{i:04}")
}

/// Tops the log up to `target` entries with chained, signed entries in large transactions, their
/// times spread over the last [`SEEDED_SPAN_MS`] in order, so that time ranges select.
async fn seed_audit(
    vault: &Vault,
    target: u64,
    people: usize,
    progress: &Progress,
) -> anyhow::Result<u64> {
    let have = vault.audit_len().await?;
    let mut left = target.saturating_sub(have);
    let total = left;
    let now = crate::audit::writer::unix_ms(vault.clock());
    let chunks = total.div_ceil(CHUNK as u64).max(1);
    let mut done = 0u64;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let entries: Vec<NewEntry> = (done..done + n as u64)
            .map(|i| seeded_entry(i, people))
            .collect();
        let chunk = i64::try_from(done / CHUNK as u64).unwrap_or(i64::MAX);
        let chunks = i64::try_from(chunks).unwrap_or(i64::MAX);
        let ts = now - SEEDED_SPAN_MS + SEEDED_SPAN_MS.saturating_mul(chunk) / chunks;
        vault.seed_audit(ts, entries).await?;
        left -= n as u64;
        done += n as u64;
        progress.line(&format!("seeding the audit log: {done} of {total} entries"));
    }
    Ok(total)
}
