//! Loading, environment overrides and validation of the whole configuration.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn shipped_example_parses_to_the_defaults() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mediavault.example.toml");
    let c = Config::load_with_env(Some(&p), &[]).unwrap();
    let d = Config::default();
    assert_eq!(c.listen, d.listen);
    assert_eq!(c.rate_limits.login_burst, d.rate_limits.login_burst);
    assert_eq!(
        c.platforms.canary_interval_seconds,
        d.platforms.canary_interval_seconds
    );
    assert_eq!(
        (
            c.limits.header_read_timeout_seconds,
            c.limits.idle_timeout_seconds,
            c.limits.max_connections
        ),
        (
            d.limits.header_read_timeout_seconds,
            d.limits.idle_timeout_seconds,
            d.limits.max_connections
        )
    );
}

#[test]
fn defaults_are_valid() {
    let c = Config::load_with_env(None, &[]).unwrap();
    assert_eq!(c.lockout.max_failures, 5);
    assert_eq!(c.database_path(), PathBuf::from("./data/mediavault.db"));
}

#[test]
fn unknown_key_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        "listen = \"127.0.0.1:9000\"\n[tls]\nplain_htttp = true\n",
    )
    .unwrap();
    let err = Config::load_with_env(Some(&p), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.toml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("plain_htttp"), "{err}");
}

#[test]
fn connection_limits_are_checked() {
    let err = |pairs: &[(&str, &str)]| {
        Config::load_with_env(None, &env(pairs))
            .unwrap_err()
            .to_string()
    };
    let e = err(&[("MEDIAVAULT_LIMITS__HEADER_READ_TIMEOUT_SECONDS", "0")]);
    assert!(e.contains("limits.header_read_timeout_seconds"), "{e}");
    let e = err(&[("MEDIAVAULT_LIMITS__IDLE_TIMEOUT_SECONDS", "30")]);
    assert!(e.contains("limits.idle_timeout_seconds (30)"), "{e}");
    assert!(e.contains("request_timeout_seconds (30)"), "{e}");
    let e = err(&[("MEDIAVAULT_LIMITS__MAX_CONNECTIONS", "0")]);
    assert!(e.contains("limits.max_connections"), "{e}");
    let c = Config::load_with_env(
        None,
        &env(&[
            ("MEDIAVAULT_LIMITS__REQUEST_TIMEOUT_SECONDS", "1"),
            ("MEDIAVAULT_LIMITS__IDLE_TIMEOUT_SECONDS", "2"),
        ]),
    )
    .unwrap();
    assert_eq!(c.limits.idle_timeout_seconds, 2);
}

