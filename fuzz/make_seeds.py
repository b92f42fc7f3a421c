#!/usr/bin/env python3
"""Writes the checked-in seed corpora (fuzz/corpus/<target>/seed-*) from tests/vectors.

canonical_url and timestamp take raw bytes and get exact seeds; the structured targets get
the vectors' fields back to back, which the fuzzer then mutates into its own structures.
"""
import base64
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "tests", "vectors")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def load(name):
    with open(os.path.join(VECTORS, name), encoding="utf-8") as f:
        return json.load(f)["cases"]


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"seed-{name}"), "wb") as f:
        f.write(data)


def main():
    policies = {"preserve": 0, "strip": 1, "require": 2}
    for i, case in enumerate(load("urls.json")):
        write("canonical_url", f"url-{i:02}", bytes([policies[case["trailing_slash"]]]) + case["url"].encode())

    from datetime import datetime
    for i, case in enumerate(load("freshness.json")):
        now = case["now"]
        if case["provider"] == "kitopay":
            millis = int(now) * 1000
        else:
            millis = int(datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp() * 1000)
        write("timestamp", f"{case['provider']}-{i:02}", struct.pack("<Q", millis) + case["timestamp"].encode())

    for case in load("signatures.json"):
        body = case["body"].encode() if "body" in case else base64.b64decode(case.get("body_base64", ""))
        fields = [
            case["secret"].encode(),
            case.get("merchant_id", case.get("api_key", "")).encode(),
            case["timestamp"].encode(),
            case.get("method", "POST").encode(),
            case.get("url", "https://merchant.example.com/hooks").encode(),
            body,
            case.get("transaction_id", "").encode(),
            case["signature"].encode(),
        ]
        blob = b"".join(struct.pack("<I", len(f)) + f for f in fields)
        for target in ["verify_webhook", "sign_verify_roundtrip", "http_adapter", "diagnose"]:
            write(target, case["name"], blob)

    for case in load("standard_webhooks.json"):
        body = case["body"].encode() if "body" in case else base64.b64decode(case.get("body_base64", ""))
        key = base64.b64decode(case["secret"].removeprefix("whsec_"))
        fields = [key, case["id"].encode(), case["timestamp"].encode(), body,
                  struct.pack("<I", int(case["timestamp"])), case["signature"].encode()]
        blob = b"".join(struct.pack("<I", len(f)) + f for f in fields)
        write("standard_webhooks", case["name"], blob)


if __name__ == "__main__":
    main()
