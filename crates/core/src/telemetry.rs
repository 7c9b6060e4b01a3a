//! `GET /metrics`: Prometheus text through `prometheus-client`, one registry per vault (no global
//! state, so tests running several vaults in one process do not mix). Labels are route templates,
//! methods, statuses, platforms, platform error codes and event kinds: never a token, a username
//! or anything a caller typed.

use std::net::IpAddr;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route template (`/api/v1/checkouts/{id}`), or `unmatched`.
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlatformLabels {
    pub platform: &'static str,
    /// The platform's errcode (`0` for success), or `transport` when no answer came.
    pub code: String,
}

/// One account's WeChat token budget: `kind` is `force_refresh` or `classic_token`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub account: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The histograms the audit writer feeds; cheap clones of shared cells.
#[derive(Clone, Debug)]
pub struct AuditStats {
    pub commit_seconds: Histogram,
    pub batch_size: Histogram,
}

impl Default for AuditStats {
    fn default() -> Self {
        Self {
            commit_seconds: latency_histogram(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
        }
    }
}

/// Every metric of one vault.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteLabels, Counter>,
    pub request_seconds: HistogramFamily<RouteLabels>,
    pub rate_limited: Family<RouteOnly, Counter>,
    pub platform_calls: Family<PlatformLabels, Counter>,
    pub platform_errors: Family<PlatformLabels, Counter>,
    pub security_events: Family<KindLabels, Counter>,
    pub audit_queue_depth: Gauge,
    pub live_checkouts: Gauge,
    pub indexed_tokens: Gauge,
    /// What is left today of each WeChat account's token fetches (WeChat's daily limits).
    pub wechat_budget_left: Family<BudgetLabels, Gauge>,
    /// Rendering reuses one buffer.
    buf: Mutex<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(audit: &AuditStats) -> Self {
        let mut registry = Registry::with_prefix("mediavault");
        let requests = Family::<RouteLabels, Counter>::default();
        let request_seconds: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        let rate_limited = Family::<RouteOnly, Counter>::default();
        let platform_calls = Family::<PlatformLabels, Counter>::default();
        let platform_errors = Family::<PlatformLabels, Counter>::default();
        let security_events = Family::<KindLabels, Counter>::default();
        let (audit_queue_depth, live_checkouts, indexed_tokens) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        let wechat_budget_left = Family::<BudgetLabels, Gauge>::default();
        registry.register(
            "wechat_token_budget_left",
            "Token fetches left today per WeChat account (force_refresh: of 20; classic_token: of 2,000), as this process has spent them",
            wechat_budget_left.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, audit commit included",
            request_seconds.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit (429), by route",
            rate_limited.clone(),
        );
        registry.register(
            "platform_calls",
            "Calls forwarded to a platform, by platform and errcode",
            platform_calls.clone(),
        );
        registry.register(
            "platform_errors",
            "Forwarded calls that failed, by platform and errcode (or transport)",
            platform_errors.clone(),
        );
        registry.register(
            "security_events",
            "Security events (canary, cancelled token, failed heartbeat), by kind",
            security_events.clone(),
        );
        registry.register(
            "audit_queue_depth",
            "Audit jobs waiting for the writer",
            audit_queue_depth.clone(),
        );
        registry.register(
            "audit_commit_duration_seconds",
            "Time of one audit batch transaction, commit (fsync) included",
            audit.commit_seconds.clone(),
        );
        registry.register(
            "audit_batch_size",
            "Entries committed per audit batch",
            audit.batch_size.clone(),
        );
        registry.register(
            "live_checkouts",
            "Checkouts with a live token, as the store says at scrape time",
            live_checkouts.clone(),
        );
        registry.register(
            "indexed_tokens",
            "Live tokens held by the in-memory token index",
            indexed_tokens.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            rate_limited,
            platform_calls,
            platform_errors,
            security_events,
            audit_queue_depth,
            live_checkouts,
            indexed_tokens,
            wechat_budget_left,
            buf: Mutex::new(String::with_capacity(16 * 1024)),
        }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let labels = RouteLabels {
            route: route.to_owned(),
            method: method_label(method),
            status,
        };
        self.request_seconds.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
        if status == 429 {
            self.rate_limited
                .get_or_create(&RouteOnly {
                    route: route.to_owned(),
                })
                .inc();
        }
    }

    /// Counts one forwarded platform call; `code` is the errcode, None when no answer came.
    pub fn platform_call(&self, platform: &'static str, code: Option<i64>, failed: bool) {
        let labels = PlatformLabels {
            platform,
            code: code.map_or_else(|| "transport".to_owned(), |c| c.to_string()),
        };
        self.platform_calls.get_or_create(&labels).inc();
        if failed {
            self.platform_errors.get_or_create(&labels).inc();
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        buf.clear();
        prometheus_client::encoding::text::encode(&mut *buf, &self.registry)?;
        Ok(buf.clone())
    }
}

/// Methods as a closed set, so a made-up method cannot grow the label space.
fn method_label(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Whether `/metrics` may answer: to the vault's own host (loopback, IPv4-mapped included), or to
/// a caller with an admin session. No proxy header is trusted for this.
pub fn metrics_allowed(peer: Option<IpAddr>, admin_session: bool) -> bool {
    admin_session || peer.is_some_and(|ip| ip.to_canonical().is_loopback())
}

/// Logs to standard error as `[log]` says (`MEDIAVAULT_LOG` overrides the filter); once per
/// process, later calls change nothing.
pub fn init_logging(config: &crate::config::Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MEDIAVAULT_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{},sqlx=warn,hyper=warn", config.log.level)));
    // Colour codes only for a person at a terminal, never into the journal, a file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_answer_loopback_or_an_admin_only() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(metrics_allowed(ip("127.0.0.1"), false));
        assert!(metrics_allowed(ip("127.8.9.10"), false));
        assert!(metrics_allowed(ip("::1"), false));
        assert!(metrics_allowed(ip("::ffff:127.0.0.1"), false));
        assert!(!metrics_allowed(ip("10.20.0.5"), false));
        assert!(!metrics_allowed(ip("::ffff:10.20.0.5"), false));
        assert!(!metrics_allowed(ip("2001:db8::1"), false));
        assert!(!metrics_allowed(None, false));
        assert!(metrics_allowed(ip("10.20.0.5"), true));
    }

    #[test]
    fn render_has_the_families_and_no_caller_text() {
        let m = Metrics::new(&AuditStats::default());
        m.request("/api/v1/token", "GET", 200, 0.001);
        m.request("unmatched", "BREW", 429, 0.001);
        m.platform_call("wechat", Some(40001), true);
        let text = m.render().unwrap();
        for needle in [
            "mediavault_http_requests_total{route=\"/api/v1/token\",method=\"GET\",status=\"200\"} 1",
            "method=\"other\"",
            "mediavault_rate_limited_total{route=\"unmatched\"} 1",
            "mediavault_platform_errors_total{platform=\"wechat\",code=\"40001\"} 1",
            "mediavault_audit_commit_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
    }
}
