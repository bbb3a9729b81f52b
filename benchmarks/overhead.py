"""What comet_sync costs per call, against bare ``requests``, in one run.

1. One call at a time: ``chat.completions.create`` versus a bare ``requests.Session().post``
   of the same body to the same in-process fake server, in alternating rounds; the ratio of
   the median round times is the client's overhead (validation, the retry loop, the slot,
   parsing into objects, the record). Target: <= 1.0x.
2. Many at once: ``chat.completions.map`` over N jobs versus a bare ``ThreadPoolExecutor`` of
   the same size posting them with one shared session, against a zero-latency fake server in
   its own process (so the server does not share our interpreter lock), with 4, 16 and 64
   threads, alternating rounds; the ratio is of throughputs. Target: >= 0.95x.

3. With ``--otel``: the client's calls with OpenTelemetry instrumentation off and on
   (``CometSyncInstrumentor`` with the SDK's tracer and meter providers, a batch span
   processor and an exporter that drops everything), in alternating rounds; the ratio of the
   median CPU time per call (the process's, the span processor's thread included). Target:
   <= 1.15x. Alongside, the SDK's floor: the same SDK calls with the same attributes and
   nothing of ours. Needs the ``otel`` and ``test`` extras.

    .venv/bin/python benchmarks/overhead.py [--calls 400] [--rounds 7] [--threads 4,16,64]
                                            [--otel]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from comet_sync import CometClient
from comet_sync.testing import FakeCometServer

BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of Italy?"},
    ],
    "temperature": 0.2,
}


def bare(session: requests.Session, url: str, calls: int) -> float:
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
    started = time.perf_counter()
    for _ in range(calls):
        r = session.post(url, data=json.dumps(BODY), headers=headers, timeout=30)
        r.raise_for_status()
        _ = r.json()["choices"][0]["message"]["content"]
    return time.perf_counter() - started


def client_calls(client: CometClient, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        _ = client.chat.completions.create(**BODY).choices[0].message.content
    return time.perf_counter() - started


def serve(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with FakeCometServer() as server:
        queue.put(server.base_url)
        threading.Event().wait()


def pool_bare(url: str, threads: int, jobs: int) -> float:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=threads))
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}

    def one(_: int) -> str:
        r = session.post(url, data=json.dumps(BODY), headers=headers, timeout=30)
        r.raise_for_status()
        return str(r.json()["choices"][0]["message"]["content"])

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, range(jobs)):
            pass
    elapsed = time.perf_counter() - started
    session.close()
    return elapsed


def pool_map(client: CometClient, jobs: int) -> float:
    started = time.perf_counter()
    for reply in client.chat.completions.map(BODY for _ in range(jobs)):
        _ = reply.choices[0].message.content
    return time.perf_counter() - started


def threaded(thread_counts: list[int], jobs: int, rounds: int) -> None:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    base_url = queue.get(timeout=30)
    url = base_url + "/chat/completions"
    try:
        for threads in thread_counts:
            with CometClient(
                api_key="k", base_url=base_url, max_concurrency=threads, max_workers=threads
            ) as client:
                pool_bare(url, threads, jobs // 10)  # warm up
                pool_map(client, jobs // 10)
                bare_times, map_times = [], []
                for _ in range(rounds):
                    bare_times.append(pool_bare(url, threads, jobs))
                    map_times.append(pool_map(client, jobs))
            b, m = statistics.median(bare_times), statistics.median(map_times)
            print(
                f"{threads:>2} threads, {jobs} jobs: bare pool {jobs / b:.0f} calls/s, "
                f"map {jobs / m:.0f} calls/s, ratio {b / m:.3f}x (target >= 0.95x)",
                flush=True,
            )
    finally:
        server.terminate()


def otel_rounds(calls: int, rounds: int) -> None:
    """Scenario 3: instrumentation off, on, and the SDK's floor, alternating, CPU and wall time
    per call. The server runs in its own process, so the process's CPU time is the client's
    (and the span processor thread's). The floor is an observer that makes the SDK calls ours
    makes for a plain call (two spans, the trace header, the status, three histogram records)
    with the same attributes built once: what any instrumentation of such a call pays, and the
    most that cutting our own work can win back."""
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from comet_sync import _observe
    from comet_sync.contrib.otel import CometSyncInstrumentor

    class Drop(SpanExporter):  # the SDK's cost, without an exporter's
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    # Aggregates at each measurement, as any reader does; never exported.
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = CometSyncInstrumentor()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    base_url = queue.get(timeout=30)
    floor = _floor_observer(trace, propagate, tracer_provider, meter_provider, base_url)
    try:
        with CometClient(api_key="k", base_url=base_url) as client:

            def one_round(mode: str) -> tuple[float, float]:
                if mode == "on":
                    instrumentor.instrument(
                        tracer_provider=tracer_provider, meter_provider=meter_provider
                    )
                elif mode == "floor":
                    _observe.set_observer(floor)
                try:
                    cpu = time.process_time()
                    wall = client_calls(client, calls)
                    if mode != "off":
                        tracer_provider.force_flush()  # the round's spans, processed
                    cpu = time.process_time() - cpu
                finally:
                    if mode == "on":
                        instrumentor.uninstrument()
                    elif mode == "floor":
                        _observe.set_observer(None)
                return wall / calls, cpu / calls

            modes = ("off", "on", "floor")
            for mode in modes:  # warm every path
                one_round(mode)
            found: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
            for _ in range(rounds):
                for mode in modes:
                    found[mode].append(one_round(mode))
    finally:
        server.terminate()
    off_wall, off_cpu = (statistics.median(x) for x in zip(*found["off"]))
    on_wall, on_cpu = (statistics.median(x) for x in zip(*found["on"]))
    floor_wall, floor_cpu = (statistics.median(x) for x in zip(*found["floor"]))
    print(f"otel off: {off_wall * 1e3:.3f} ms/call, {off_cpu * 1e6:.0f} us CPU/call")
    print(f"otel on:  {on_wall * 1e3:.3f} ms/call, {on_cpu * 1e6:.0f} us CPU/call")
    print(f"SDK floor: {floor_wall * 1e3:.3f} ms/call, {floor_cpu * 1e6:.0f} us CPU/call")
    print(
        f"otel on/off: CPU {on_cpu / off_cpu:.3f}x (target <= 1.15x), "
        f"wall {on_wall / off_wall:.3f}x; the SDK floor alone: CPU {floor_cpu / off_cpu:.3f}x; "
        f"ours above it: {(on_cpu - floor_cpu) * 1e6:+.0f} us CPU/call",
        flush=True,
    )


def _floor_observer(
    trace: Any, propagate: Any, tracer_provider: Any, meter_provider: Any, base_url: str
) -> Any:
    """An observer making, for each call of ``client_calls``, the SDK calls the instrumentation
    makes, with the attributes it sets, built once."""
    from comet_sync.contrib.otel._instruments import Instruments

    tracer = tracer_provider.get_tracer("floor")
    instruments = Instruments(meter_provider.get_meter("floor"))
    host, _, port = base_url.split("/")[2].partition(":")
    server = {"server.address": host, "server.port": int(port)}
    call_attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": BODY["model"],
        "openai.api.type": "chat_completions",
        "gen_ai.request.temperature": BODY["temperature"],
        "gen_ai.provider.name": "openai",
        **server,
    }
    attempt_attrs = {
        "http.request.method": "POST",
        "url.full": base_url + "/chat/completions",
        **server,
        "comet_sync.queue.wait": 0.0,
    }
    answer_attrs = {
        "gen_ai.response.model": BODY["model"],
        "gen_ai.response.id": "chatcmpl-fake",
        "gen_ai.response.finish_reasons": ["stop"],
        "openai.response.system_fingerprint": "fp_fake",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 8,
        "comet_sync.attempts": 1,
        "comet_sync.request_id": "req-fake",
    }
    metric = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": BODY["model"],
        **server,
        "gen_ai.response.model": BODY["model"],
    }
    inputs = {**metric, "gen_ai.token.type": "input"}
    outputs = {**metric, "gen_ai.token.type": "output"}
    client_kind = trace.SpanKind.CLIENT

    class Watch:
        def __init__(self) -> None:
            self.span = tracer.start_span(
                "chat gpt-4o-mini", kind=client_kind, attributes=call_attrs
            )
            self.attempt: Any = None

        def sending(self, headers: dict[str, str], resend_count: int, queued: float) -> None:
            self.attempt = tracer.start_span(
                "POST",
                context=trace.set_span_in_context(self.span),
                kind=client_kind,
                attributes=attempt_attrs,
            )
            propagate.inject(headers, context=trace.set_span_in_context(self.attempt))

        def off_wire(self, status: int | None) -> None:
            self.attempt.set_attribute("http.response.status_code", status)

        def retrying(self, error: BaseException, wait: float) -> None:
            pass

        def cache_hit(self) -> None:
            pass

        def finished(self, record: Any, answer: Any, error: Any) -> None:
            self.attempt.end()
            self.span.set_attributes(answer_attrs)
            self.span.end()
            instruments.duration.record(record.latency, metric)
            instruments.tokens.record(11, inputs)
            instruments.tokens.record(8, outputs)

    class Floor:
        def batch_run(self, source: str) -> Any:
            raise NotImplementedError

        def call_started(self, *args: Any) -> Watch:
            return Watch()

    return Floor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", default="4,16,64", help="thread counts; '' for none")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per threaded round")
    parser.add_argument("--threaded-rounds", type=int, default=5)
    parser.add_argument(
        "--otel", action="store_true", help="also: OpenTelemetry instrumentation off vs on"
    )
    args = parser.parse_args()
    with (
        FakeCometServer() as server,
        requests.Session() as session,
        requests.Session() as quiet,
        CometClient(api_key="k", base_url=server.base_url) as client,
    ):
        # A session that does not read the environment on every call (what comet_sync does):
        # the difference to it is what our own code costs.
        quiet.trust_env = False
        url = server.base_url + "/chat/completions"
        bare(session, url, 50)  # warm both connections and code paths
        bare(quiet, url, 50)
        client_calls(client, 50)
        bare_times, quiet_times, client_times = [], [], []
        for _ in range(args.rounds):
            bare_times.append(bare(session, url, args.calls))
            quiet_times.append(bare(quiet, url, args.calls))
            client_times.append(client_calls(client, args.calls))
    b = statistics.median(bare_times) / args.calls
    q = statistics.median(quiet_times) / args.calls
    c = statistics.median(client_times) / args.calls
    print(f"calls per round: {args.calls}, rounds: {args.rounds} (median round)")
    print(f"bare requests.Session().post: {b * 1e3:.3f} ms/call")
    print(f"bare session with trust_env=False: {q * 1e3:.3f} ms/call")
    print(f"CometClient.chat.completions.create: {c * 1e3:.3f} ms/call")
    print(f"against the session that skips the environment: {c / q:.3f}x ({(c - q) * 1e6:+.0f} us)")
    print(f"ratio: {c / b:.3f}x (target <= 1.0x)", flush=True)
    if args.otel:
        otel_rounds(args.calls, args.rounds)
    counts = [int(n) for n in args.threads.split(",") if n]
    if counts:
        threaded(counts, args.jobs, args.threaded_rounds)


if __name__ == "__main__":
    main()
