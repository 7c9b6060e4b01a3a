//! The vault: an unlocked store and the parts around it (audit writer, keyring, broker,
//! notifier, policies). Its parts are private to the crate; everything outside reaches them
//! through the services it hands out (`people()`, `sessions()`, `clients()`, `accounts()`,
//! `checkouts()`, `publishing()`, `audit_review()`), each of which owns the rules of its concept.

pub mod background;
pub mod backup;
pub mod cluster;
pub mod keys;
pub mod seal;

use std::path::Path;
use std::sync::Arc;

use crate::accounts::service::Accounts;
use crate::actor::Actor;
use crate::audit::{AuditWriter, Outcome};
use crate::checkout::Checkouts;
use crate::clock::Clock;
use crate::config::{Config, StoreLocation};
use crate::crypto::keyring::{MAC_MASTER_LABEL, new_data_key, term_label};
use crate::crypto::{Keyring, RootKey, Suite};
use crate::error::{Error, Result};
use crate::identity::clients::Clients;
use crate::identity::passwords::Passwords;
use crate::identity::sessions::Sessions;
use crate::identity::users::People;
use crate::incidents::Incidents;
use crate::keys::Keys;
use crate::policy::Live;
use crate::policy::PolicySet;
use crate::publishing::Publishing;
use crate::publishing::posts::Posts;
use crate::review::AuditReview;
use crate::store::Store;
use crate::store::keyring::{CRYPTO_SUITE_KEY, MAC_MASTER_KEY};
use mediavault_store_postgres::PgStore;
use mediavault_store_sqlite::SqliteStore;

pub struct Vault {
    pub(crate) store: Store,
    /// Every change, request and domain event is recorded through this before anything is
    /// released; changes commit inside its transactions.
    pub(crate) audit: AuditWriter,
    pub(crate) keys: Arc<Keys>,
    pub(crate) clock: Clock,
    pub config: Arc<Config>,
    pub(crate) notifier: crate::notify::Notifier,
    pub(crate) broker: Arc<crate::platforms::Broker>,
    /// Taken once by the server, which turns each event into an audit record and a notice.
    pub(crate) security_events: std::sync::Mutex<
        Option<tokio::sync::mpsc::UnboundedReceiver<crate::platforms::SecurityEvent>>,
    >,
    live: Arc<Live>,
    /// Which node of a cluster is active (a single node is always).
    cluster: Arc<cluster::Cluster>,
    /// What the last readiness probe found, so a change is logged once, not at every probe.
    keys_ready: std::sync::atomic::AtomicBool,
    tokens: Arc<crate::checkout::TokenIndex>,
    /// What `/metrics` shows.
    metrics: Arc<crate::telemetry::Metrics>,
    // The services, each holding exactly the parts above that it uses.
    sessions: Sessions,
    people: People,
    clients: Clients,
    accounts: Accounts,
    checkouts: Checkouts,
    posts: Posts,
    publishing: Publishing,
    incidents: Incidents,
    audit_review: AuditReview,
}

/// The broker's question before a token fetch, answered by the lease (see `cluster`). The margin
/// is the fetch's own timeout plus a second: the lease must outlast the fetch.
struct LeasePermit(Arc<cluster::Cluster>);

impl crate::platforms::FetchPermit for LeasePermit {
    fn confirm(&self, within: std::time::Duration) -> futures_util::future::BoxFuture<'_, bool> {
        Box::pin(
            self.0
                .confirm(within.saturating_add(std::time::Duration::from_secs(1))),
        )
    }
}

/// What `/readyz` reports.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Both pools answer.
    pub store_usable: bool,
    /// The keyring seals and opens, and opens what is stored.
    pub keys_usable: bool,
    /// The audit writer takes entries (every answer waits for one).
    pub audit_writing: bool,
    /// This node's part in its cluster.
    pub role: cluster::Role,
}

