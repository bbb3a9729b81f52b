"""A threaded batch with map(): results in input order, failures in place, nothing lost.

    python examples/threaded_batch.py

Without COMETAPI_KEY it runs against the embedded fake server, limited to 40 requests/s so
that some calls meet a 429 and are retried.
"""

from comet_sync import CometClient, format_table
from comet_sync.testing import real_or_fake

PROMPTS = [f"Name one use of the number {n}." for n in range(60)]

with (
    real_or_fake(rps=40, burst=5) as settings,
    CometClient(**settings, max_concurrency=8) as client,
):
    jobs = (
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": p}], "max_tokens": 40}
        for p in PROMPTS
    )
    ok = failed = 0
    for prompt, result in zip(PROMPTS, client.chat.completions.map(jobs, return_exceptions=True)):
        if isinstance(result, Exception):
            failed += 1
            print(f"FAILED {prompt!r}: {result}")
        else:
            ok += 1
    print(f"{ok} answered, {failed} failed, {len(PROMPTS) - ok - failed} lost")
    print(format_table(client.metrics.snapshot()))
