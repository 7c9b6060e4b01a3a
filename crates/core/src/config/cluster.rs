//! `[cluster]`: several `serve` processes on one database, one of them active (issue 22). Absent,
//! the vault is a single node and no write is fenced.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique among the nodes on the database: the lease, `/readyz` and the
    /// logs name it.
    pub node: String,
    /// Where the other nodes reach this one (`https://host:port`): a standby forwards requests
    /// to the active node's address.
    pub address: String,
    /// How long a lease lasts without renewal, by the database's clock. A node that cannot renew
    /// steps down after it; a standby takes over after it.
    #[serde(default = "lease_seconds")]
    pub lease_seconds: u64,
    /// How often the active node renews its lease (and a standby looks for a free one).
    #[serde(default = "renew_seconds")]
    pub renew_seconds: u64,
    /// The CA that signed the other nodes' server certificates, for forwarding over TLS; when not
    /// set, the system's roots.
    pub peer_ca_file: Option<PathBuf>,
}

fn lease_seconds() -> u64 {
    15
}

fn renew_seconds() -> u64 {
    5
}

impl ClusterConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.node.is_empty() || self.node.len() > 64 || !self.node.chars().all(name_ok) {
            return fail(format!(
                "cluster.node must be 1-64 letters, digits, '-', '_' or '.', got {:?}",
                self.node
            ));
        }
        if !(self.address.starts_with("https://") || self.address.starts_with("http://")) {
            return fail(format!(
                "cluster.address must be the http(s) URL other nodes reach this one at, got {:?}",
                self.address
            ));
        }
        if self.renew_seconds == 0 || self.renew_seconds * 2 > self.lease_seconds {
            return fail(format!(
                "cluster.renew_seconds ({}) must be at least 1 and at most half of cluster.lease_seconds ({}), so one missed renewal does not cost the lease",
                self.renew_seconds, self.lease_seconds
            ));
        }
        Ok(())
    }
}