impl Readiness {
    /// Ready to answer requests: the store and the keys work, and this node either answers
    /// itself or knows the active node to forward to.
    pub fn ready(&self) -> bool {
        let serving = match &self.role {
            cluster::Role::Standby { leader } => leader.is_some(),
            _ => true,
        };
        self.store_usable && self.keys_usable && self.audit_writing && serving
    }
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

/// Why a store could not be opened; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Other(String),
}

impl Vault {
    /// Opens an existing store: the key file is checked before the database is touched, and a
    /// wrong key is detected before anything is written.
    pub async fn open(config: Arc<Config>, clock: Clock) -> Result<Self, OpenError> {
        if seal::is_sealed_mode(&config) {
            return Err(OpenError::Other(format!(
                "this vault is sealed-mode ({} names its key custodians): it opens when they unseal the running server",
                seal::seal_path(&config).display()
            )));
        }
        let root = RootKey::load_file(&config.root_key_path())?;
        Self::open_with_root(config, clock, root).await
    }

    /// Opens an existing store for an offline CLI command run beside the server (`bootstrap
    /// confirm-admin`): the root key file, or in sealed mode a quorum of the custodians' shares
    /// on standard input (`NAME SHARE` a line), as backup and `keys rotate` take them.
    pub async fn open_cli(config: Arc<Config>, clock: Clock) -> Result<Self, OpenError> {
        if seal::is_sealed_mode(&config) {
            let root = seal::root_from_stdin(&config)?;
            return Self::open_with_root(config, clock, root).await;
        }
        Self::open(config, clock).await
    }

    /// Opens an existing store with a root key already in hand (sealed mode: rebuilt from the
    /// custodians' shares). A wrong key is detected before anything is written. In sealed mode
    /// the key is kept in memory, as there is no file to read it again from when another process
    /// adds a keyring term (see `Keys::refresh_keyring`).
    pub async fn open_with_root(
        config: Arc<Config>,
        clock: Clock,
        root: RootKey,
    ) -> Result<Self, OpenError> {
        let (store, keys) = open_store_with(&config, &root).await?;
        let held = seal::is_sealed_mode(&config).then_some(root);
        // A missing directory is allowed at start (a vault before its first policy), with a
        // warning that says what follows; a broken policy file still stops the start.
        let policies = if config.policies_dir.is_dir() {
            PolicySet::load_dir(&config.policies_dir)
                .map_err(|e| OpenError::Other(format!("policies: {e}")))?
        } else {
            tracing::warn!(
                dir = %config.policies_dir.display(),
                "no policy directory: every checkout is refused until policies are written there (or `policies_dir` points at them) and the server reloads (SIGHUP)"
            );
            PolicySet::empty()
        };
        Self::assemble(config, clock, store, keys, policies, held)
    }

    /// Creates the data dir, the database, the root key file and the keyring. Refuses to touch an
    /// existing store or key file. On PostgreSQL the database itself must exist (the operator
    /// creates it, and the role the URL names); init creates the vault's schema in it.
    pub async fn create(config: Arc<Config>, clock: Clock) -> Result<Self, OpenError> {
        Ok(Self::create_with(config, clock, None).await?.0)
    }

