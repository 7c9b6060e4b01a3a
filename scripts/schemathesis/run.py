"""Property-tests the running API with Schemathesis, once per kind of caller.

Run by scripts/schemathesis.sh (which builds the binary and the virtualenv); see it for the
options. Through the front door, as docs/deployment.md does: the fake platforms with apps whose
secrets this script chose, `init` (the first admin), `serve`, then the API: a second admin
confirmed with `bootstrap confirm-admin`, a publisher, an operator, an approver (confirmed by the
second admin), an auditor, two accounts with known credentials, a publishing tool and a checkout's
publishing token. Schemathesis then runs against /api/v1/openapi.json with each credential in
turn: the tool's token, its client key, then each person's session (admin last: its run creates,
disables and resets). Checks: no 5xx, the status code, content type, headers and body as the
document says, and no known secret in any answer (hooks.py).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Operations a run must not call with its own credential: signing out ends the session the rest
# of the run uses.
EXCLUDED = ["/auth/logout"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def word(n=16):
    return secrets.token_hex(n)


class Totp:
    """RFC 6238 codes (SHA-1, 6 digits, 30 s). The vault takes one step either side and each
    step once per person, so each person's next code is for the step after their last one."""

    def __init__(self):
        self.last = {}

    def code(self, who, seed):
        now = int(time.time()) // 30
        step = max(now - 1, self.last.get(who, now - 2) + 1)
        while step > now + 1:
            time.sleep(1)
            now = int(time.time()) // 30
        self.last[who] = step
        key = base64.b32decode(seed + "=" * (-len(seed) % 8), casefold=True)
        mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
        off = mac[-1] & 0x0F
        return "%06d" % ((struct.unpack(">I", mac[off : off + 4])[0] & 0x7FFFFFFF) % 1_000_000)


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, auth=None, expect=(200, 201, 202, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if auth:
            req.add_header("authorization", "Bearer " + auth)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if status not in expect:
            raise SystemExit(f"setup: {method} {path} answered {status}: {text}")
        return json.loads(text) if text else None


def start(cmd, log, env=None):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)


