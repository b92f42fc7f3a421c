#!/usr/bin/env python3
"""The official Standard Webhooks package (PyPI `standardwebhooks`) as an oracle.

  standard_webhooks.py verify CASES.json OUT.json   # check countersign's signatures
  standard_webhooks.py sign N SEED OUT.json         # make signed cases for countersign

Text bodies go through the package's own `Webhook.verify` / `Webhook.sign`. Its `verify`
decodes the body as UTF-8 (and `sign` takes text), so binary bodies are signed and checked
with the package's own `hmac_data` over the exact bytes, encoded as `sign` does. Freshness is
not what is compared (the cases' timestamps are random): `verify`'s timestamp check is
replaced by the package's timestamp parsing alone.
"""
import base64
import json
import os
import random
import sys
from datetime import datetime, timezone

import standardwebhooks
from standardwebhooks.webhooks import Webhook, WebhookVerificationError, hmac_data

# Keep `verify`'s signature logic, drop only its clock check.
Webhook._Webhook__verify_timestamp = lambda self, header: datetime.fromtimestamp(
    float(header), tz=timezone.utc
)


def b64(data):
    return base64.b64encode(data).decode()


def official_signature(secret, msg_id, timestamp, body):
    """`v1,<base64>` for the exact bytes: `sign` for text, `hmac_data` for binary."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        key = base64.b64decode(secret.removeprefix("whsec_") + "==")
        mac = hmac_data(key, f"{msg_id}.{timestamp}.".encode() + body)
        return f"v1,{b64(mac)}"
    stamp = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    return Webhook(secret).sign(msg_id=msg_id, timestamp=stamp, data=text)


def official_accepts(secrets, msg_id, timestamp, body, header):
    """Whether any of `secrets` verifies `header` for these fields, as the package does."""
    for secret in secrets:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            expected = official_signature(secret, msg_id, timestamp, body)
            if expected in header.split(" "):
                return True
            continue
        headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": header}
        try:
            Webhook(secret).verify(text, headers, json_parse=False)
            return True
        except WebhookVerificationError:
            pass
    return False


def verify(cases_path, out_path):
    with open(cases_path) as f:
        cases = json.load(f)
    results = []
    for case in cases:
        body = base64.b64decode(case["body_base64"])
        results.append(official_accepts(case["secrets"], case["id"], case["timestamp"], body, case["signature"]))
    with open(out_path, "w") as f:
        json.dump({"version": standardwebhooks.__version__ if hasattr(standardwebhooks, "__version__") else "1.1.0", "accepted": results}, f)


def random_id(rng):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:~!"
    return "msg_" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))


def random_body(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))  # binary (usually)
    if kind == 1:
        return "".join(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFF)])) for _ in range(rng.randint(0, 120))).encode()
    if kind == 2:
        return json.dumps({"type": "invoice.paid", "data": {"amount": rng.randint(0, 10**6), "note": "ü€ \n"}}, indent=rng.choice([None, 2])).encode()
    return b""


def sign(n, seed, out_path):
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        keys = [bytes(rng.randrange(256) for _ in range(rng.randint(24, 64))) for _ in range(rng.choice([1, 1, 2, 3]))]
        secrets = ["whsec_" + b64(k) if rng.random() < 0.9 else b64(k) for k in keys]
        msg_id = random_id(rng)
        timestamp = str(rng.randint(1, 4_102_444_800))
        body = random_body(rng)
        entries = [official_signature(s, msg_id, timestamp, body) for s in secrets]
        if rng.random() < 0.2:
            entries.insert(rng.randrange(len(entries) + 1), "v1a," + b64(os.urandom(32)))
        header = " ".join(entries)
        # countersign is given one of the secrets (the receiver's current one), or a wrong
        # one, or a tampered field: the expected outcome is the package's own verdict.
        receiver = rng.choice(secrets)
        tamper = rng.randrange(6)
        fields = {"id": msg_id, "timestamp": timestamp, "body": body}
        if tamper == 1:
            fields["body"] = body + b" "
        elif tamper == 2:
            fields["id"] = msg_id + "x"
        elif tamper == 3:
            fields["timestamp"] = str(int(timestamp) + 1)
        elif tamper == 4:
            receiver = "whsec_" + b64(os.urandom(32))
        expected = official_accepts([receiver], fields["id"], fields["timestamp"], fields["body"], header)
        cases.append({
            "secret": receiver,
            "id": fields["id"],
            "timestamp": fields["timestamp"],
            "body_base64": b64(fields["body"]),
            "signature": header,
            "valid": expected,
        })
    with open(out_path, "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3])
    else:
        sign(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
