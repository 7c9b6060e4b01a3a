"""Schemathesis hooks for scripts/schemathesis.sh: a check that no answer leaks a secret.

run.py writes every secret it knows (platform AppSecrets and access tokens, passwords, TOTP seeds,
the tool's client key, the publishing token, every session token) to a JSON file and names it in
MV_FUZZ_SECRETS. No response body or header may contain any of them: not even the credential the
request itself carried (an API that echoes a bearer token into a body or an error leaks it to
whatever logs or caches that body).
"""

import json
import os

import schemathesis

with open(os.environ["MV_FUZZ_SECRETS"], encoding="utf-8") as f:
    SECRETS = {name: value for name, value in json.load(f).items() if len(value) >= 8}


@schemathesis.check
def no_secret_leak(ctx, response, case):
    """No response body or header holds a secret the vault keeps."""
    body = response.content or b""
    headers = "\n".join(
        f"{k}: {v}" for k, values in response.headers.items() for v in (values if isinstance(values, list) else [values])
    )
    for name, value in SECRETS.items():
        if value.encode() in body:
            raise AssertionError(f"the response body contains {name}")
        if value in headers:
            raise AssertionError(f"a response header contains {name}")
    return None