    /// [`Vault::create`], or in sealed mode (`split` given) without a root key file: the root key
    /// is made in memory, split among the named custodians, and only its public check values are
    /// written (`seal.json`). Returns the shares, which nothing keeps: show each once.
    pub async fn create_with(
        config: Arc<Config>,
        clock: Clock,
        split: Option<seal::Split>,
    ) -> Result<(Self, Vec<seal::DealtShare>), OpenError> {
        let location = config.store_location();
        let key_path = config.root_key_path();
        let exists = || {
            OpenError::Other(format!(
                "a store already exists at {}; init changes nothing",
                location.describe()
            ))
        };
        // PostgreSQL: the schema is created (or found) first, and a keyring in it means a vault.
        let mut made = None;
        match &location {
            StoreLocation::Sqlite(db) if db.exists() => return Err(exists()),
            StoreLocation::Sqlite(_) => {}
            StoreLocation::Postgres(_) => {
                let store = open_backend(&location, true).await?;
                let initialised = match store.keyring_terms().await {
                    Ok(terms) => !terms.is_empty(),
                    Err(e) => {
                        store.close().await;
                        return Err(e.into());
                    }
                };
                if initialised {
                    store.close().await;
                    return Err(exists());
                }
                made = Some(store);
            }
        }
        let seal_path = seal::seal_path(&config);
        if key_path.exists() || seal_path.exists() {
            if let Some(store) = made {
                store.close().await;
            }
            return Err(OpenError::Other(format!(
                "a root key or seal file already exists at {} but there is no store; move it away if it is stale",
                if key_path.exists() {
                    &key_path
                } else {
                    &seal_path
                }
                .display()
            )));
        }
        create_private_dir(&config.data_dir)?;
        make_dir_private(&config.data_dir)?;
        if let Some(parent) = key_path.parent() {
            create_private_dir(parent)?;
        }
        let (root, dealt) = match split {
            None => (RootKey::create_file(&key_path)?, Vec::new()),
            Some(split) => seal::deal(&config, &split)?,
        };
        let store = match made {
            Some(store) => store,
            None => open_backend(&location, true).await?,
        };
        let suite = config.crypto.suite.unwrap_or_default();
        let term1 = suite.new_data_key()?;
        let mac = new_data_key()?;
        store
            .keyring_init(
                &root.wrap(suite, &term_label(1), &term1)?,
                &root.wrap(suite, MAC_MASTER_LABEL, &mac)?,
                suite.as_str(),
                clock.unix(),
            )
            .await?;
        // File mode reads the key back, proving the file before anyone relies on it.
        let (keys, held) = if dealt.is_empty() {
            (unlock(&store, &RootKey::load_file(&key_path)?).await?, None)
        } else {
            (unlock(&store, &root).await?, Some(root))
        };
        let policies =
            PolicySet::load_dir(&config.policies_dir).unwrap_or_else(|_| PolicySet::empty());
        Ok((
            Self::assemble(config, clock, store, keys, policies, held)?,
            dealt,
        ))
    }

    /// Whether the configured store already holds a vault (what `init` refuses to touch): the
    /// SQLite file exists, or the PostgreSQL database has the schema and a keyring.
    pub async fn store_exists(config: &Config) -> Result<bool, OpenError> {
        let location = config.store_location();
        if let StoreLocation::Sqlite(db) = &location {
            return Ok(db.exists());
        }
        let store = match open_backend(&location, false).await {
            Ok(store) => store,
            Err(OpenError::Store(crate::store::StoreError::Missing(_))) => return Ok(false),
            Err(e) => return Err(e),
        };
        let terms = store.keyring_terms().await;
        store.close().await;
        Ok(!terms?.is_empty())
    }

