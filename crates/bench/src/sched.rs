//! Where the threads' wall time went during a scenario: running, waiting for a core, or off the
//! cores (asleep: waiting for work, a lock, a socket or the disk), per thread of the vault and of
//! the load generator, and how much of the machine sat idle meanwhile.
//!
//! The CPU time per request (which the report prints beside each ratio) says what a path costs;
//! this says why a rate stays under what that cost allows. On a machine whose cores the vault
//! shares with its own load, a request that waits for the audit writer's durable commit crosses
//! threads several times (the load's, a runtime worker's, the writer's and back), each crossing
//! a wake-up that may wait for a core, and the commit's `fsync` holds every request of its batch:
//! the rate can then stay under what the CPU cost allows while part of the machine sits unused.
//!
//! Linux only: the kernel's per-thread scheduler statistics (`/proc/<pid>/task/<tid>/schedstat`:
//! nanoseconds on a core, nanoseconds runnable but waiting for one, turns) and `/proc/stat`. Where
//! either cannot be read, there is no such figure and the report leaves it out.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

/// One thread's counters at one moment.
#[derive(Debug, Clone)]
struct ThreadCounters {
    name: String,
    on_core_ns: u64,
    waiting_ns: u64,
}

/// The counters of every thread of the two processes and of the machine, at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    /// (process label, thread id) → counters.
    threads: BTreeMap<(&'static str, u32), ThreadCounters>,
    /// The machine's `cpu` line of /proc/stat: (all ticks, idle ticks, I/O-wait ticks).
    machine: Option<(u64, u64, u64)>,
}

/// One group of threads (a process's threads of one name), over a scenario: each thread's share
/// of the wall time, averaged over the group.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadGroup {
    /// `vault` or `load` (the load generator and the fake platforms, this process).
    pub process: &'static str,
    /// The thread name as the kernel keeps it (cut at 15 bytes).
    pub name: String,
    pub threads: usize,
    pub running: f64,
    pub waiting_for_core: f64,
    /// Neither running nor runnable: asleep until something wakes the thread.
    pub off_core: f64,
}

/// The scheduling figures of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scheduling {
    /// Busy groups only (a thread that ran under 2 % of the time is left out: idle pools).
    pub groups: Vec<ThreadGroup>,
    /// The share of the machine's CPU time that no thread used: idle, waiting for I/O included
    /// (the kernel counts the two apart; a core whose threads all wait for the disk is as unused
    /// as one with nothing to run).
    pub machine_idle: Option<f64>,
    /// The part of [`Self::machine_idle`] the kernel counted as waiting for I/O.
    pub machine_io_wait: Option<f64>,
}

fn threads_of(
    label: &'static str,
    pid: u32,
    into: &mut BTreeMap<(&'static str, u32), ThreadCounters>,
) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in dir.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        let path = task.path();
        let (Ok(stat), Ok(name)) = (
            std::fs::read_to_string(path.join("schedstat")),
            std::fs::read_to_string(path.join("comm")),
        ) else {
            continue;
        };
        let mut fields = stat.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(on_core_ns)), Some(Ok(waiting_ns))) = (fields.next(), fields.next()) {
            into.insert(
                (label, tid),
                ThreadCounters {
                    name: name.trim().to_owned(),
                    on_core_ns,
                    waiting_ns,
                },
            );
        }
    }
}

fn machine() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let (idle, io_wait) = (*ticks.get(3)?, *ticks.get(4)?);
    Some((ticks.iter().sum(), idle, io_wait))
}

impl Snapshot {
    /// The counters now, of the vault process `vault` and of this process.
    pub fn take(vault: u32) -> Self {
        let mut threads = BTreeMap::new();
        threads_of("vault", vault, &mut threads);
        threads_of("load", std::process::id(), &mut threads);
        Self {
            at: Instant::now(),
            threads,
            machine: machine(),
        }
    }

