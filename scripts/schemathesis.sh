#!/usr/bin/env bash
# Property-tests the running API with Schemathesis (issue 21): a vault started through the front
# door (fake platforms, `init`, `serve`, people, accounts, a tool and a token made through the API)
# is fuzzed from its own /api/v1/openapi.json once per kind of caller; no 5xx, every answer as the
# document says, and no known secret in any body or header. scripts/schemathesis/run.py has the
# details.
#
#   scripts/schemathesis.sh                       # 25 examples per operation and phase
#   scripts/schemathesis.sh --max-examples 200    # longer
#   scripts/schemathesis.sh --seed 1234           # replay a run
#
# Needs python3 with venv; Schemathesis (pinned in scripts/schemathesis/requirements.txt) is
# installed with pip into target/schemathesis/venv. The reports (JUnit per run, the vault's log)
# go to target/schemathesis/report.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
venv="$target/schemathesis/venv"
requirements=scripts/schemathesis/requirements.txt
if [ ! -x "$venv/bin/schemathesis" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi

# The fake platforms come with the default `demo` feature; after `cargo test` this builds nothing.
cargo build --locked --quiet
exec "$venv/bin/python" scripts/schemathesis/run.py --bin "$target/debug/mediavault" \
  --report-dir "$target/schemathesis/report" "$@"