def wait_for(url, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer at {url}")


def policy(account, calls, extra=""):
    calls = ", ".join(json.dumps(c) for c in calls)
    return f"""account = "{account}"
exclusive = false
allowed_networks = ["127.0.0.0/8", "::1/128"]
allowed_calls = [{calls}]
{extra}
[who]
roles = ["publisher"]
clients = ["fuzz-tool"]

[levels.general]
approvals = 0

[levels.major]
approvals = 1
"""


def setup(exe, work, log):
    """Starts the fake platforms and the vault and makes one credential of each kind."""
    known = {}
    wechat = ("wx5c4e1a7a0b9d3f21", word())
    weibo = ("2718281828", word(), "2.00" + word(14), "7000000007")
    known["wechat app_secret"] = wechat[1]
    known["weibo app_secret"] = weibo[1]
    known["weibo access_token"] = weibo[2]
    fake_port, port = free_port(), free_port()
    fake = start(
        [exe, "fake-platforms", "--listen", f"127.0.0.1:{fake_port}",
         "--wechat-app", ":".join(wechat), "--weibo-app", ":".join(weibo)],
        log,
    )
    wait_for(f"http://127.0.0.1:{fake_port}/_fake/calls", fake, "fake-platforms")

    (work / "policies").mkdir()
    (work / "policies" / "wechat-main.toml").write_text(policy(
        "wechat-main",
        ["POST cgi-bin/draft/add", "POST cgi-bin/media/uploadimg", "POST cgi-bin/freepublish/submit",
         "POST cgi-bin/freepublish/get", "GET cgi-bin/getcallbackip"],
        "allow_platform_token = true\nallow_login_totp = true",
    ))
    (work / "policies" / "weibo-main.toml").write_text(policy("weibo-main", ["POST 2/statuses/share.json"]))
    shutil.copytree(HERE.parents[1] / "policies" / "playbooks", work / "policies" / "playbooks")
    config = work / "mediavault.toml"
    config.write_text(f"""data_dir = "{work / 'data'}"
listen = "127.0.0.1:{port}"
policies_dir = "{work / 'policies'}"

[tls]
plain_http = true

[session]
step_up_minutes = 60          # one sign-in covers the whole run's changes

[lockout]
max_failures = 1000000        # the fuzzer's wrong codes must not lock out the people it acts as

[rate_limits]                 # the fuzzer is one address; its runs are bounded by their own settings
login_per_minute = 1000000
login_burst = 1000000
checkout_per_minute = 1000000
checkout_burst = 1000000
token_per_second = 1000000
token_burst = 1000000
general_per_second = 1000000
general_burst = 1000000

[platforms]
wechat_base_url = "http://127.0.0.1:{fake_port}"
weibo_base_url = "http://127.0.0.1:{fake_port}"
""")
    cli = [exe, "--config", str(config)]
    admin_pw = "fuzz-" + word(8)
    known["password of admin"] = admin_pw
    init = subprocess.run(cli + ["init", "--admin", "admin", "--password-stdin", "--json"],
                          input=admin_pw + "\n", capture_output=True, text=True, check=False)
    if init.returncode != 0:
        raise SystemExit(f"init failed: {init.stderr}")
    seeds = {"admin": json.loads(init.stdout)["totp_secret"]}
    vault = start(cli + ["serve"], log)
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/healthz", vault, "the vault")
    api, totp = Api(base + "/api/v1"), Totp()

    def login(user, pw):
        s = api.call("POST", "/auth/login", {"username": user, "password": pw,
                                            "totp": totp.code(user, seeds[user])})
        known[f"session of {user}"] = s["session_token"]
        return s["session_token"]

    admin = login("admin", admin_pw)
    passwords = {}
    for user, roles in [("admin2", ["admin"]), ("publisher", ["publisher"]), ("operator", ["publisher"]),
                        ("approver", ["approver"]), ("auditor", ["auditor"])]:
        passwords[user] = "fuzz-" + word(8)
        known[f"password of {user}"] = passwords[user]
        made = api.call("POST", "/users", {"username": user, "display_name": user, "roles": roles,
                                          "password": passwords[user], "department": "fuzz"}, admin)
        seeds[user] = made["totp_secret"]
    for user, seed in seeds.items():
        known[f"TOTP seed of {user}"] = seed
    confirm = subprocess.run(cli + ["bootstrap", "confirm-admin", "admin2"], capture_output=True, text=True,
                             check=False)
    if confirm.returncode != 0:
        raise SystemExit(f"bootstrap confirm-admin failed: {confirm.stderr}")
    admin2 = login("admin2", passwords["admin2"])
    api.call("POST", "/users/approver/roles/approver/confirm", {}, admin2)

    login_seed = base64.b32encode(secrets.token_bytes(20)).decode()
    login_pw = "platform-" + word(8)
    known["wechat login_totp_seed"] = login_seed
    known["wechat login_password"] = login_pw
    api.call("POST", "/accounts", {"id": "wechat-main", "platform": "wechat", "display_name": "fuzz",
                                   "credential": {"app_id": wechat[0], "app_secret": wechat[1],
                                                  "login_password": login_pw, "login_totp_seed": login_seed}}, admin)
    api.call("POST", "/accounts", {"id": "weibo-main", "platform": "weibo", "display_name": "fuzz",
                                   "credential": {"app_key": weibo[0], "app_secret": weibo[1],
                                                  "access_token": weibo[2]}}, admin)
    tool = api.call("POST", "/clients", {"name": "fuzz-tool", "accounts": ["wechat-main", "weibo-main"]}, admin)
    known["client key"] = tool["client_key"]
    # A long checkout, so the token outlives the runs before its own.
    co = api.call("POST", "/checkouts", {"account": "wechat-main", "operator": "operator",
                                         "totp": totp.code("operator", seeds["operator"]),
                                         "purpose": "schemathesis", "level": "general",
                                         "ttl_seconds": 3600}, tool["client_key"])
    known["publishing token"] = co["token"]
    creds = [("tool's publishing token", co["token"]), ("tool's client key", tool["client_key"])]
    for user in ["publisher", "approver", "auditor"]:
        creds.append((user, login(user, passwords[user])))
    creds.append(("admin", admin))
    return base, creds, known, [fake, vault]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the mediavault binary (built with the demo feature)")
    ap.add_argument("--max-examples", type=int, default=25, help="test cases per operation and phase")
    ap.add_argument("--phases", default="examples,coverage,fuzzing")
    ap.add_argument("--seed", type=int, default=None, help="Hypothesis seed, to replay a run")
    ap.add_argument("--report-dir", required=True)
    args = ap.parse_args()

    report = Path(args.report_dir).resolve()
    shutil.rmtree(report, ignore_errors=True)
    report.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="mv-schemathesis-"))
    procs = []
    log = open(report / "vault.log", "w")
    started = time.monotonic()
    try:
        base, creds, known, procs = setup(args.bin, work, log)
        (work / "secrets.json").write_text(json.dumps(known))
        env = dict(os.environ, MV_FUZZ_SECRETS=str(work / "secrets.json"), SCHEMATHESIS_HOOKS="hooks",
                   PYTHONPATH=str(HERE))
        checks = ",".join(["not_a_server_error", "status_code_conformance", "content_type_conformance",
                           "response_headers_conformance", "response_schema_conformance", "no_secret_leak"])
        failed = []
        for i, (who, secret) in enumerate(creds):
            print(f"\n=== schemathesis as {who} ===", flush=True)
            cmd = [str(Path(sys.executable).with_name("schemathesis")), "run", base + "/api/v1/openapi.json",
                   "--checks", checks, "--phases", args.phases, "--max-examples", str(args.max_examples),
                   "--header", f"Authorization: Bearer {secret}", "--workers", "2",
                   "--suppress-health-check", "all", "--output-sanitize", "true",
                   "--report", "junit", "--report-junit-path", str(report / f"junit-{i}.xml")]
            for path in EXCLUDED:
                cmd += ["--exclude-path", path]
            if args.seed is not None:
                cmd += ["--seed", str(args.seed)]
            # Schemathesis keeps its replay data in .schemathesis/ under its working directory.
            if subprocess.run(cmd, env=env, cwd=report, check=False).returncode != 0:
                failed.append(who)
        took = time.monotonic() - started
        print(f"\nschemathesis: {len(creds)} runs in {took:.0f} s; "
              + (f"failures as: {', '.join(failed)}" if failed else "no failures"))
        print(f"schemathesis: {len(creds) - len(failed)} passed, {len(failed)} failed")
        return 1 if failed else 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
