//! What the tests that drive the binary as a process share (`tests/e2e.rs`, `tests/crash.rs`,
//! `tests/cluster.rs`; `tests/it` takes the tool PKI and `feed` from here):
//! which binary, a clean environment for its commands, long-running processes that are killed
//! however a test ends, the fake platforms, and each person's authenticator app on the real clock.
//!
//! The binary under test is `MV_RELEASE_BIN_UNDER_TEST` when set (CI sets it to the production
//! build that `cargo deb` packages, without the `demo` feature), else this build's own binary.
//! The fake WeChat and Weibo APIs always come from this build (`mediavault fake-platforms`, which
//! needs the `demo` feature).
// Each test target uses only part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use mediavault::Clock;
use mediavault::crypto::SecretBytes;
use mediavault::identity::totp;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

// What the platforms know the office's accounts by: the fakes are started with them
// ([`fake_platforms`]), and the accounts are added with them.
pub const WECHAT_APP_ID: &str = "wx0e2e1f2c3d4b5a69";
pub const WECHAT_APP_SECRET: &str = "e2e-wechat-app-secret-7f3a";
pub const WEIBO_APP_KEY: &str = "5550001111";
pub const WEIBO_APP_SECRET: &str = "e2e-weibo-app-secret-91c2";
pub const WEIBO_TOKEN: &str = "2.00E2EWEIBOACCESSTOKEN";
pub const WEIBO_UID: &str = "7000000042";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary the tests run.
pub fn vault_bin() -> PathBuf {
    match std::env::var_os("MV_RELEASE_BIN_UNDER_TEST").filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "MV_RELEASE_BIN_UNDER_TEST names {}, which is not a file",
                p.display()
            );
            p
        }
        None => PathBuf::from(env!("CARGO_BIN_EXE_mediavault")),
    }
}

/// A command of `bin`, run in `dir` with a clean environment: no `MEDIAVAULT_*` override from
/// the caller, and `home` as the person's home (the admin CLI keeps its profile in
/// `~/.config/mediavault/admin.toml`).
pub fn command(bin: &Path, dir: &Path, home: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(dir)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .kill_on_drop(true);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MEDIAVAULT_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs a command to its end with `stdin` as its standard input; panics with its output unless
/// it succeeds. Returns standard output.
pub async fn run(mut c: Command, stdin: &str) -> String {
    let shown = format!("{:?}", c.as_std());
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let mut input = child.stdin.take().unwrap();
    feed(&mut input, stdin.as_bytes()).await;
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{shown} did not finish within 60 s"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Writes a child's standard input. A CLI that refuses its arguments exits before reading it:
/// the pipe is then closed under the write, and what a test judges is the child's exit and
/// output, not the write.
pub async fn feed(input: &mut tokio::process::ChildStdin, bytes: &[u8]) {
    match input.write_all(bytes).await {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
}

/// A long-running process (the vault, the fakes): killed when the test ends, however it ends.
/// Its log (standard error) goes to a file, shown when it stops early.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    name: &'static str,
}

impl Daemon {
    /// Starts `c` and waits for the line on standard output that starts with `ready`, returning
    /// the rest of it: the process says it is serving, and where, once it has bound its port.
    pub async fn start(
        mut c: Command,
        name: &'static str,
        log: PathBuf,
        ready: &str,
    ) -> (Self, String) {
        let shown = format!("{:?}", c.as_std());
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut daemon = Daemon { child, log, name };
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix(ready) {
                    return Some(rest.trim().to_owned());
                }
            }
            None
        })
        .await;
        let rest = match found {
            Ok(Some(rest)) => rest,
            Ok(None) => panic!(
                "{shown} ended before it said {ready:?}: {:?}\n{}",
                daemon.child.wait().await,
                daemon.log_text()
            ),
            Err(_) => panic!(
                "{shown} did not say {ready:?} within 30 s\n{}",
                daemon.log_text()
            ),
        };
        // Whatever else it prints is read, so a full pipe never stalls it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        (daemon, rest)
    }

    pub fn log_text(&self) -> String {
        format!(
            "--- {} log ---\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// Panics with the log if the process has ended.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} stopped ({status})\n{}", self.name, self.log_text());
        }
    }

    /// SIGKILL, with no warning: the process gets no chance to finish anything. Returns once it
    /// is gone, with how it ended (panics if it had already ended by itself).
    /// Sends `signal` (a name such as `STOP` or `CONT`) with kill(1): the tests forbid unsafe
    /// code, and a pause is what a long GC stop or a frozen VM looks like to the others.
    pub fn signal(&mut self, signal: &str) {
        self.assert_running();
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}").as_str(), pid.as_str()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    pub async fn kill(mut self) -> ExitStatus {
        self.assert_running();
        self.child.start_kill().unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} still running 10 s after SIGKILL", self.name))
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!("{}", self.log_text());
        }
    }
}

