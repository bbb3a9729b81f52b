"""Record every call with an on_request hook: one JSON line per call, ready for a log shipper.

python examples/metrics_hook.py
"""

import json
import sys
import threading

from comet_sync import CometClient, RequestRecord
from comet_sync.testing import real_or_fake

_print_lock = threading.Lock()  # hooks run on the calling threads


def log_call(rec: RequestRecord) -> None:
    line = json.dumps(
        {
            "route": rec.route,
            "model": rec.model,
            "status": rec.status,
            "latency_ms": round(rec.latency * 1000, 1),
            "attempts": rec.attempts,
            "request_id": rec.request_id,
            "error": rec.error,
            "tokens": (rec.usage or {}).get("total_tokens"),
        }
    )
    with _print_lock:
        sys.stdout.write(line + "\n")


with (
    real_or_fake(rps=20, burst=2) as settings,
    CometClient(**settings, on_request=log_call) as client,
):
    futures = [
        client.chat.completions.submit(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"Count to {n}."}]
        )
        for n in range(1, 11)
    ]
    for future in futures:
        future.result()
