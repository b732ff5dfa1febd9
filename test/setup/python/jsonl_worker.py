"""The worker side of test/setup/python-worker.ts: JSON requests on stdin, one JSON answer per
line on the protocol stream, first an unasked {"id": 0} when ready.

Call protocol_stream() before importing Spark or PyIceberg: it keeps the original stdout for the
answers and sends everything else printed (py4j, Spark, warnings) to stderr, where it cannot
corrupt the protocol.
"""
import json
import os
import sys
import time
import traceback


def protocol_stream():
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def serve(proto, handle, log, describe=lambda req: req["op"]):
    """Answers each request with handle(req) until stdin ends (or an "exit" request)."""
    proto.write(json.dumps({"id": 0, "ok": True, "result": "ready"}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("op") == "exit":
            proto.write(json.dumps({"id": req.get("id"), "ok": True, "result": None}) + "\n")
            break
        t0 = time.monotonic()
        try:
            resp = {"id": req.get("id"), "ok": True, "result": handle(req)}
        except Exception as e:  # noqa: BLE001 - every failure goes back to the caller
            resp = {"id": req.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
        log(f"{describe(req)}: {time.monotonic() - t0:.1f}s")
        proto.write(json.dumps(resp, default=str) + "\n")