/// The fake WeChat and Weibo APIs (README, "The fake platforms alone"), knowing the office's
/// two apps. Returns their base URL.
pub async fn fake_platforms(dir: &Path, home: &Path) -> (Daemon, String) {
    let mut c = command(Path::new(env!("CARGO_BIN_EXE_mediavault")), dir, home);
    c.args([
        "fake-platforms",
        "--listen",
        "127.0.0.1:0",
        "--wechat-app",
        &format!("{WECHAT_APP_ID}:{WECHAT_APP_SECRET}"),
        "--weibo-app",
        &format!("{WEIBO_APP_KEY}:{WEIBO_APP_SECRET}:{WEIBO_TOKEN}:{WEIBO_UID}"),
    ]);
    Daemon::start(
        c,
        "fake-platforms",
        dir.join("fake-platforms.log"),
        "fake WeChat and Weibo APIs on ",
    )
    .await
}

/// Each person's authenticator app, on the real clock. The vault accepts a code of the current
/// step or one step either side, each step once per person and only newer than the last: a
/// person's second code within 30 seconds is the next step's.
#[derive(Default)]
pub struct Codes {
    seeds: HashMap<String, SecretBytes>,
    last_step: HashMap<String, i64>,
}

impl Codes {
    pub fn enrol(&mut self, who: &str, base32: &str) {
        let seed = totp::seed_from_base32(base32)
            .unwrap_or_else(|| panic!("{who}: {base32:?} is not a base32 TOTP secret"));
        self.seeds.insert(who.to_owned(), seed);
    }

    /// The person's next code, waiting for the clock only when both the current step and the
    /// next one are used already (a third code within one step).
    pub async fn code(&mut self, who: &str) -> String {
        loop {
            if let Some(code) = self.code_now(who) {
                return code;
            }
            let now = Clock::system().unix();
            let wait = u64::try_from(30 - now % 30).unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }

    /// The person's next code if the vault would take one now, else None; once given, that step
    /// counts as used whatever becomes of the request that carries it.
    pub fn code_now(&mut self, who: &str) -> Option<String> {
        let seed = &self.seeds[who];
        let current = Clock::system().unix() / 30;
        let step = self
            .last_step
            .get(who)
            .map_or(current, |last| (last + 1).max(current));
        if step > current + 1 {
            return None;
        }
        self.last_step.insert(who.to_owned(), step);
        Some(totp::code_at(seed, step * 30).unwrap())
    }
}

pub async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Rewrites `from` to `to` in `text`, which must hold it: the shipped file still says what the
/// guide tells the operator to change.
pub fn edit(text: &str, from: &str, to: &str, file: &str) -> String {
    assert!(text.contains(from), "{file} no longer has {from:?}");
    text.replace(from, to)
}

pub fn copy_tomls(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// The office's own CA for its publishing tools' client certificates (`tls.client_ca_file`).
pub fn tool_ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// A tool's client certificate from `ca`: (certificate PEM, certificate DER, key PEM).
pub fn tool_cert(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    cn: &str,
) -> (String, Vec<u8>, String) {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose};
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "宣传办");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), cert.der().to_vec(), key.serialize_pem())
}
