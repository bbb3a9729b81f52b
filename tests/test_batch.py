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


def cli(server: FakeCometServer, *args: str, timeout: float = 120,
        **popen: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comet_sync", *args], env=env_for(server),
                          capture_output=True, text=True, timeout=timeout, **popen)


def env_for(server: FakeCometServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET")}
    env.update(COMETAPI_KEY=KEY, COMETAPI_BASE_URL=server.base_url)
    return env


def read_output(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ten_thousand_lines_through_429s_and_5xx(server, tmp_path) -> None:
    server.configure(error_every=97, rps=4000, burst=40)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 10_000)
    result = cli(server, "batch", str(src), "-o", str(out), "--concurrency", "16", timeout=300)
    assert result.returncode in (0, 1), result.stderr
    lines = read_output(out)
    assert len(lines) == 10_000
    assert [line["custom_id"] for line in lines] == [f"id-{i}" for i in range(10_000)]  # order
    ok = [line for line in lines if "response" in line]
    assert len(ok) >= 9_900  # injected faults are retried; a few may meet the retry budget
    assert lines[5]["metadata"] == {"n": 5}
    assert ok[0]["response"]["object"] == "chat.completion"
    assert all(line["attempts"] >= 1 for line in ok)
    stats = server.stats()
    assert stats.statuses.get(503, 0) + stats.statuses.get(500, 0) > 50  # faults happened
    assert "/chat/completions" in result.stdout  # the summary table


def test_interrupt_then_resume_ends_with_every_id_once(server, tmp_path) -> None:
    server.configure(latency=0.01)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "comet_sync", "batch", str(src), "-o", str(out),
         "--concurrency", "4", "--no-progress"],
        env=env_for(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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
    out.write_text(json.dumps({"custom_id": "id-0", "response": {}}) + "\n"
                   + '{"custom_id": "id-1", "resp')
    result = cli(server, "batch", str(src), "-o", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert sorted(line["custom_id"] for line in read_output(out)) == [
        f"id-{i}" for i in range(5)]


def test_malformed_lines_get_error_lines_and_the_batch_goes_on(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join([
        json.dumps({"custom_id": "a", "messages": user("fine")}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"custom_id": "b"}),
        json.dumps({"custom_id": "a", "messages": user("again")}),
        json.dumps({"messages": user("no id")}),
        "",
    ]) + "\n")
    result = cli(server, "batch", str(src), "-o", str(out), "--model", "gpt-4o-mini")
    assert result.returncode == 1  # some lines are errors
    lines = read_output(out)
    assert [line["custom_id"] for line in lines] == ["a", "2", "3", "b", "a", "6"]
    assert "response" in lines[0] and "response" in lines[5]
    assert "not JSON" in lines[1]["error"]["message"] and lines[1]["line"] == 2
    assert "not a JSON object" in lines[2]["error"]["message"]
    assert "no messages" in lines[3]["error"]["message"]
    assert "duplicate custom_id" in lines[4]["error"]["message"]
    assert server.stats().requests == 2


def test_missing_model_without_default(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 2, model=False)
    cli(server, "batch", str(src), "-o", str(out))
    assert all("no model" in line["error"]["message"] for line in read_output(out))
    out.unlink()
    assert cli(server, "batch", str(src), "-o", str(out), "--model", "m").returncode == 0


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


@pytest.mark.parametrize("args", [
    ["--help"], ["batch", "--help"], ["chat", "--help"], ["demo", "--help"]])
def test_help(server, args) -> None:
    result = cli(server, *args)
    assert result.returncode == 0 and "usage: comet-sync" in result.stdout


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
    result = subprocess.run([sys.executable, "-m", "comet_sync", "batch", str(src), "-o",
                             str(out)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "COMETAPI_KEY" in result.stderr


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
    jobs = [{"custom_id": "x", "model": "m", "messages": user("1")},
            {"model": "m", "messages": user("2")},
            BatchJob(custom_id="bad", problem="not sendable"),
            {"model": "m", "messages": "not a list"}]
    results = list(run_batch(client, jobs))
    assert [r.custom_id for r in results] == ["x", "2", "bad", "4"]
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