    /// The services around an unlocked store: audit writer, platform broker, notifier.
    fn assemble(
        config: Arc<Config>,
        clock: Clock,
        store: Store,
        keys: Keyring,
        policies: PolicySet,
        held_root: Option<RootKey>,
    ) -> Result<Self, OpenError> {
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let broker = Arc::new(
            crate::platforms::Broker::new(&config.platforms, clock.clone(), events_tx)
                .map_err(|e| OpenError::Other(format!("platform client: {e}")))?,
        );
        let cluster = Arc::new(cluster::Cluster::new(store.clone(), config.cluster.clone()));
        broker.set_permit(Arc::new(LeasePermit(Arc::clone(&cluster))));
        let audit = AuditWriter::start(store.clone(), keys.mac().audit.clone(), clock.clone());
        let notifier =
            crate::notify::Notifier::new(config.notify.clone(), audit.clone(), clock.clone());
        let playbooks = load_playbooks(&config);
        let metrics = Arc::new(crate::telemetry::Metrics::new(audit.stats()));
        let keys =
            Arc::new(Keys::new(keys, store.clone(), config.root_key_path()).holding(held_root));
        let live = Arc::new(Live::new(policies, playbooks));
        let tokens = Arc::new(crate::checkout::TokenIndex::default());
        // The composition: each service gets the parts it uses, and the services below it.
        let sessions = Sessions {
            store: store.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            keys: Arc::clone(&keys),
            config: Arc::clone(&config),
        };
        let people = People {
            store: store.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            keys: Arc::clone(&keys),
            config: Arc::clone(&config),
            passwords: Passwords::default(),
            sessions: sessions.clone(),
        };
        let clients = Clients {
            store: store.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            keys: Arc::clone(&keys),
            people: people.clone(),
            policies: Arc::clone(&live),
            asks_client_certs: (config.tls.client_ca_file.is_some() && !config.tls.plain_http)
                || config.gateway.client_cert_header.is_some(),
        };
        let accounts = Accounts {
            store: store.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            keys: Arc::clone(&keys),
            people: people.clone(),
            policies: Arc::clone(&live),
            broker: Arc::clone(&broker),
            notifier: notifier.clone(),
            lifetimes: config.lifetimes.clone(),
            reminded: Arc::default(),
            weibo_grants: Arc::default(),
        };
        let checkouts = Checkouts {
            store: store.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            keys: Arc::clone(&keys),
            people: people.clone(),
            accounts: accounts.clone(),
            policies: Arc::clone(&live),
            notifier: notifier.clone(),
            tokens: Arc::clone(&tokens),
        };
        let posts = Posts {
            store: store.clone(),
            keys: Arc::clone(&keys),
            checkouts: checkouts.clone(),
        };
        let publishing = Publishing {
            store: store.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            keys: Arc::clone(&keys),
            accounts: accounts.clone(),
            broker: Arc::clone(&broker),
            metrics: Arc::clone(&metrics),
            policies: Arc::clone(&live),
        };
        let incidents = Incidents {
            store: store.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            keys: Arc::clone(&keys),
            config: Arc::clone(&config),
            accounts: accounts.clone(),
            people: people.clone(),
            broker: Arc::clone(&broker),
            notifier: notifier.clone(),
            policies: Arc::clone(&live),
            alerts_fired: Arc::default(),
        };
        let audit_review = AuditReview {
            store: store.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            keys: Arc::clone(&keys),
            seen: Arc::default(),
        };
        Ok(Self {
            store,
            audit,
            keys,
            clock,
            config,
            notifier,
            broker,
            security_events: std::sync::Mutex::new(Some(events_rx)),
            live,
            cluster,
            keys_ready: std::sync::atomic::AtomicBool::new(true),
            tokens,
            metrics,
            sessions,
            people,
            clients,
            accounts,
            checkouts,
            posts,
            publishing,
            incidents,
            audit_review,
        })
    }

    /// What a standby adds to a request it forwards to the active node, vouching for what it saw
    /// of the client: a MAC, under a key every node derives from the shared keyring, over the
    /// client's address, the method, the target (path and query) and, when the client presented
    /// one, its TLS certificate (DER), so a tool bound to a certificate works through either node.
    pub fn forward_mac(
        &self,
        client: &str,
        method: &str,
        target: &str,
        cert: Option<&[u8]>,
    ) -> String {
        hex::encode(self.forward_tag(client, method, target, cert))
    }

    /// Whether `mac` is what [`Self::forward_mac`] gives for this request (constant time).
    pub fn forward_mac_valid(
        &self,
        client: &str,
        method: &str,
        target: &str,
        cert: Option<&[u8]>,
        mac: &str,
    ) -> bool {
        hex::decode(mac).is_ok_and(|tag| {
            crate::crypto::ct_eq(&tag, &self.forward_tag(client, method, target, cert))
        })
    }

    /// Without a certificate the MAC covers three parts, as it did before certificates were
    /// vouched for (a standby of the previous release still forwards certificate-less requests
    /// during a rolling upgrade); with one, four. The parts are length-prefixed, so no
    /// three-part message reads as a four-part one.
    fn forward_tag(
        &self,
        client: &str,
        method: &str,
        target: &str,
        cert: Option<&[u8]>,
    ) -> [u8; 32] {
        let head = [client.as_bytes(), method.as_bytes(), target.as_bytes()];
        let key = &self.keys.mac().forward;
        match cert {
            None => crate::crypto::hmac_parts(key, &head),
            Some(der) => crate::crypto::hmac_parts(key, &[head[0], head[1], head[2], der]),
        }
    }

