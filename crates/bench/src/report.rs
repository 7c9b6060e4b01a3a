//! What a run reports: each scenario's figures, the ratios to the baselines of the same run, the
//! targets they are judged against, and the table printed when `--json` is not asked for.

use std::time::Duration;

use serde::Serialize;

use super::BenchArgs;
use super::sched::Scheduling;

/// One measured scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    /// Requests (or, for verification, entries) per second.
    pub per_second: f64,
    pub unit: &'static str,
    pub count: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU time per request over the measured part of a load scenario, in µs: the vault
    /// process's, and this process's (the load generator and the fake platforms). `None` for
    /// scenarios that are not a load, or where /proc cannot tell.
    pub cpu_us: Option<CpuPerRequest>,
    /// Where the threads' wall time went over the measured part of a load scenario (see
    /// [`crate::sched`]); `None` for the others, or where the kernel cannot tell.
    pub scheduling: Option<Scheduling>,
}

/// A path and its baseline measured side by side in alternating one-second slices (see
/// `load::interleaved`): the ratio the two targets are judged on.
#[derive(Debug, Clone, Serialize)]
pub struct Interleaved {
    pub what: &'static str,
    /// Slices of each, and each slice's measured seconds (after its own warm-up).
    pub slices: usize,
    pub slice_seconds: f64,
    pub path_count: u64,
    pub path_seconds: f64,
    pub baseline_count: u64,
    pub baseline_seconds: f64,
    pub errors: u64,
    /// Each pair of slices' own ratio, in the order run.
    pub slice_ratios: Vec<f64>,
    /// CPU time per request over all the slices (None where /proc could not tell for one).
    pub path_cpu_us: Option<CpuPerRequest>,
    pub baseline_cpu_us: Option<CpuPerRequest>,
}

impl Interleaved {
    fn rate(count: u64, seconds: f64) -> f64 {
        if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        }
    }

    pub fn path_per_second(&self) -> f64 {
        Self::rate(self.path_count, self.path_seconds)
    }

    pub fn baseline_per_second(&self) -> f64 {
        Self::rate(self.baseline_count, self.baseline_seconds)
    }

    /// The path's rate over the baseline's, each over all its slices; 0 with errors (a refused
    /// request is not a served one).
    pub fn ratio(&self) -> f64 {
        let b = self.baseline_per_second();
        if b > 0.0 && self.errors == 0 {
            self.path_per_second() / b
        } else {
            0.0
        }
    }
}

/// Where one request's CPU time went (see [`Scenario::cpu_us`]).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuPerRequest {
    pub vault: f64,
    pub bench: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// `sqlite` or `postgresql`: the store of the vault under test.
    pub backend: &'static str,
    /// What the proxy adds to a platform call that takes 50 ms, at 1 and 8 connections:
    /// (connections, p50 ms, p99 ms), proxied minus direct (negative where the direct run's own
    /// percentile was the longer; the table says so in words).
    pub proxy_added_ms: Vec<(usize, f64, f64)>,
    pub connections: usize,
    pub duration_seconds: f64,
    pub scenarios: Vec<Scenario>,
    /// Each from the scenarios above, run one after the other.
    pub ratio_token_to_healthz: f64,
    pub ratio_proxy_to_direct: f64,
    /// The same two ratios side by side (what the targets are judged on).
    pub side_by_side: Vec<Interleaved>,
    pub startup_ms: f64,
    pub rss_idle_mib: f64,
    pub rss_after_load_mib: f64,
    pub targets: Vec<Target>,
    /// The cores this machine offers the run (the vault, the load generator and the fakes share
    /// them).
    pub cores: usize,
    /// What those cores allow the two paths judged against a baseline, from the CPU time each
    /// request took.
    pub cpu_limits: Vec<CpuLimit>,
}

