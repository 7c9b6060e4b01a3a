//! Issue 13: the Debian package. Its metadata in Cargo.toml, the systemd unit's sandbox, the
//! maintainer scripts and the default configuration are checked here on every run; when CI has
//! built the package it names it in `MV_DEB_UNDER_TEST`, and the same checks run on the unit and
//! configuration inside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `Key=value` lines of a unit file by section; repeated keys keep every value in order.
fn unit(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let (k, v) = line.split_once('=').expect("Key=value");
        out.entry((section.clone(), k.trim().to_owned()))
            .or_default()
            .push(v.trim().to_owned());
    }
    out
}

fn check_unit(text: &str) {
    let u = unit(text);
    let one = |k: &str| -> String {
        let v = u
            .get(&("Service".to_owned(), k.to_owned()))
            .unwrap_or_else(|| panic!("[Service] {k} missing"));
        assert_eq!(v.len(), 1, "{k} is set more than once: {v:?}");
        v[0].clone()
    };
    assert_eq!(one("User"), "mediavault");
    assert_eq!(one("Group"), "mediavault");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ProtectHome"), "yes");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("CapabilityBoundingSet"), "", "no capability at all");
    assert_eq!(one("AmbientCapabilities"), "");
    assert_eq!(one("StateDirectory"), "mediavault");
    assert_eq!(one("StateDirectoryMode"), "0700");
    assert_eq!(
        one("ReadWritePaths"),
        "/var/lib/mediavault",
        "writable: the state dir only"
    );
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("StandardOutput"), "journal");
    assert_eq!(one("StandardError"), "journal");
    let exec = one("ExecStart");
    assert!(
        exec.starts_with("/usr/bin/mediavault --config /etc/mediavault/mediavault.toml")
            && exec.ends_with(" serve"),
        "{exec}"
    );
    for (section, key) in u.keys() {
        assert!(
            !(section == "Service"
                && (key == "ReadWriteDirectories" || key == "PermissionsStartOnly")),
            "{key} would widen the sandbox"
        );
    }
    assert!(u.contains_key(&("Install".to_owned(), "WantedBy".to_owned())));
}

fn check_config(path: &Path) {
    let config = mediavault::config::Config::load(Some(path))
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    assert_eq!(config.data_dir, Path::new("/var/lib/mediavault"));
    assert_eq!(config.policies_dir, Path::new("/etc/mediavault/policies"));
    assert!(config.tls.cert_file.starts_with("/etc/mediavault/"));
    assert!(!config.tls.plain_http);
}

#[test]
fn the_unit_file_is_sandboxed() {
    let text = std::fs::read_to_string(root().join("packaging/mediavault.service")).unwrap();
    check_unit(&text);
}

#[test]
fn the_default_config_loads_and_points_at_the_packaged_paths() {
    check_config(&root().join("packaging/mediavault.toml"));
}

#[test]
fn the_deb_metadata_builds_a_production_package_with_the_unit() {
    let cargo: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deb = &cargo["package"]["metadata"]["deb"];
    assert_eq!(
        deb["default-features"].as_bool(),
        Some(false),
        "the package leaves the fake platforms and `demo` out"
    );
    let assets: Vec<(String, String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            (
                a[0].as_str().unwrap().to_owned(),
                a[1].as_str().unwrap().to_owned(),
                a[2].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let has = |src: &str, dest: &str, mode: &str| {
        assert!(
            assets
                .iter()
                .any(|(s, d, m)| s == src && d == dest && m == mode),
            "asset {src} → {dest} ({mode}) missing: {assets:?}"
        )
    };
    has("target/release/mediavault", "usr/bin/", "755");
    has(
        "packaging/mediavault.toml",
        "etc/mediavault/mediavault.toml",
        "640",
    );
    has("policies/*.toml", "etc/mediavault/policies/", "640");
    has(
        "docs/deployment.md",
        "usr/share/doc/mediavault/deployment.md",
        "644",
    );
    for (src, _, _) in &assets {
        if !src.contains('*') && !src.starts_with("target/") {
            assert!(root().join(src).is_file(), "{src} does not exist");
        }
    }
    let conf: Vec<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(conf.contains(&"/etc/mediavault/mediavault.toml"));
    let units = &deb["systemd-units"];
    assert_eq!(units["unit-name"].as_str(), Some("mediavault"));
    let dir = root().join(units["unit-scripts"].as_str().unwrap());
    assert!(dir.join("mediavault.service").is_file());
    assert_eq!(
        units["start"].as_bool(),
        Some(false),
        "not started before `init`"
    );
    let scripts = root().join(deb["maintainer-scripts"].as_str().unwrap());
    let postinst = std::fs::read_to_string(scripts.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group") && postinst.contains("mediavault"));
    assert!(postinst.contains("-m 0700 /var/lib/mediavault"));
    assert!(postinst.contains("#DEBHELPER#"));
    let postrm = std::fs::read_to_string(scripts.join("postrm")).unwrap();
    assert!(
        !postrm.contains("rm -r /var/lib/mediavault\n") && !postrm.contains("rm -rf"),
        "purge keeps the data"
    );
}

/// Runs when CI has built the package: `MV_DEB_UNDER_TEST=target/debian/mediavault_….deb`.
#[test]
fn the_built_deb_carries_the_unit_and_config() {
    let Ok(deb) = std::env::var("MV_DEB_UNDER_TEST") else {
        eprintln!("MV_DEB_UNDER_TEST not set: the built package is checked in CI (.ci/run)");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "dpkg-deb -x {deb}");
    let unit = ["lib/systemd/system", "usr/lib/systemd/system"]
        .iter()
        .map(|d| out.path().join(d).join("mediavault.service"))
        .find(|p| p.is_file())
        .expect("the unit is in the package");
    check_unit(&std::fs::read_to_string(unit).unwrap());
    check_config(&out.path().join("etc/mediavault/mediavault.toml"));
    assert!(out.path().join("usr/bin/mediavault").is_file());
    assert!(
        out.path()
            .join("etc/mediavault/policies/playbooks")
            .is_dir()
    );
    let info = std::process::Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Package: mediavault"), "{info}");
    assert!(
        info.contains("postinst") && info.contains("conffiles"),
        "{info}"
    );
    // The production binary has no `demo`.
    let help = std::process::Command::new(out.path().join("usr/bin/mediavault"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let commands: Vec<&str> = help
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .collect();
    assert!(
        commands.contains(&"serve") && commands.contains(&"admin"),
        "{help}"
    );
    assert!(
        !commands.contains(&"demo") && !commands.contains(&"fake-platforms"),
        "{help}"
    );
}