    /// Which node of a cluster is active, and this node's part in it.
    pub fn cluster(&self) -> &Arc<cluster::Cluster> {
        &self.cluster
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn people(&self) -> &People {
        &self.people
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    pub fn checkouts(&self) -> &Checkouts {
        &self.checkouts
    }

    pub fn posts(&self) -> &Posts {
        &self.posts
    }

    pub fn publishing(&self) -> &Publishing {
        &self.publishing
    }

    pub fn incidents(&self) -> &Incidents {
        &self.incidents
    }

    pub fn audit_review(&self) -> &AuditReview {
        &self.audit_review
    }

    /// Records one request's audit entry (the HTTP layer's, for a request that changed nothing
    /// itself), durably, before the answer leaves.
    pub async fn record_request(&self, entry: crate::audit::NewEntry) -> Result<()> {
        self.audit.record(entry).await?;
        Ok(())
    }

    /// How many entries the audit log holds (its head's sequence number).
    #[cfg(feature = "seeding")]
    pub async fn audit_len(&self) -> Result<u64> {
        let head = self.store.audit_head().await?;
        Ok(u64::try_from(head.seq).unwrap_or(0))
    }

    /// Appends many chained, signed entries in one transaction, stamped `ts_ms` (unix ms): seeding
    /// a large log that spans months for `mediavault bench`, never a request's entry (those go
    /// through the audit writer).
    #[cfg(feature = "seeding")]
    pub async fn seed_audit(&self, ts_ms: i64, entries: Vec<crate::audit::NewEntry>) -> Result<()> {
        self.store.prepare_bulk_load().await?;
        crate::audit::writer::append_bulk(&self.store, &self.keys.mac().audit, ts_ms, entries)
            .await?;
        Ok(())
    }

    /// What `/metrics` counts.
    pub fn metrics(&self) -> &crate::telemetry::Metrics {
        &self.metrics
    }

    /// Records an event of the vault itself (no change in the store), durably.
    pub async fn record(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        outcome: Outcome,
    ) -> Result<()> {
        let mut entry = actor.entry(action, target);
        entry.outcome = outcome;
        self.audit.record(entry).await?;
        Ok(())
    }

    /// Whether the store answers on both pools and the keys in memory open what is stored: a fresh
    /// seal, the newest credential version and the newest TOTP seed (terms added by another
    /// process are picked up first). Not ready is logged, once per change, with what to do.
    pub async fn readiness(&self) -> Readiness {
        let store = self.store.ping().await.is_ok();
        let keys = match self.probe_keys().await {
            Ok(()) => {
                if !self
                    .keys_ready
                    .swap(true, std::sync::atomic::Ordering::AcqRel)
                {
                    tracing::info!("the keys open the stored secrets again");
                }
                true
            }
            Err(e) => {
                if self
                    .keys_ready
                    .swap(false, std::sync::atomic::Ordering::AcqRel)
                {
                    tracing::error!(
                        error = ?e,
                        key_file = %self.config.root_key_path().display(),
                        "not ready: the keys in memory cannot open what is stored. Check that the \
                         root key file is the one this store was last rotated to (after `keys \
                         rotate-root` it holds the new key), then send SIGHUP or restart; \
                         `mediavault keys rotate` never makes old records unreadable"
                    );
                }
                false
            }
        };
        Readiness {
            store_usable: store,
            keys_usable: keys,
            audit_writing: self.audit_writing(),
            role: self.cluster.role(),
        }
    }

    /// Opens a fresh seal and one stored credential and TOTP seed; their plaintext is dropped
    /// (zeroized) at once.
    async fn probe_keys(&self) -> Result<()> {
        let probe = crate::crypto::Aad {
            table: "readyz",
            row: "probe",
            field: "probe",
            version: 0,
        };
        self.keys
            .seal(&probe, b"probe")
            .and_then(|ct| self.keys.open(&probe, &ct))?;
        let probes = self.store.keyring_probes().await?;
        if let Some((account, version, sealed)) = &probes.credential {
            self.keys.know_term_of(sealed).await?;
            crate::accounts::Credential::open(&self.keys, account, *version, sealed)?;
        }
        if let Some((username, sealed)) = &probes.seed {
            self.keys.know_term_of(sealed).await?;
            self.keys
                .open(&crate::identity::users::seed_aad(username), sealed)?;
        }
        Ok(())
    }

    /// The crypto suite this vault was created with (the store's).
    pub fn crypto_suite(&self) -> Suite {
        self.keys.suite()
    }

    /// Picks up keyring terms another process added (what SIGHUP asks for); see
    /// [`Keys::refresh_keyring`].
    pub async fn refresh_keyring(&self) -> Result<usize> {
        self.keys.refresh_keyring().await
    }

    /// The keyring term new secrets are sealed under.
    pub fn active_key_term(&self) -> u32 {
        self.keys.active_term()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The Prometheus text of `/metrics`, with the gauges read now.
    pub async fn metrics_text(&self) -> Result<String> {
        let m = &self.metrics;
        m.audit_queue_depth
            .set(i64::try_from(self.audit.queue_depth()).unwrap_or(i64::MAX));
        m.indexed_tokens
            .set(i64::try_from(self.tokens.len()).unwrap_or(i64::MAX));
        m.live_checkouts
            .set(self.store.checkouts_live(self.clock.unix()).await?);
        for row in self.store.accounts_list().await? {
            if row.platform != crate::accounts::Platform::Wechat {
                continue;
            }
            if let Some(b) = self.accounts.token_budget(&row.id).await {
                for (kind, left) in [
                    ("force_refresh", b.force_refreshes_left),
                    ("classic_token", b.classic_fetches_left),
                ] {
                    m.wechat_budget_left
                        .get_or_create(&crate::telemetry::BudgetLabels {
                            account: row.id.clone(),
                            kind,
                        })
                        .set(i64::from(left));
                }
            }
        }
        m.render().map_err(Error::internal)
    }

    /// Whether the audit writer still takes entries (false once it stopped for good).
    pub fn audit_writing(&self) -> bool {
        self.audit.is_running()
    }

    /// Resolves if the audit writer stops for good (a change panicked inside it, or its thread
    /// could not start): from then on every audited request is refused, so the server stops.
    pub async fn audit_stopped(&self) {
        self.audit.stopped().await;
    }

    /// Closes the store's pools (after the server has stopped).
    /// Ends this node's lease if it holds one (a standby takes over at once instead of waiting it
    /// out), then closes the store.
    pub async fn close(&self) {
        self.cluster.release().await;
        self.store.close().await;
    }

    pub fn policies(&self) -> Arc<PolicySet> {
        self.live.current()
    }

    /// Notifications still being delivered (attempts and backoff included).
    pub fn notifications_in_flight(&self) -> usize {
        self.notifier.in_flight()
    }

    /// The incident playbooks in force.
    pub fn playbooks(&self) -> Arc<crate::policy::PlaybookSet> {
        self.live.playbooks()
    }

    /// Loads the playbooks again: every good file is taken, each broken one is named (file and
    /// line) in the log and in the audit entry, so one typo cannot disable the other plans.
    pub async fn reload_playbooks(&self, actor: &Actor) -> Result<usize> {
        let dir = self.config.playbooks_path();
        let (fresh, problems) = crate::policy::PlaybookSet::load_dir_lenient(&dir);
        let mut entry = actor.entry("playbooks.reload", &dir.display().to_string());
        entry.detail.insert("playbooks".into(), fresh.len().into());
        if !problems.is_empty() {
            entry.outcome = Outcome::Error;
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            entry.detail.insert("problems".into(), list.into());
        }
        self.audit.record(entry).await?;
        let n = fresh.len();
        self.live.set_playbooks(fresh);
        Ok(n)
    }

    /// Loads the policy dir again; on any error the old set stays in force. Either way the
    /// attempt and its result are audited (actor `system`); an unrecorded reload does not happen.
    pub async fn reload_policies(&self, actor: &Actor) -> Result<usize> {
        let dir = self.config.policies_dir.display().to_string();
        match PolicySet::load_dir(&self.config.policies_dir) {
            Ok(fresh) => {
                let n = fresh.len();
                let mut entry = actor.entry("policy.reload", &dir);
                entry.detail.insert("policies".into(), n.into());
                self.audit.record(entry).await?;
                self.live.set_policies(fresh);
                Ok(n)
            }
            Err(e) => {
                let mut entry = actor.entry("policy.reload", &dir);
                entry.outcome = Outcome::Error;
                entry.detail.insert("error".into(), e.to_string().into());
                self.audit.record(entry).await?;
                Err(Error::invalid("policies", e.to_string()))
            }
        }
    }
}

/// The playbooks at start: the good ones load, each broken file is logged with its line.
fn load_playbooks(config: &Config) -> crate::policy::PlaybookSet {
    let dir = config.playbooks_path();
    if !dir.is_dir() {
        // Not an error: a vault may run before its playbooks are written; incidents need them.
        tracing::warn!(dir = %dir.display(), "no playbook directory: no incident can be opened until playbooks are there and the server reloads");
        return crate::policy::PlaybookSet::default();
    }
    let (set, problems) = crate::policy::PlaybookSet::load_dir_lenient(&dir);
    for p in problems {
        tracing::error!(problem = %p, "playbook not loaded");
    }
    set
}

fn create_private_dir(dir: &Path) -> Result<(), OpenError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| OpenError::Other(format!("cannot create {}: {e}", dir.display())))
}

/// An existing data dir may have been made by hand with the usual 0755; the store about to be
/// created in it holds password hashes and the audit log, so it becomes the vault's alone.
/// (Opening a store later refuses an open data dir instead of changing it.)
fn make_dir_private(dir: &Path) -> Result<(), OpenError> {
    use std::os::unix::fs::PermissionsExt;
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    let fail = |e: std::io::Error| OpenError::Other(format!("{}: {e}", dir.display()));
    let mode = std::fs::metadata(dir).map_err(fail)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        tracing::warn!(dir = %dir.display(), was = format!("{mode:o}"), "data dir set to 0700");
    }
    Ok(())
}