#[test]
fn environment_overrides_and_is_checked() {
    let c = Config::load_with_env(
        None,
        &env(&[
            ("MEDIAVAULT_LISTEN", "127.0.0.1:9999"),
            ("MEDIAVAULT_TLS__PLAIN_HTTP", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(c.listen.port(), 9999);
    assert!(c.tls.plain_http);
    // The CLI's own variables are not configuration keys.
    let c = Config::load_with_env(
        None,
        &env(&[
            ("MEDIAVAULT_ADMIN_PROFILE", "/home/a/admin.toml"),
            ("MEDIAVAULT_CONFIG", "/etc/mediavault/mediavault.toml"),
            ("MEDIAVAULT_LOG", "debug"),
        ]),
    );
    assert!(c.is_ok(), "{:?}", c.err().map(|e| e.to_string()));
    let err = Config::load_with_env(None, &env(&[("MEDIAVAULT_LISTN", "x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("listn"), "{err}");
    let err = Config::load_with_env(
        None,
        &env(&[
            ("MEDIAVAULT_LISTEN", "0.0.0.0:8443"),
            ("MEDIAVAULT_TLS__PLAIN_HTTP", "true"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("loopback"), "{err}");
    assert!(err.contains("MEDIAVAULT_LISTEN"), "{err}");
    // A bad value names its variable (and not its value).
    let err = Config::load_with_env(
        None,
        &env(&[
            ("MEDIAVAULT_LOG__LEVEL", "info"),
            ("MEDIAVAULT_LISTEN", "not-an-address"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("environment variable MEDIAVAULT_LISTEN"),
        "{err}"
    );
    assert!(err.contains("(sets listen)"), "{err}");
    assert!(!err.contains("not-an-address"), "{err}");
    let err = Config::load_with_env(None, &env(&[("MEDIAVAULT_LIMITS__MAX_CONNECTIONS", "x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("MEDIAVAULT_LIMITS__MAX_CONNECTIONS"), "{err}");
}

/// The properties the `config_toml` fuzz target checks: loading a file's text never panics, and a
/// refusal says something.
mod props {
    use proptest::prelude::*;

    use super::*;

    /// Real sections and keys with values of any TOML type, most of them wrong.
    fn config_text() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec![
                "listen",
                "data_dir",
                "tls.plain_http",
                "lockout.max_failures",
                "session.idle_minutes",
                "limits.max_connections",
                "audit.retention_days",
                "platforms.wechat_base_url",
                "log.format",
                "nonsense",
            ]),
            prop::sample::select(vec![
                "0",
                "-1",
                "99999999999",
                "true",
                "\"\"",
                "\"127.0.0.1:0\"",
                "\"ftp://x\"",
                "[]",
                "{}",
                "1.5",
            ]),
        )
            .prop_map(|(key, value)| match key.split_once('.') {
                Some((section, k)) => format!("[{section}]\n{k} = {value}\n"),
                None => format!("{key} = {value}\n"),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_loads_or_is_refused_clearly(text in "\\PC{0,200}") {
            if let Err(e) = Config::from_toml_str(&text) {
                prop_assert!(!e.to_string().trim().is_empty());
            }
        }

        #[test]
        fn config_shaped_text_loads_or_is_refused_clearly(text in config_text()) {
            if let Err(e) = Config::from_toml_str(&text) {
                prop_assert!(!e.to_string().trim().is_empty());
            }
        }
    }

    #[test]
    fn the_shipped_example_loads_from_text() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mediavault.example.toml");
        let text = std::fs::read_to_string(p).unwrap();
        assert!(Config::from_toml_str(&text).is_ok());
        assert!(
            Config::from_toml_str("nonsense = 1")
                .unwrap_err()
                .to_string()
                .contains("nonsense")
        );
    }
}

#[test]
fn database_url_picks_the_backend_and_never_shows_its_password() {
    let c = Config::load_with_env(None, &[]).unwrap();
    assert!(
        matches!(c.store_location(), StoreLocation::Sqlite(p) if p == Path::new("./data/mediavault.db"))
    );
    let c = Config::from_toml_str("[database]\nurl = \"sqlite:\"\n").unwrap();
    assert!(matches!(c.store_location(), StoreLocation::Sqlite(_)));
    let url = "postgres://vault:hunter2secret@127.0.0.1:5432/vault";
    let c = Config::load_with_env(None, &env(&[("MEDIAVAULT_DATABASE__URL", url)])).unwrap();
    let StoreLocation::Postgres(u) = c.store_location() else {
        panic!("a postgres:// URL names PostgreSQL");
    };
    assert_eq!(u.expose(), url);
    let shown = format!("{c:?} {} {u:?}", c.store_location().describe());
    assert!(!shown.contains("hunter2secret"), "{shown}");
    assert!(
        shown.contains("postgres://vault:***@127.0.0.1:5432/vault"),
        "{shown}"
    );
    // A wrong URL is refused without repeating it (it may hold a password).
    let bad = "mysql://root:hunter2secret@db/vault";
    let err = Config::load_with_env(None, &env(&[("MEDIAVAULT_DATABASE__URL", bad)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("MEDIAVAULT_DATABASE__URL"), "{err}");
    assert!(err.contains("database.url"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
}

#[test]
fn a_gateway_certificate_header_needs_the_gateway_and_a_header_name() {
    let err = |pairs: &[(&str, &str)]| {
        Config::load_with_env(None, &env(pairs))
            .unwrap_err()
            .to_string()
    };
    let e = err(&[(
        "MEDIAVAULT_GATEWAY__CLIENT_CERT_HEADER",
        "x-ssl-client-cert",
    )]);
    assert!(e.contains("gateway.addresses is empty"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    for (name, problem) in [
        ("x ssl", "is not a header name"),
        ("", "is not a header name"),
        ("X-MediaVault-Forwarded-Cert", "the vault's own"),
    ] {
        std::fs::write(
            &p,
            format!("[gateway]\naddresses = [\"127.0.0.1/32\"]\nclient_cert_header = \"{name}\"\n"),
        )
        .unwrap();
        let e = Config::load_with_env(Some(&p), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(problem), "{name:?}: {e}");
    }
    std::fs::write(
        &p,
        "[gateway]\naddresses = [\"127.0.0.1/32\"]\nclient_cert_header = \"X-SSL-Client-Cert\"\n",
    )
    .unwrap();
    let c = Config::load_with_env(Some(&p), &[]).unwrap();
    assert_eq!(
        c.gateway.client_cert_header.as_deref(),
        Some("X-SSL-Client-Cert")
    );
}
