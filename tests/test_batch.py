"""The batch engine and the comet-sync CLI, end to end in subprocesses against the fake server."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from comet_sync import BatchJob, run_batch
from comet_sync.testing import FakeCometServer

from .conftest import user

KEY = "cli-test-key-0123456789"


def write_input(path: pathlib.Path, n: int, *, model: bool = True) -> None:
    with path.open("w") as f:
        for i in range(n):
            line = {"custom_id": f"id-{i}", "metadata": {"n": i}, "messages": user(f"job {i}")}
            if model:
                line["model"] = "gpt-4o-mini"
            f.write(json.dumps(line) + "\n")


def cli(
    server: FakeCometServer, *args: str, timeout: float = 120, **popen: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "comet_sync", *args],
        env=env_for(server),
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def env_for(server: FakeCometServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET")}
    env.update(COMETAPI_KEY=KEY, COMETAPI_BASE_URL=server.base_url)
    return env


def read_output(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_four_thousand_lines_through_429s_and_5xx(server, tmp_path) -> None:
    # Four reordering windows (1024 each), in order through a fault every 39 requests: about a
    # hundred, as 10,000 lines with one every 97 had, at 40% of the time. (The journal's
    # compaction, which only that many lines reached by itself, has its own run in
    # test_batch_recovery.)
    server.configure(error_every=39, rps=4000, burst=40)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 4_000)
    result = cli(server, "batch", str(src), "-o", str(out), "--concurrency", "16", timeout=300)
    assert result.returncode in (0, 1), result.stderr
    lines = read_output(out)
    assert len(lines) == 4_000
    assert [line["custom_id"] for line in lines] == [f"id-{i}" for i in range(4_000)]  # order
    ok = [line for line in lines if "response" in line]
    assert len(ok) >= 3_960  # injected faults are retried; a few may meet the retry budget
    assert lines[5]["metadata"] == {"n": 5}
    assert ok[0]["response"]["object"] == "chat.completion"
    assert all(line["attempts"] >= 1 for line in ok)
    stats = server.stats()
    assert stats.statuses.get(503, 0) + stats.statuses.get(500, 0) > 50  # faults happened
    assert "/chat/completions" in result.stdout  # the summary table


@pytest.mark.slow
def test_interrupt_then_resume_ends_with_every_id_once(server, tmp_path) -> None:
    server.configure(latency=0.01)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 600)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comet_sync",
            "batch",
            str(src),
            "-o",
            str(out),
            "--concurrency",
            "4",
            "--no-progress",
        ],
        env=env_for(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 20_000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    first = read_output(out)  # every line whole
    assert 0 < len(first) < 600
    finished = {line["custom_id"] for line in first}
    assert len(finished) == len(first)

    server.reset_stats()
    server.configure(latency=0)  # the latency kept the first run going until the Ctrl-C
    again = cli(server, "batch", str(src), "-o", str(out), "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr
    lines = read_output(out)
    ids = [line["custom_id"] for line in lines]
    assert sorted(ids) == sorted(f"id-{i}" for i in range(600))  # each exactly once
    # nothing finished in the first run was sent again
    resent = {r.body["messages"][0]["content"] for r in server.received}
    assert not {f"job {cid.split('-')[1]}" for cid in finished} & resent


def test_resume_cuts_a_torn_last_line(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 5)
    out.write_text(
        json.dumps({"custom_id": "id-0", "response": {}}) + "\n" + '{"custom_id": "id-1", "resp'
    )
    result = cli(server, "batch", str(src), "-o", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert sorted(line["custom_id"] for line in read_output(out)) == [f"id-{i}" for i in range(5)]


def test_malformed_lines_get_error_lines_and_the_batch_goes_on(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps({"custom_id": "a", "messages": user("fine")}),
                "{not json",
                json.dumps(["a", "list"]),
                json.dumps({"custom_id": "b"}),
                json.dumps({"custom_id": "a", "messages": user("again")}),
                json.dumps({"messages": user("no id")}),
                "",
            ]
        )
        + "\n"
    )
    result = cli(server, "batch", str(src), "-o", str(out), "--model", "gpt-4o-mini")
    assert result.returncode == 1  # some lines are errors
    lines = read_output(out)
    # One output line per input line, the blank one included; a line without an id is known
    # by its line number, never by an id a user could also have chosen.
    assert [(line["custom_id"], line["line"]) for line in lines] == [
        ("a", 1),
        (None, 2),
        (None, 3),
        ("b", 4),
        ("a", 5),
        (None, 6),
        (None, 7),
    ]
    assert "response" in lines[0] and "response" in lines[5]
    assert lines[6]["skipped"] == "blank line" and "error" not in lines[6]
    assert "not JSON" in lines[1]["error"]["message"] and lines[1]["line"] == 2
    assert "not a JSON object" in lines[2]["error"]["message"]
    assert "no messages" in lines[3]["error"]["message"]
    assert "duplicate custom_id" in lines[4]["error"]["message"]
    assert server.stats().requests == 2


@pytest.mark.slow
def test_missing_model_without_default(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 2, model=False)
    cli(server, "batch", str(src), "-o", str(out))
    assert all("no model" in line["error"]["message"] for line in read_output(out))
    out.unlink()
    assert cli(server, "batch", str(src), "-o", str(out), "--model", "m").returncode == 0


@pytest.mark.slow
def test_unordered_writes_every_line(server, tmp_path) -> None:
    server.delay_next(0.3)  # the first job finishes last
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 40)
    result = cli(server, "batch", str(src), "-o", str(out), "--unordered", "--concurrency", "4")
    assert result.returncode == 0
    ids = [line["custom_id"] for line in read_output(out)]
    assert sorted(ids) == sorted(f"id-{i}" for i in range(40))
    (delayed,) = [r for r in server.received if r.ended - r.started >= 0.25]
    slow = delayed.body["messages"][0]["content"].replace("job ", "id-")
    assert ids.index(slow) > 3  # the delayed job was written after later ones


@pytest.mark.parametrize(
    "args", [["--help"], ["batch", "--help"], ["chat", "--help"], ["demo", "--help"]]
)
def test_help(server, args) -> None:
    result = cli(server, *args)
    assert result.returncode == 0 and "usage: comet-sync" in result.stdout


@pytest.mark.slow
def test_bad_invocations_fail_at_once(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 1)
    for args, words in [
        (["batch", str(src), "-o", str(out), "--frobnicate"], "unrecognized arguments"),
        (["batch", str(tmp_path / "missing.jsonl"), "-o", str(out)], "cannot read"),
        (["batch", str(src), "-o", str(out), "--concurrency", "0"], "--concurrency"),
        (["batch", str(src)], "-o/--output"),
    ]:
        result = cli(server, *args)
        assert result.returncode == 2, args
        assert words in result.stderr
    out.write_text("")
    result = cli(server, "batch", str(src), "-o", str(out))
    assert result.returncode == 2 and "--resume" in result.stderr
    assert server.stats().requests == 0


def test_no_key_is_a_clear_error(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET")}
    result = subprocess.run(
        [sys.executable, "-m", "comet_sync", "batch", str(src), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "COMETAPI_KEY" in result.stderr


@pytest.mark.slow
def test_chat_streams_and_never_prints_the_key(server) -> None:
    result = cli(server, "chat", "hello there", "--system", "be brief")
    assert result.returncode == 0
    assert result.stdout.strip() == "echo: hello there"
    assert server.received[-1].body["stream"] is True
    assert server.received[-1].body["messages"][0] == {"role": "system", "content": "be brief"}
    result = cli(server, "-v", "chat", "hi", "--no-stream")
    assert result.stdout.strip() == "echo: hi"
    assert KEY not in result.stdout + result.stderr


# -- the library engine ------------------------------------------------------------------------


def test_run_batch_yields_every_job(server, client) -> None:
    jobs = [
        {"custom_id": "x", "model": "m", "messages": user("1")},
        {"model": "m", "messages": user("2")},
        BatchJob(custom_id="bad", problem="not sendable"),
        {"model": "m", "messages": "not a list"},
    ]
    results = list(run_batch(client, jobs))
    assert [(r.custom_id, r.line) for r in results] == [
        ("x", 1),
        (None, 2),
        ("bad", None),
        (None, 4),
    ]
    assert results[0].request_id is not None
    assert results[0].ok and results[0].response["choices"][0]["message"]["content"] == "echo: 1"
    assert results[2].error["message"] == "not sendable"
    assert results[3].error["type"] == "InvalidArgumentError"
    assert results[0].attempts == 1 and results[2].attempts == 0


def test_run_batch_stops_taking_jobs(server, make_client) -> None:
    client = make_client(max_concurrency=2)
    stop = threading.Event()
    jobs = ({"model": "m", "messages": user(str(i))} for i in range(10_000))
    seen = 0
    for _ in run_batch(client, jobs, ordered=False, window=4, stop=stop):
        seen += 1
        if seen == 10:
            stop.set()
    assert 10 <= seen <= 14  # the window in flight finishes, nothing more is taken


# -- nothing finished is lost, nothing finished is paid twice ------------------------------------


def start_batch(server: FakeCometServer, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "comet_sync", "batch", *args],
        env=env_for(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["two ctrl-c", "grace over", "sigterm twice"])
def test_a_slow_head_of_line_does_not_lose_what_finished_behind_it(
    server, tmp_path, how: str
) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 200)
    server.delay_next(60)  # the first request to arrive hangs: the head of the input order
    grace = ["--grace", "0.3"] if how == "grace over" else []
    proc = start_batch(
        server, str(src), "-o", str(out), "--concurrency", "4", "--no-progress", *grace
    )
    wait_for(lambda: server.stats().requests >= 200)  # all sent; all but one answered
    sig = signal.SIGTERM if how == "sigterm twice" else signal.SIGINT
    proc.send_signal(sig)
    if how != "grace over":
        time.sleep(0.3)
        proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    first = read_output(out)
    assert len(first) == 199  # every finished result was written, out of order if need be
    server.reset_stats()
    again = cli(server, "batch", "-o", str(out), "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert server.stats().requests == 1  # only the one that never finished
    assert sorted(line["custom_id"] for line in read_output(out)) == sorted(
        f"id-{i}" for i in range(200)
    )


@pytest.mark.slow
def test_after_the_first_ctrl_c_nothing_new_is_sent(server, tmp_path) -> None:
    server.configure(latency=1.0)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 100)
    proc = start_batch(server, str(src), "-o", str(out), "--concurrency", "4", "--no-progress")
    wait_for(lambda: server.stats().requests >= 4)
    proc.send_signal(signal.SIGINT)
    sent_at_signal = server.stats().requests
    _, stderr = proc.communicate(timeout=30)  # the 4 in flight finish within the grace
    assert proc.returncode == 130, stderr
    assert server.stats().requests == sent_at_signal
    lines = read_output(out)
    assert len(lines) == sent_at_signal and all("response" in line for line in lines)


@pytest.mark.slow
def test_the_second_ctrl_c_abandons_calls_in_flight_at_once(server, tmp_path) -> None:
    server.configure(latency=30.0)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 20)
    proc = start_batch(server, str(src), "-o", str(out), "--concurrency", "4", "--no-progress")
    wait_for(lambda: server.stats().requests >= 4)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)  # not 30 s: the calls were cut
    assert proc.returncode == 130, stderr
    assert read_output(out) == []  # nothing finished, nothing written, all to resume
    assert server.stats().requests == 4


@pytest.mark.slow
def test_resume_alone_reuses_the_runs_options(server, tmp_path) -> None:
    server.configure(latency=0.05)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 100, model=False)  # the model comes from --model only
    proc = start_batch(
        server,
        str(src),
        "-o",
        str(out),
        "--model",
        "gpt-4o-mini",
        "--concurrency",
        "2",
        "--output-format",
        "openai",
        "--no-progress",
    )
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 10)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert "--model gpt-4o-mini" in stderr and "--output-format openai" in stderr
    server.configure(latency=0)  # the latency kept the first run going until the Ctrl-C
    again = cli(server, "batch", "-o", str(out), "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr
    lines = read_output(out)
    assert len(lines) == 100
    assert all(line["response"]["status_code"] == 200 for line in lines)  # none lost its model


@pytest.mark.slow
def test_retry_errors_resends_what_failed_in_an_outage(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    # 10 jobs, more than the 8 in flight; no more: past 10 failures the adaptive throttle holds
    # some first attempts for a random 0-4 s (an outage, as it should), which is not what this
    # test is about.
    write_input(src, 10)
    server.fail(503, times=10)  # an outage that outlasts this run (no retries)
    first = cli(server, "batch", str(src), "-o", str(out), "--max-retries", "0", "--no-progress")
    assert first.returncode == 1
    assert all(line["error"]["status"] == 503 for line in read_output(out))
    # Healthy again. A plain resume sends nothing, but does not call it a success either.
    plain = cli(server, "batch", "-o", str(out), "--resume", "--no-progress")
    assert plain.returncode == 1 and "--retry-errors" in plain.stderr
    assert server.stats().requests == 10
    again = cli(server, "batch", "-o", str(out), "--resume", "--retry-errors", "--no-progress")
    assert again.returncode == 0, again.stderr
    lines = read_output(out)
    assert sorted(line["custom_id"] for line in lines) == sorted(f"id-{i}" for i in range(10))
    assert all("response" in line for line in lines)  # one line per id, the errors replaced
    assert server.stats().requests == 20


@pytest.mark.slow
def test_piped_input_is_read(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 50)
    head_two = "".join(src.read_text().splitlines(keepends=True)[:2])
    for name in ("-", "/dev/stdin"):
        if out.exists():
            out.unlink()
        result = cli(server, "batch", name, "-o", str(out), "--no-progress", input=head_two)
        assert result.returncode == 0, result.stderr
        assert [line["custom_id"] for line in read_output(out)] == ["id-0", "id-1"]


def test_ids_never_collide_with_line_numbers(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps({"messages": user("no id, line 1")}),
                json.dumps({"custom_id": "1", "messages": user("the user's own 1")}),
                json.dumps({"custom_id": 3, "messages": user("a number id")}),
                json.dumps({"custom_id": "4", "messages": "not a list"}),
            ]
        )
        + "\n"
    )
    result = cli(server, "batch", str(src), "-o", str(out), "--model", "m", "--no-progress")
    lines = read_output(out)
    assert [line["custom_id"] for line in lines] == [None, "1", "3", "4"]
    assert all("response" in line for line in lines[:3])
    assert "messages must be a list" in lines[3]["error"]["message"]
    assert result.returncode == 1


def test_openai_batch_format_both_ways(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(
        "\n".join(
            json.dumps(line)
            for line in [
                {
                    "custom_id": "bad",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini", "messages": user("x")},
                },
                {
                    "custom_id": "c1",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini", "messages": user("hello")},
                },
                {
                    "custom_id": "e1",
                    "method": "POST",
                    "url": "/v1/embeddings",
                    "body": {"model": "text-embedding-3-small", "input": "hello"},
                },
                {"custom_id": "x", "method": "GET", "url": "/v1/models", "body": {}},
            ]
        )
        + "\n"
    )
    # The first request is refused, whichever line the worker threads took first (one slot,
    # several threads: a race; assuming it was "bad" failed a CI run).
    server.fail(400, message="bad request for bad")
    result = cli(
        server,
        "batch",
        str(src),
        "-o",
        str(out),
        "--output-format",
        "openai",
        "--concurrency",
        "1",
        "--no-progress",
    )
    lines = read_output(out)
    by_id = {line["custom_id"]: line for line in lines}
    assert [line["custom_id"] for line in lines] == ["bad", "c1", "e1", "x"]
    refused = [cid for cid in ("bad", "c1", "e1") if by_id[cid]["response"]["status_code"] == 400]
    assert len(refused) == 1, refused
    for cid in {"bad", "c1", "e1"} - set(refused):
        line = by_id[cid]
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200 and line["response"]["request_id"]
        body = line["response"]["body"]
        if cid == "e1":
            assert body["data"][0]["embedding"]
        else:
            assert body["object"] == "chat.completion"
    # The server's refusal is a response with its status, as OpenAI writes it.
    assert by_id[refused[0]]["error"] is None
    assert "bad request" in json.dumps(by_id[refused[0]]["response"]["body"])
    assert by_id["x"]["response"] is None and "not POST" in by_id["x"]["error"]["message"]
    assert result.returncode == 1
    # method/url never reach the API as body fields
    assert all("url" not in r.body and "method" not in r.body for r in server.received)


@pytest.mark.slow
def test_the_cli_runs_offline_with_fake(tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET")}
    no_key = subprocess.run(
        [sys.executable, "-m", "comet_sync", "batch", str(src), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_key.returncode == 2 and "--fake" in no_key.stderr
    fake = subprocess.run(
        [
            sys.executable,
            "-m",
            "comet_sync",
            "batch",
            str(src),
            "-o",
            str(out),
            "--fake",
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fake.returncode == 0, fake.stderr
    assert len(read_output(out)) == 3


def test_digest_set_is_exact_across_merges(monkeypatch) -> None:
    import random

    from comet_sync._batch.jsonl import DigestSet

    monkeypatch.setattr(DigestSet, "MERGE_AT", 7)  # many in-place merges
    rng = random.Random(5)
    digests, reference = DigestSet(), set()
    for _ in range(2000):
        key = rng.getrandbits(64) if rng.random() < 0.8 else rng.choice(sorted(reference) or [0])
        digests.add(key)
        reference.add(key)
    assert len(digests) == len(reference)
    assert all(key in digests for key in reference)
    assert not any(rng.getrandbits(64) in digests for _ in range(2000))


def test_a_batch_error_found_after_parsing_speaks_as_the_batch_command(server, tmp_path) -> None:
    """'answers.jsonl exists' printed the top-level usage ("usage: comet-sync [-h] ...") and
    "comet-sync: error:", unlike the batch command's own argument errors."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 1)
    out.write_text("")
    result = cli(server, "batch", str(src), "-o", str(out), "--no-progress")
    assert result.returncode == 2
    assert "comet-sync batch: error:" in result.stderr and "exists" in result.stderr
    assert "usage: comet-sync batch" in result.stderr
    assert server.stats().requests == 0