/// The CPU arithmetic of one path against its baseline: the rate its target asks for, the cores
/// that rate needs at the CPU time a request took here (the vault's and the load's, as they share
/// the machine in the run), and the best ratio to the measured baseline that all the cores could
/// give if they ran nothing but this path.
#[derive(Debug, Serialize)]
pub struct CpuLimit {
    pub what: &'static str,
    pub cpu_us: CpuPerRequest,
    pub baseline_cpu_us: CpuPerRequest,
    pub target_per_second: f64,
    pub cores_needed: f64,
    pub ceiling_ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub what: &'static str,
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

/// The report of a run: the ratios to the same run's baselines and each target, met or not.
pub(super) fn build(
    args: &BenchArgs,
    scenarios: Vec<Scenario>,
    side_by_side: Vec<Interleaved>,
    startup: Duration,
    rss_idle: f64,
    rss_after: f64,
) -> Report {
    let rate = |prefix: &str| {
        scenarios
            .iter()
            .find(|s| s.name.starts_with(prefix))
            .map_or(0.0, |s| s.per_second)
    };
    let p99 = scenarios
        .iter()
        .find(|s| s.name.starts_with("2 "))
        .and_then(|s| s.p99_ms)
        .unwrap_or(f64::INFINITY);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let r2 = ratio(rate("2 "), rate("1 "));
    let r3 = ratio(rate("3 "), rate("3b "));
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let cpu = |prefix: &str| {
        scenarios
            .iter()
            .find(|s| s.name.starts_with(prefix))
            .and_then(|s| s.cpu_us)
    };
    // From the side-by-side slices where measured (the CPU costs and the baseline's rate of the
    // same seconds as the judged ratio), else from the scenarios.
    let limit = |what, path: &str, baseline: &str, goal: f64| {
        let pair = side_by_side.iter().find(|i| i.what == what);
        let (cpu_us, baseline_cpu_us, baseline_rate) = match pair {
            Some(i) => (i.path_cpu_us?, i.baseline_cpu_us?, i.baseline_per_second()),
            None => (cpu(path)?, cpu(baseline)?, rate(baseline)),
        };
        let per = cpu_us.vault + cpu_us.bench;
        let target_per_second = goal * baseline_rate;
        (per > 0.0).then(|| CpuLimit {
            what,
            cpu_us,
            baseline_cpu_us,
            target_per_second,
            cores_needed: target_per_second * per / 1e6,
            ceiling_ratio: ratio(cores as f64 * 1e6 / per, baseline_rate),
        })
    };
    let cpu_limits: Vec<CpuLimit> = [
        limit("token introspection / healthz", "2 ", "1 ", 0.5),
        limit("proxied / direct draft/add", "3 ", "3b ", 0.4),
    ]
    .into_iter()
    .flatten()
    .collect();
    let beside = |what: &str, measured: f64| {
        cpu_limits.iter().find(|l| l.what == what).map_or_else(
            || format!("{measured:.2}"),
            |l| format!("{measured:.2} (CPU {:.2})", l.ceiling_ratio),
        )
    };
    // Judged side by side where that was measured, else on the scenarios run one after the other.
    let judged = |what: &str, sequential: f64| {
        side_by_side
            .iter()
            .find(|i| i.what == what)
            .map_or(sequential, Interleaved::ratio)
    };
    let (j2, j3) = (
        judged("token introspection / healthz", r2),
        judged("proxied / direct draft/add", r3),
    );
    let startup_ms = startup.as_secs_f64() * 1000.0;
    // The slowest filtered view's p99 (scenarios 6a-6h).
    let filters_p99 = scenarios
        .iter()
        .filter(|s| s.name.starts_with('6'))
        .filter_map(|s| s.p99_ms)
        .fold(None, |worst: Option<f64>, p| {
            Some(worst.map_or(p, |w| w.max(p)))
        });
    let filter_errors: u64 = scenarios
        .iter()
        .filter(|s| s.name.starts_with('6'))
        .map(|s| s.errors)
        .sum();
    let t = |what, goal: &str, measured: String, met| Target {
        what,
        goal: goal.to_owned(),
        measured,
        met,
    };
    let targets = vec![
        t(
            "token introspection / healthz",
            ">= 0.50",
            beside("token introspection / healthz", j2),
            j2 >= 0.5,
        ),
        t(
            "token introspection p99",
            "< 10 ms",
            format!("{p99:.1} ms"),
            p99 < 10.0,
        ),
        t(
            "proxied / direct draft/add",
            ">= 0.40",
            beside("proxied / direct draft/add", j3),
            j3 >= 0.4,
        ),
        t(
            "TOTP checkouts",
            ">= 2000/s",
            format!("{:.0}/s", rate("4 ")),
            rate("4 ") >= 2000.0,
        ),
        t(
            "audit verify (API)",
            ">= 1,000,000 entries/s",
            format!("{:.0}/s", rate("5 ")),
            rate("5 ") >= 1e6,
        ),
        t(
            "audit verify (CLI)",
            ">= 1,000,000 entries/s",
            format!("{:.0}/s", rate("5b ")),
            rate("5b ") >= 1e6,
        ),
        t(
            "audit filters p99 (slowest view)",
            "< 200 ms",
            filters_p99.map_or_else(|| "-".to_owned(), |p| format!("{p:.1} ms")),
            filters_p99.is_some_and(|p| p < 200.0) && filter_errors == 0,
        ),
        t(
            "resident memory after load",
            "< 40 MiB",
            format!("{rss_after:.1} MiB"),
            rss_after < 40.0,
        ),
        t(
            "start-up to first answer",
            "< 200 ms",
            format!("{startup_ms:.1} ms"),
            startup_ms < 200.0,
        ),
    ];
    let proxy_added_ms = [1, 8]
        .into_iter()
        .filter_map(|conns| {
            let find = |prefix: String| scenarios.iter().find(|s| s.name.starts_with(&prefix));
            let proxied = find(format!("7 proxied draft/add, {conns} conn"))?;
            let direct = find(format!("7b direct draft/add, {conns} conn"))?;
            Some((
                conns,
                proxied.p50_ms? - direct.p50_ms?,
                proxied.p99_ms? - direct.p99_ms?,
            ))
        })
        .collect();
    Report {
        proxy_added_ms,
        backend: if args.database_url.is_some() {
            "postgresql"
        } else {
            "sqlite"
        },
        connections: args.connections,
        duration_seconds: args.duration,
        scenarios,
        ratio_token_to_healthz: r2,
        ratio_proxy_to_direct: r3,
        side_by_side,
        startup_ms,
        rss_idle_mib: rss_idle,
        rss_after_load_mib: rss_after,
        targets,
        cores,
        cpu_limits,
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// The readable form of a report.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "mediavault bench: {} connections, {:.1} s per load scenario, plain HTTP on loopback, store on {}\n\n",
        r.connections, r.duration_seconds, r.backend
    );
    s.push_str(&format!(
        "{:<46} {:>12} {:>10} {:>10} {:>9} {:>8}\n",
        "scenario", "rate", "p50 ms", "p99 ms", "count", "errors"
    ));
    for sc in &r.scenarios {
        let rate = format!("{:.0} {}", sc.per_second, sc.unit.trim_end_matches("/s"));
        s.push_str(&format!(
            "{:<46} {:>12} {:>10} {:>10} {:>9} {:>8}\n",
            sc.name,
            rate,
            ms(sc.p50_ms),
            ms(sc.p99_ms),
            sc.count,
            sc.errors
        ));
    }
    s.push_str("(rates are per second; for 5 and 5b p50 is the whole run's time, 5b including the process start)\n\n");
    for (conns, p50, p99) in &r.proxy_added_ms {
        // A difference of two percentiles from two runs: when the direct run had the longer tail
        // (one slow outlier is enough at these counts), there is nothing the proxy measurably
        // added at p99, and a negative figure would read as the proxy saving time.
        let at_p99 = if *p99 >= 0.0 {
            format!("{p99:.2} ms at p99")
        } else {
            format!(
                "nothing measurable at p99 (the direct run's p99 was {:.2} ms longer)",
                -p99
            )
        };
        s.push_str(&format!(
            "the proxy adds {p50:.2} ms at p50, {at_p99} to a 50 ms platform call, {conns} connection(s) (7 minus 7b)\n"
        ));
    }
    s.push_str(&format!(
        "start-up {:.1} ms (process start to first answer); resident memory of the vault process {:.1} MiB idle, {:.1} MiB after load\n\n",
        r.startup_ms, r.rss_idle_mib, r.rss_after_load_mib
    ));
    for i in &r.side_by_side {
        let (lo, hi) = i
            .slice_ratios
            .iter()
            .fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| {
                (lo.min(*r), hi.max(*r))
            });
        let sequential = if i.what.starts_with("token") {
            r.ratio_token_to_healthz
        } else {
            r.ratio_proxy_to_direct
        };
        s.push_str(&format!(
            "{} side by side, {} slices of {:.1} s of each in turn: {:.0}/s against {:.0}/s, {:.2} \
             (slices {:.2}-{:.2}{}; one after the other above: {:.2})\n",
            i.what,
            i.slices,
            i.slice_seconds,
            i.path_per_second(),
            i.baseline_per_second(),
            i.ratio(),
            if lo.is_finite() { lo } else { 0.0 },
            hi,
            if i.errors > 0 {
                format!(", {} errors", i.errors)
            } else {
                String::new()
            },
            sequential,
        ));
    }
    if !r.side_by_side.is_empty() {
        s.push('\n');
    }
    for l in &r.cpu_limits {
        s.push_str(&format!(
            "{}: a request took {:.0} µs of the vault's CPU and {:.0} µs of the load's (generator and fakes;\n  \
             the baseline's {:.0} + {:.0} µs); the target, {:.0}/s, needs {:.2} of this machine's {} cores,\n  \
             and the cores alone allow a ratio of {:.2}\n",
            l.what,
            l.cpu_us.vault,
            l.cpu_us.bench,
            l.baseline_cpu_us.vault,
            l.baseline_cpu_us.bench,
            l.target_per_second,
            l.cores_needed,
            r.cores,
            l.ceiling_ratio
        ));
    }
    if !r.cpu_limits.is_empty() {
        s.push('\n');
    }
    s.push_str(&scheduling(r));
    s.push_str(&format!(
        "{:<32} {:>24} {:>18}  met\n",
        "target", "goal", "measured"
    ));
    for t in &r.targets {
        s.push_str(&format!(
            "{:<32} {:>24} {:>18}  {}\n",
            t.what,
            t.goal,
            t.measured,
            if t.met { "yes" } else { "NO" }
        ));
    }
    s
}