    /// What happened between `self` and `later`; `None` where nothing could be read.
    pub fn until(&self, later: &Snapshot) -> Option<Scheduling> {
        let wall_ns = later.at.checked_duration_since(self.at)?.as_nanos() as f64;
        if wall_ns <= 0.0 {
            return None;
        }
        // (process, name) → (threads, running, waiting) summed over the group's threads.
        let mut sums: BTreeMap<(&'static str, String), (usize, f64, f64)> = BTreeMap::new();
        for (key, to) in &later.threads {
            // A thread that started or ended within the window has no whole window to show.
            let Some(from) = self.threads.get(key) else {
                continue;
            };
            let running = to.on_core_ns.saturating_sub(from.on_core_ns) as f64 / wall_ns;
            let waiting = to.waiting_ns.saturating_sub(from.waiting_ns) as f64 / wall_ns;
            if running < 0.02 {
                continue;
            }
            let sum = sums.entry((key.0, to.name.clone())).or_default();
            *sum = (sum.0 + 1, sum.1 + running, sum.2 + waiting);
        }
        if sums.is_empty() {
            return None;
        }
        let groups = sums
            .into_iter()
            .map(|((process, name), (threads, running, waiting))| {
                let n = threads as f64;
                let (mut running, mut waiting_for_core) = (running / n, waiting / n);
                // The counters and the clock are read a moment apart: a thread busy the whole
                // window can show a hair over it, which is that moment, not time of its own.
                let busy = running + waiting_for_core;
                if busy > 1.0 {
                    running /= busy;
                    waiting_for_core /= busy;
                }
                ThreadGroup {
                    process,
                    name,
                    threads,
                    running,
                    waiting_for_core,
                    off_core: (1.0 - running - waiting_for_core).max(0.0),
                }
            })
            .collect();
        let machine = self.machine.zip(later.machine).and_then(|(a, b)| {
            let all = b.0.checked_sub(a.0).filter(|t| *t > 0)? as f64;
            let io_wait = b.2.saturating_sub(a.2) as f64 / all;
            Some((b.1.saturating_sub(a.1) as f64 / all + io_wait, io_wait))
        });
        Some(Scheduling {
            groups,
            machine_idle: machine.map(|m| m.0),
            machine_io_wait: machine.map(|m| m.1),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::Snapshot;

    /// A thread that spins for the whole window shows as running (or waiting for a core when
    /// the machine is busy) and hardly ever as off the cores; one that sleeps shows as off them.
    #[test]
    fn a_spinning_thread_runs_and_a_sleeping_one_does_not() {
        let me = std::process::id();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spin = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::Builder::new()
                .name("bench-spinner".into())
                .spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                })
                .unwrap()
        };
        let sleeper = std::thread::Builder::new()
            .name("bench-sleeper".into())
            .spawn(|| std::thread::sleep(std::time::Duration::from_millis(600)))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let from = Snapshot::take(me);
        std::thread::sleep(std::time::Duration::from_millis(400));
        let to = Snapshot::take(me);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spin.join().unwrap();
        sleeper.join().unwrap();
        let Some(s) = from.until(&to) else {
            // No schedstat on this kernel: the report leaves the figures out, as here.
            assert!(std::fs::read_to_string(format!("/proc/{me}/schedstat")).is_err());
            return;
        };
        // This process is both labels' pid here; the spinner shows under both.
        let spinner = s
            .groups
            .iter()
            .find(|g| g.name == "bench-spinner")
            .expect("the spinning thread is in the report");
        assert!(
            spinner.running + spinner.waiting_for_core > 0.9,
            "{spinner:?}"
        );
        assert!(spinner.off_core < 0.1, "{spinner:?}");
        assert!(
            s.groups.iter().all(|g| g.name != "bench-sleeper"),
            "a sleeping thread is not a busy one: {:?}",
            s.groups
        );
        let idle = s
            .machine_idle
            .expect("/proc/stat is read where schedstat is");
        let io_wait = s.machine_io_wait.expect("read with the idle time");
        assert!((0.0..=1.0).contains(&idle), "{s:?}");
        assert!(io_wait <= idle, "I/O wait is part of the idle time: {s:?}");
    }
}
