//! Issue 23: `mediavault bench` as an operator runs it: a short run end to end (the vault under
//! test as a process of its own, every scenario, the report), and the CPU arithmetic it prints
//! beside the two ratios judged against a baseline, and where the threads' time went, so a target
//! out of reach shows its limit.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_bench_run_reports_every_scenario_and_the_cpu_beside_each_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mediavault"))
        .args([
            "bench",
            "--connections",
            "2",
            "--duration",
            "0.3",
            "--operators",
            "4",
            "--audit-entries",
            "2000",
            "--json",
        ])
        // The bench's data dir goes under the temporary dir, and goes when it ends.
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scenarios = report["scenarios"].as_array().unwrap();
    let named = |prefix: &str| {
        scenarios
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no scenario {prefix} in {report}"))
    };
    for s in scenarios {
        assert_eq!(s["errors"], 0, "a scenario had errors: {s}");
        assert!(
            s["count"].as_u64().unwrap() > 0,
            "a scenario did nothing: {s}"
        );
    }
    // Verification walked the seeded log and the entries the run itself wrote.
    assert!(named("5 ")["count"].as_u64().unwrap() > 2000);
    // Each load scenario says where its CPU went: a token request costs the vault more than a
    // healthz, and the direct call costs the vault (nearly) nothing, the fake platform something.
    let cpu = |prefix: &str, side: &str| named(prefix)["cpu_us"][side].as_f64().unwrap();
    assert!(cpu("2 ", "vault") > cpu("1 ", "vault"), "{report}");
    assert!(cpu("3 ", "vault") > cpu("3b ", "vault"), "{report}");
    assert!(cpu("3b ", "bench") > 0.0, "{report}");
    // The two ratios come with what the cores allow, in the table's measured column too.
    let limits = report["cpu_limits"].as_array().unwrap();
    assert_eq!(limits.len(), 2, "{report}");
    for l in limits {
        assert!(l["cores_needed"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["ceiling_ratio"].as_f64().unwrap() > 0.0, "{l}");
    }
    let token = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["what"] == "token introspection / healthz")
        .unwrap();
    assert!(
        token["measured"].as_str().unwrap().contains("(CPU "),
        "{token}"
    );
    // The ratios are judged side by side: each path and its baseline in alternating slices,
    // every slice counted, and the targets' measured column is that ratio.
    let pairs = report["side_by_side"].as_array().unwrap();
    assert_eq!(pairs.len(), 2, "{report}");
    for p in pairs {
        assert_eq!(p["errors"], 0, "{p}");
        assert!(p["path_count"].as_u64().unwrap() > 0, "{p}");
        assert!(p["baseline_count"].as_u64().unwrap() > 0, "{p}");
        let slices = p["slices"].as_u64().unwrap();
        assert!(slices >= 2, "{p}");
        assert_eq!(
            p["slice_ratios"].as_array().unwrap().len() as u64,
            slices,
            "{p}"
        );
        let ratio = p["path_count"].as_f64().unwrap()
            / p["path_seconds"].as_f64().unwrap()
            / (p["baseline_count"].as_f64().unwrap() / p["baseline_seconds"].as_f64().unwrap());
        let target = report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["what"] == p["what"])
            .unwrap();
        assert!(
            target["measured"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{ratio:.2} ")),
            "{target} against {p}"
        );
    }
    // And where each busy thread's wall time went (where the kernel keeps scheduler statistics):
    // the vault's threads and the load's, each thread's three shares adding up to the whole.
    if std::path::Path::new("/proc/self/schedstat").exists() {
        let sched = &named("2 ")["scheduling"];
        let groups = sched["groups"].as_array().unwrap();
        for process in ["vault", "load"] {
            assert!(
                groups.iter().any(|g| g["process"] == process),
                "no busy {process} thread in {sched}"
            );
        }
        for g in groups {
            let share = |k: &str| g[k].as_f64().unwrap();
            assert!(share("running") >= 0.02, "{g}");
            let whole = share("running") + share("waiting_for_core") + share("off_core");
            assert!((0.99..=1.01).contains(&whole), "{g}");
        }
        let idle = sched["machine_idle"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&idle), "{sched}");
        assert!(
            sched["machine_io_wait"].as_f64().unwrap() <= idle,
            "{sched}"
        );
        assert!(
            named("4 ")["scheduling"].is_null(),
            "checkouts are not a timed load"
        );
    }
    // Nothing of the run is left behind.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