/// Where the threads' time went in the four scenarios the two ratios are made of (empty where the
/// kernel keeps no per-thread scheduler statistics).
fn scheduling(r: &Report) -> String {
    let judged = ["1 ", "2 ", "3 ", "3b "];
    let mut s = String::new();
    for sc in r
        .scenarios
        .iter()
        .filter(|sc| judged.iter().any(|p| sc.name.starts_with(p)))
    {
        let Some(sched) = &sc.scheduling else {
            continue;
        };
        if s.is_empty() {
            s.push_str("each busy thread's wall time: running / waiting for a core / asleep\n");
        }
        let pct =
            |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.0} %", v * 100.0));
        s.push_str(&format!(
            "  {}: machine idle {} (I/O wait {})\n",
            sc.name.trim_end(),
            pct(sched.machine_idle),
            pct(sched.machine_io_wait)
        ));
        for g in &sched.groups {
            let who = format!("{} {} ×{}", g.process, g.name, g.threads);
            s.push_str(&format!(
                "    {who:<36} {:>4.0} % / {:>4.0} % / {:>4.0} %\n",
                g.running * 100.0,
                g.waiting_for_core * 100.0,
                g.off_core * 100.0
            ));
        }
    }
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::{Report, table};

    fn report(proxy_added_ms: Vec<(usize, f64, f64)>) -> Report {
        Report {
            backend: "sqlite",
            proxy_added_ms,
            connections: 64,
            duration_seconds: 5.0,
            scenarios: Vec::new(),
            ratio_token_to_healthz: 0.0,
            ratio_proxy_to_direct: 0.0,
            side_by_side: Vec::new(),
            startup_ms: 0.0,
            rss_idle_mib: 0.0,
            rss_after_load_mib: 0.0,
            targets: Vec::new(),
            cores: 2,
            cpu_limits: Vec::new(),
        }
    }

    /// A direct run with the longer tail does not make the proxy look as if it saved time.
    #[test]
    fn the_proxy_never_adds_a_negative_time() {
        let t = table(&report(vec![(1, 2.21, 4.27), (8, 2.59, -37.48)]));
        assert!(
            t.contains(
                "adds 2.21 ms at p50, 4.27 ms at p99 to a 50 ms platform call, 1 connection"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "adds 2.59 ms at p50, nothing measurable at p99 (the direct run's p99 was 37.48 ms longer)"
            ),
            "{t}"
        );
        assert!(!t.contains("-37.48"), "{t}");
    }
}