/// Reads the root key file (before the database is touched), opens the existing store and
/// unlocks its keyring; a wrong key closes the store again having written nothing.
pub async fn open_store(config: &Config) -> Result<(RootKey, Store, Keyring), OpenError> {
    let root = if seal::is_sealed_mode(config) {
        // Sealed mode: the offline commands (backup, keys rotate, audit verify) take a quorum
        // of shares on standard input instead of a key file.
        seal::root_from_stdin(config)?
    } else {
        RootKey::load_file(&config.root_key_path())?
    };
    let (store, keys) = open_store_with(config, &root).await?;
    Ok((root, store, keys))
}

/// Opens the existing store and unlocks its keyring with `root`.
pub(crate) async fn open_store_with(
    config: &Config,
    root: &RootKey,
) -> Result<(Store, Keyring), OpenError> {
    let location = config.store_location();
    // The data dir is the vault's alone on either backend (it holds the root key unless
    // `root_key_file` moves it); the SQLite backend checks it beside its database file.
    if matches!(location, StoreLocation::Postgres(_)) && config.data_dir.exists() {
        mediavault_store_sqlite::files::refuse_if_open(&config.data_dir, "700")?;
    }
    let store = open_backend(&location, false).await?;
    match unlock_checked(config, &store, root).await {
        Ok(keys) => Ok((store, keys)),
        Err(e) => {
            store.close().await;
            Err(e)
        }
    }
}

