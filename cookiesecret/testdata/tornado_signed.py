# Runs Tornado's own signed-value functions for cookiesecret's interop
# tests: reads a JSON list of operations on stdin, writes a JSON list of
# results on stdout. Secrets and values travel in base64 so that any bytes
# survive. Needs the Debian package python3-tornado (/usr/bin/python3).
import base64
import json
import sys

import tornado
from tornado.web import create_signed_value, decode_signed_value


def secret_of(spec):
    if "dict" in spec:
        return {int(k): base64.b64decode(v) for k, v in spec["dict"].items()}
    return base64.b64decode(spec["b64"])


def run(op):
    secret = secret_of(op["secret"])
    clock = float(op["clock"])
    try:
        if op["op"] == "encode":
            out = create_signed_value(
                secret,
                op["name"],
                base64.b64decode(op.get("value") or ""),
                version=op.get("version"),
                clock=lambda: clock,
                key_version=op.get("key_version"),
            )
            return {"ok": True, "signed": out.decode("latin-1")}
        out = decode_signed_value(
            secret,
            op["name"],
            op["signed"],
            max_age_days=op.get("max_age_days", 31),
            clock=lambda: clock,
            min_version=op.get("min_version"),
        )
        if out is None:
            return {"ok": True, "value": None}
        return {"ok": True, "value": base64.b64encode(out).decode("ascii")}
    except Exception as e:  # Tornado's crash, reported to the test
        return {"ok": False, "error": type(e).__name__}


def main():
    ops = json.load(sys.stdin)
    json.dump({"version": tornado.version, "results": [run(op) for op in ops]}, sys.stdout)


main()