/// The one place that names a backend: opens (with `create`, creates) the store the
/// configuration's `database.url` names.
async fn open_backend(location: &StoreLocation, create: bool) -> Result<Store, OpenError> {
    Ok(match location {
        StoreLocation::Sqlite(path) => SqliteStore::open(path, create).await?,
        StoreLocation::Postgres(url) => PgStore::open(url.expose(), create).await?,
    })
}

/// The crypto suite the store was created with (`init` records it; a store from before the SM
/// option has no record and is `standard`).
pub async fn store_suite(store: &Store) -> Result<Suite, OpenError> {
    match store.meta_get(CRYPTO_SUITE_KEY).await? {
        None => Ok(Suite::Standard),
        Some(raw) => std::str::from_utf8(&raw)
            .ok()
            .and_then(Suite::parse)
            .ok_or_else(|| {
                OpenError::Other(format!(
                    "the store names a crypto suite this version does not know ({:?}); use the mediavault version that created it",
                    String::from_utf8_lossy(&raw)
                ))
            }),
    }
}

/// Unwraps the keyring and MAC master with the root key, in the store's suite. A configured
/// `crypto.suite` that is not the store's stops here: the operator believes the vault runs a
/// suite it does not (and the store's is the one every record depends on).
pub async fn unlock_checked(
    config: &Config,
    store: &Store,
    root: &RootKey,
) -> Result<Keyring, OpenError> {
    let suite = store_suite(store).await?;
    if let Some(configured) = config.crypto.suite
        && configured != suite
    {
        return Err(OpenError::Other(format!(
            "crypto.suite is \"{configured}\" in the configuration, but this store was created with the \"{suite}\" suite ({}); a suite is chosen once, at init. Remove crypto.suite or set it to \"{suite}\"",
            suite.describe()
        )));
    }
    unlock_in(store, root, suite).await
}

/// Unwraps the keyring and MAC master with the root key, in the store's suite.
pub async fn unlock(store: &Store, root: &RootKey) -> Result<Keyring, OpenError> {
    unlock_in(store, root, store_suite(store).await?).await
}

async fn unlock_in(store: &Store, root: &RootKey, suite: Suite) -> Result<Keyring, OpenError> {
    let wrapped = store.keyring_terms().await?;
    if wrapped.is_empty() {
        return Err(OpenError::Other(
            "the store has no keyring; it was not initialised".into(),
        ));
    }
    let mut terms = Vec::with_capacity(wrapped.len());
    for (term, blob) in wrapped {
        terms.push((term, root.unwrap(suite, &term_label(term), &blob)?));
    }
    let mac_wrapped = store
        .meta_get(MAC_MASTER_KEY)
        .await?
        .ok_or_else(|| OpenError::Other("the store has no MAC master key".into()))?;
    let mac = root.unwrap(suite, MAC_MASTER_LABEL, &mac_wrapped)?;
    Ok(Keyring::new(suite, terms, &mac)?)
}

/// The keyring terms and MAC master as they are stored, unwrapped with `old` and wrapped again
/// with `new` (in the store's suite): what a root-key rotation commits (`keyring_rewrap`), in
/// either mode.
pub(crate) async fn rewrapped_keyring(
    store: &Store,
    old: &RootKey,
    new: &RootKey,
) -> anyhow::Result<(Vec<(u32, Vec<u8>)>, Vec<u8>)> {
    let suite = store_suite(store).await?;
    let mut terms = Vec::new();
    for (term, wrapped) in store.keyring_terms().await? {
        let key = old.unwrap(suite, &term_label(term), &wrapped)?;
        terms.push((term, new.wrap(suite, &term_label(term), &key)?));
    }
    let mac_wrapped = store
        .meta_get(MAC_MASTER_KEY)
        .await?
        .ok_or_else(|| anyhow::anyhow!("store has no MAC master"))?;
    let mac = old.unwrap(suite, MAC_MASTER_LABEL, &mac_wrapped)?;
    Ok((terms, new.wrap(suite, MAC_MASTER_LABEL, &mac)?))
}
