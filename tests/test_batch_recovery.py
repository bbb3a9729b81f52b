"""Batches that survive crashes, bad input, full disks and a second writer (issue 21, items
4-9 and 12): each test drives the real CLI against the fake server over loopback."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from comet_sync import _cli
from comet_sync.testing import FakeCometServer

from .conftest import user
from .test_batch import KEY, cli, env_for, read_output, start_batch, wait_for, write_input


def results_beside(folder: pathlib.Path, keep_out: str) -> set[str]:
    """The ids of the results in the files of ``folder`` but the input: what a run has put on
    disk (in the output, or in anything else it keeps there)."""
    ids: set[str] = set()
    for path in folder.iterdir():
        if path.name != keep_out and path.is_file():
            for raw in path.read_bytes().splitlines():
                # (not a result: a binary file, the state, a torn line)
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    ids.add(json.loads(raw.split(b"\t")[-1])["custom_id"])  # (a journal: N<tab>)
    return ids


def metrics_row(stdout: str) -> dict[str, str]:
    rows = [line.split() for line in stdout.splitlines() if line.startswith("/chat")]
    header = ["route", "model", "calls", "ok", "failed"]
    return dict(zip(header, rows[0]))


# -- item 4: ordered output keeps finished work through a SIGKILL -----------------------------


@pytest.mark.slow
@pytest.mark.parametrize("resume", [[], ["--unordered"]])
def test_sigkill_behind_a_slow_head_repays_only_what_was_in_flight(
    server, tmp_path, resume: list[str]
) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 300)
    server.delay_next(60)  # the head of the input order hangs; all behind it finish
    proc = start_batch(server, str(src), "-o", str(out), "--concurrency", "4", "--no-progress")
    wait_for(lambda: len(server.received) >= 299)
    # A bounded wait for the finished results to reach disk; if they never do, the
    # assertions below fail.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(results_beside(tmp_path, "in.jsonl")) < 299:
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=30)
    server.reset_stats()
    again = cli(server, "batch", "-o", str(out), "--resume", "--no-progress", *resume)
    assert again.returncode == 0, again.stderr
    assert server.stats().requests == 1  # only the head, which never finished
    ids = [line["custom_id"] for line in read_output(out)]
    if resume:  # unordered: the journal's results are placed first
        assert sorted(ids) == sorted(f"id-{i}" for i in range(300))
    else:  # in order: each of them took its turn
        assert ids == [f"id-{i}" for i in range(300)]
    assert [p.name for p in tmp_path.iterdir() if "journal" in p.name] == []


def test_early_results_reach_the_writer_before_a_slow_head(server, client) -> None:
    from comet_sync import run_batch

    server.delay_next(1.0)  # the head: the 19 behind it take milliseconds
    jobs = [{"custom_id": str(i), "model": "m", "messages": user(str(i))} for i in range(20)]
    early: list[str | None] = []
    ordered = [
        r.custom_id for r in run_batch(client, jobs, early=lambda r: early.append(r.custom_id))
    ]
    assert ordered == [str(i) for i in range(20)]  # still yielded in input order
    (slow,) = [r for r in server.received if r.ended - r.started >= 0.75]
    head = int(slow.body["messages"][0]["content"])
    assert str(head) not in early
    assert {str(i) for i in range(head + 1, 20)} <= set(early)  # all behind it, early


# -- item 5: one writer per output ---------------------------------------------------------------


@pytest.mark.slow
def test_a_second_run_on_a_busy_output_is_refused(server, tmp_path) -> None:
    server.configure(latency=0.2)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 40)
    first = start_batch(server, str(src), "-o", str(out), "--concurrency", "2", "--no-progress")
    wait_for(lambda: out.exists() and out.stat().st_size > 0)
    second = cli(server, "batch", str(src), "-o", str(out), "--resume", "--no-progress")
    assert second.returncode == 2
    assert "another comet-sync batch" in second.stderr and str(first.pid) in second.stderr
    server.configure(latency=0)  # the latency kept the first run busy until the refusal
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    ids = [line["custom_id"] for line in read_output(out)]
    assert sorted(ids) == sorted(f"id-{i}" for i in range(40))  # none twice
    assert server.stats().requests == 40


def test_a_fresh_run_takes_the_lock_before_looking_at_the_output(server, tmp_path) -> None:
    # Two fresh runs racing the "exists" check both ran; the lock comes first now.
    from comet_sync._batch.lock import OutputLock

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 3)
    with OutputLock(str(out)):
        result = cli(server, "batch", str(src), "-o", str(out), "--no-progress")
    assert result.returncode == 2 and "another comet-sync batch" in result.stderr
    assert not out.exists() and server.stats().requests == 0
    assert cli(server, "batch", str(src), "-o", str(out), "--no-progress").returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.jsonl",
        "out.jsonl",
        "out.jsonl.input",
        "out.jsonl.state.json",
    ]


# -- item 6: bytes that are not UTF-8 --------------------------------------------------------------


def test_invalid_utf8_is_an_error_line_and_a_bom_is_fine(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [
        json.dumps({"custom_id": f"id-{i}", "model": "m", "messages": user(f"job {i}")}).encode()
        for i in range(5)
    ]
    rows[0] = b"\xef\xbb\xbf" + rows[0]
    rows[2] = rows[2].replace(b"job 2", b"job \xff2")
    src.write_bytes(b"\n".join(rows) + b"\n")
    result = cli(server, "batch", str(src), "-o", str(out), "--no-progress")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = read_output(out)
    assert [line["line"] for line in lines] == [1, 2, 3, 4, 5]
    assert "response" in lines[0]  # the BOM is not part of the line
    assert "line 3" in lines[2]["error"]["message"] and "UTF-8" in lines[2]["error"]["message"]
    assert "line 3" in result.stderr  # the reason is on the terminal too
    assert server.stats().requests == 4
    server.reset_stats()
    again = cli(server, "batch", "-o", str(out), "--resume", "--no-progress")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert len(read_output(out)) == 5 and server.stats().requests == 0


# -- item 7: a full disk --------------------------------------------------------------------------


def test_a_full_disk_stops_cleanly_with_whole_lines(server, tmp_path, monkeypatch, capsys) -> None:
    from comet_sync._batch.output import LineWriter

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 50)
    real = LineWriter._write_all
    calls = {"n": 0}

    def full_after_ten(self: LineWriter, data: bytes) -> None:
        calls["n"] += self.path == str(out)
        if calls["n"] > 10:
            real(self, data[: len(data) // 2])  # a torn write, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, data)

    monkeypatch.setattr(LineWriter, "_write_all", full_after_ten)
    monkeypatch.setenv("COMETAPI_KEY", KEY)
    monkeypatch.setenv("COMETAPI_BASE_URL", server.base_url)
    code = _cli.main(["batch", str(src), "-o", str(out), "--concurrency", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == _cli.EXIT_OUTPUT_FAILED == 3
    assert "No space left on device" in err and "--resume" in err and "Traceback" not in err
    assert out.read_bytes().endswith(b"\n")
    written = read_output(out)  # every line whole
    assert len(written) == 10
    kept = results_beside(tmp_path, "in.jsonl")  # the output, and the journal's whole lines
    monkeypatch.setattr(LineWriter, "_write_all", real)
    server.reset_stats()
    assert _cli.main(["batch", "-o", str(out), "--resume", "--no-progress"]) == 0
    ids = [line["custom_id"] for line in read_output(out)]
    assert ids == [f"id-{i}" for i in range(50)]  # in order: the journal's lines in their turn
    sent = {r.body["messages"][0]["content"].replace("job ", "id-") for r in server.received}
    assert not sent & kept and len(sent) == 50 - len(kept)  # what was kept is never paid again


# -- item 8 and 12: a resume goes where the run went, with the input it read -----------------------


def test_a_fake_run_resumes_on_the_fake_server(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 6)
    no_key = {k: v for k, v in os.environ.items() if not k.startswith("COMET")}
    run = [sys.executable, "-m", "comet_sync", "batch"]
    first = subprocess.run(
        [*run, str(src), "-o", str(out), "--fake", "--no-progress"],
        env=no_key,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:2]))  # as if killed
    # A key and a real endpoint in the environment must not pull the rest away from --fake.
    again = subprocess.run(
        [*run, "-o", str(out), "--resume", "--no-progress"],
        env=env_for(server),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert server.stats().requests == 0
    assert len(read_output(out)) == 6
    assert "--fake" in _cli._resume_command(_cli.read_state(str(out)), str(out))


def test_resume_refuses_another_endpoint(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 4, model=False)
    assert cli(server, "batch", str(src), "-o", str(out), "--model", "m").returncode == 0
    out.write_text(out.read_text().splitlines(keepends=True)[0])
    with FakeCometServer() as other:
        moved = cli(other, "batch", "-o", str(out), "--resume", "--no-progress")
        assert moved.returncode == 2 and server.base_url in moved.stderr
        assert other.stats().requests == 0
    assert len(read_output(out)) == 1
    for option in (["--model", "other"], ["--output-format", "openai"], ["--fake"]):
        changed = cli(server, "batch", "-o", str(out), "--resume", "--no-progress", *option)
        assert changed.returncode == 2 and "resume" in changed.stderr, option
    assert server.stats().requests == 4 and len(read_output(out)) == 1


def test_resume_refuses_an_input_replaced_between_runs(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 30)
    assert cli(server, "batch", str(src), "-o", str(out), "--no-progress").returncode == 0
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:20]))  # as if killed
    before = out.read_bytes()
    with src.open("w") as f:  # a new file under the old name: other ids, other prompts
        for i in range(30):
            f.write(json.dumps({"custom_id": f"new-{i}", "model": "m", "messages": user("x")}))
            f.write("\n")
    server.reset_stats()
    again = cli(server, "batch", "-o", str(out), "--resume", "--no-progress")
    assert again.returncode == 2 and "changed" in again.stderr, again.stderr
    assert server.stats().requests == 0 and out.read_bytes() == before


# -- item 9: fixing a line; what Ctrl-C counts; reasons on the terminal -------------------------


@pytest.mark.parametrize("output_format", ["comet", "openai"])
def test_fixing_a_line_and_resuming_keeps_one_line_per_input_line(
    server, tmp_path, output_format: str
) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    good = [json.dumps({"custom_id": f"id-{i}", "messages": user(f"job {i}")}) for i in range(4)]
    src.write_text("\n".join([good[0], "{broken", good[2], "", good[3]]) + "\n")
    options = ["--model", "m", "--output-format", output_format, "--no-progress"]
    first = cli(server, "batch", str(src), "-o", str(out), *options)
    assert first.returncode == 1 and "line 2: is not JSON" in first.stderr, first.stderr
    src.write_text("\n".join([good[0], good[1], good[2], "", good[3]]) + "\n")
    server.reset_stats()
    fixed = cli(server, "batch", "-o", str(out), "--resume", "--no-progress")
    assert fixed.returncode == 0, fixed.stderr
    assert server.stats().requests == 1  # the fixed line alone
    lines = read_output(out)
    assert len(lines) == 5  # one per input line, the blank one included
    assert sorted(str(line["custom_id"]) for line in lines) == [
        "None",
        *(f"id-{i}" for i in range(4)),
    ]
    assert cli(server, "batch", "-o", str(out), "--resume", "--no-progress").returncode == 0
    assert len(read_output(out)) == 5 and server.stats().requests == 1


def test_a_line_the_api_refused_can_be_fixed_and_resumed(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"custom_id": f"id-{i}", "model": "m", "messages": user(f"job {i}")} for i in range(3)]
    src.write_text("".join(json.dumps(row) + "\n" for row in rows))
    server.fail(400, message="no such model")  # the first request only
    first = cli(server, "batch", str(src), "-o", str(out), "--concurrency", "1", "--no-progress")
    assert first.returncode == 1 and "no such model" in first.stderr
    # Which line went first is the workers' race (one slot, several threads): fix that one.
    (refused,) = [line["custom_id"] for line in read_output(out) if line.get("error")]
    rows[int(refused.split("-")[1])]["model"] = "gpt-4o-mini"  # the fix
    src.write_text("".join(json.dumps(row) + "\n" for row in rows))
    server.reset_stats()
    again = cli(server, "batch", "-o", str(out), "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert [r.body["model"] for r in server.received] == ["gpt-4o-mini"]
    lines = read_output(out)
    assert sorted(line["custom_id"] for line in lines) == ["id-0", "id-1", "id-2"]
    assert all("response" in line for line in lines)


def test_a_piped_input_replaced_between_runs_is_refused(server, tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 10)
    piped = "".join(src.read_text().splitlines(keepends=True))
    assert cli(server, "batch", "-", "-o", str(out), "--no-progress", input=piped).returncode == 0
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:6]))  # as if killed
    other = piped.replace("job ", "other job ")
    server.reset_stats()
    again = cli(server, "batch", "-", "-o", str(out), "--resume", "--no-progress", input=other)
    assert again.returncode == 2 and "changed" in again.stderr, again.stderr
    assert server.stats().requests == 0 and len(read_output(out)) == 6


@pytest.mark.slow
def test_ctrl_c_does_not_count_never_sent_jobs_as_failed(server, tmp_path) -> None:
    server.configure(latency=1.0)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 100)
    proc = start_batch(server, str(src), "-o", str(out), "--concurrency", "4", "--no-progress")
    wait_for(lambda: server.stats().requests >= 4)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    row = metrics_row(stdout)
    assert row["failed"] == "0" and row["calls"] == row["ok"] == str(len(read_output(out)))


# -- item 12: --resume on something that is not a file ------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_resume_into_dev_full_is_refused_without_reading_it(server, tmp_path) -> None:
    src = tmp_path / "in.jsonl"
    write_input(src, 2)

    def small_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    result = cli(
        server,
        "batch",
        str(src),
        "-o",
        "/dev/full",
        "--resume",
        timeout=60,
        preexec_fn=small_memory,
    )
    assert result.returncode == 2 and "not a regular file" in result.stderr, result.stderr
    assert not os.path.exists("/dev/full.state.json")


def test_a_journal_that_never_empties_is_compacted(tmp_path, monkeypatch) -> None:
    from comet_sync._batch import journal as journal_module

    monkeypatch.setattr(journal_module, "COMPACT_AT", 50)
    out = str(tmp_path / "out.jsonl")
    journal = journal_module.Journal(out)
    # Always one result waiting (line n+1 finishes before line n is written): never empty.
    for n in range(1, 1001):
        journal.hold(n, json.dumps({"custom_id": str(n), "line": n}))
        if n > 1:
            assert journal.take(n - 1) is not None
        journal.settle()
    kept = [line for line, _, _ in journal_module.journal_records(out)]
    assert kept[-1] == 1000 and len(kept) <= 51  # not a thousand lines
    journal.close()
    assert os.path.exists(journal_module.journal_path(out))  # line 1000 never reached the output


@pytest.mark.parametrize("written", ["half", "all"])
def test_an_interrupt_inside_a_write_leaves_whole_lines(tmp_path, monkeypatch, written) -> None:
    """A second Ctrl-C raises KeyboardInterrupt wherever the main thread is, a write included;
    the writer then saves what finished, so a half line must not stay to be glued to it."""
    from comet_sync._batch.output import LineWriter, OutputFailed

    path = tmp_path / "out.jsonl"
    writer = LineWriter(str(path))
    writer.write_line('{"n": 1}')
    real = LineWriter._write_all

    def interrupted(self: LineWriter, data: bytes) -> None:
        real(self, data if written == "all" else data[:3])
        raise KeyboardInterrupt

    monkeypatch.setattr(LineWriter, "_write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.write_line('{"n": 2}')
    monkeypatch.setattr(LineWriter, "_write_all", real)
    writer.write_line('{"n": 3}')

    def full(self: LineWriter, data: bytes) -> None:
        real(self, data[:3])
        raise OSError(errno.ENOSPC, "full")

    monkeypatch.setattr(LineWriter, "_write_all", full)
    with pytest.raises(OutputFailed):  # cut back to the end of line 3, not before or after
        writer.write_line('{"n": 4}')
    writer.close()
    expected = [1, 2, 3] if written == "all" else [1, 3]
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == expected


@pytest.mark.parametrize("how", ["file", "pipe"])
def test_an_input_cut_short_between_runs_is_refused(server, tmp_path, how: str) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 10)
    whole = src.read_text()
    name, piped = (str(src), None) if how == "file" else ("-", whole)
    first = cli(server, "batch", name, "-o", str(out), "--no-progress", input=piped)
    assert first.returncode == 0, first.stderr
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:8]))  # as if killed
    short = "".join(whole.splitlines(keepends=True)[:5])  # lines 6-8 answered, now gone
    src.write_text(short)
    server.reset_stats()
    again = cli(
        server,
        "batch",
        name,
        "-o",
        str(out),
        "--resume",
        "--no-progress",
        input=None if how == "file" else short,
    )
    assert again.returncode == 2, again.stderr
    assert ("line 6 of the input is gone" if how == "file" else "fewer") in again.stderr
    assert server.stats().requests == 0 and len(read_output(out)) == 8


def test_early_keeps_no_slot_it_has_yielded(server, make_client) -> None:
    """With ``early``, every finished job also goes on a completion queue: it must be drained
    as results are yielded in turn, or a long run keeps every job and result it ever had."""
    from comet_sync import run_batch

    client = make_client(max_concurrency=8)
    jobs = ({"model": "m", "messages": user(str(i))} for i in range(600))
    run = run_batch(client, jobs, window=16, early=lambda result: None)
    most = 0
    for _ in run:
        # A consumer slower than the calls: the next head is always done when it looks.
        deadline = time.monotonic() + 10
        while not all(f.done() for f in list(run._futures)) and time.monotonic() < deadline:
            time.sleep(0.001)
        most = max(most, run._completed.qsize())
    assert most <= 16 + 1  # the window, and a stop's wake-up


def test_a_third_ctrl_c_does_not_cut_the_saving_short(capsys) -> None:
    """The second Ctrl-C abandons the calls in flight, and the run then saves what finished;
    a third one, raising in the middle of that, would lose paid results."""
    stopped: list[bool] = []
    interrupts = _cli._Interrupts(30.0, on_first=lambda: stopped.append(True))
    try:
        interrupts._handle(signal.SIGINT, None)  # the first: stop
        assert stopped == [True]
        with pytest.raises(KeyboardInterrupt):
            interrupts._handle(signal.SIGINT, None)  # the second: abandon
        interrupts._handle(signal.SIGINT, None)  # the third: no exception while saving
    finally:
        interrupts.uninstall()  # (cancels the grace timer, which would signal this process)
    assert "saving" in capsys.readouterr().err


@pytest.mark.parametrize("side", [".input", ".lock"])
def test_a_link_where_a_batch_file_goes_is_refused_not_written_through(
    server, tmp_path, side: str
) -> None:
    """In a shared folder anyone could point OUTPUT.input or OUTPUT.lock at a file of the user
    running the batch: it was truncated and overwritten (an attack run found it)."""
    src, out, victim = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "victim"
    write_input(src, 2)
    victim.write_text("precious\n")
    (tmp_path / f"out.jsonl{side}").symlink_to(victim)
    result = cli(server, "batch", str(src), "-o", str(out), "--no-progress")
    assert result.returncode == 2 and "symbolic link" in result.stderr, result.stderr
    assert victim.read_text() == "precious\n"
    assert server.stats().requests == 0


def test_an_output_given_through_a_link_is_its_file(server, tmp_path) -> None:
    """Two runs, one through a link to the other's output, took two locks and both wrote
    (159 jobs paid twice); a rewrite replaced the link rather than its file."""
    from comet_sync._batch.lock import OutputLock

    src, real, link = tmp_path / "in.jsonl", tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    write_input(src, 3)
    link.symlink_to(real)
    with OutputLock(str(real)):  # another run writing the real file
        busy = cli(server, "batch", str(src), "-o", str(link), "--no-progress")
    assert busy.returncode == 2 and "another comet-sync batch" in busy.stderr, busy.stderr
    assert cli(server, "batch", str(src), "-o", str(link), "--no-progress").returncode == 0
    assert link.is_symlink() and len(read_output(real)) == 3
    assert (tmp_path / "real.jsonl.input").exists()
    assert not (tmp_path / "link.jsonl.input").exists()


def test_lines_python_cannot_encode_or_nest_are_error_lines_not_a_crash(server, tmp_path) -> None:
    """Valid JSON that crashed a run (traceback, 0 lines kept of 8 paid): a lone surrogate in
    custom_id or in a message, and brackets nested 100,000 deep."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    good = '{"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}'
    deep = '{"custom_id": "b", "messages": [], "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    lone_id = '{"custom_id": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}'
    lone_text = '{"custom_id": "c", "messages": [{"role": "user", "content": "x \\ud800"}]}'
    src.write_text("\n".join([good, deep, lone_id, lone_text, good.replace('"a"', '"z"')]) + "\n")
    result = cli(server, "batch", str(src), "-o", str(out), "--model", "m", "--no-progress")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = read_output(out)
    assert len(lines) == 5
    by_line = {line.get("line"): line for line in lines if line.get("error")}
    assert "nested too deep" in by_line[2]["error"]["message"]
    assert "lone surrogate" in by_line[4]["error"]["message"]
    assert {line["custom_id"] for line in lines if "response" in line} == {"a", "\ud800", "z"}
    assert server.stats().requests == 3
    server.reset_stats()
    again = cli(server, "batch", "-o", str(out), "--resume", "--no-progress")
    assert again.returncode == 1 and server.stats().requests == 0
    assert len(read_output(out)) == 5


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file-size limit")
def test_a_file_size_limit_stops_the_run_cleanly_and_the_resume_finishes(server, tmp_path) -> None:
    """A write the OS refuses (here RLIMIT_FSIZE, as `ulimit -f`) to the input's ledger was a
    traceback and exit 1, dropping 8 paid results; to any batch file it is exit 3 now."""
    import resource

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 300)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (3 * 1024, 3 * 1024))

    first = cli(server, "batch", str(src), "-o", str(out), "--no-progress", preexec_fn=small_files)
    assert first.returncode == 3 and "Traceback" not in first.stderr, first.stderr
    again = cli(server, "batch", "-o", str(out), "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr
    ids = [line["custom_id"] for line in read_output(out)]
    assert sorted(ids) == sorted(f"id-{i}" for i in range(300))


def test_a_journal_compacted_during_a_run_keeps_every_result_in_order(
    server, tmp_path, monkeypatch
) -> None:
    """The journal is rewritten while a real ordered run goes on (faults retried ahead of
    finished lines, so it never empties): the output still ends whole and in input order, and
    the journal is gone. Only a run past COMPACT_AT (4096) journal lines compacts by itself, so
    the threshold is lowered here rather than sending thousands of lines."""
    from comet_sync._batch import journal as journal_module

    monkeypatch.setattr(journal_module, "COMPACT_AT", 50)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    compactions: list[int] = []
    real = journal_module.Journal._compact

    def checked(self: journal_module.Journal) -> None:
        real(self)
        # What a crash now would leave: every result held for its turn, in the journal.
        on_disk = {line for line, _, _ in journal_module.journal_records(str(out))}
        assert on_disk == set(self._held), (sorted(self._held), sorted(on_disk))
        compactions.append(len(on_disk))

    monkeypatch.setattr(journal_module.Journal, "_compact", checked)
    server.configure(error_every=7)  # retried faults: some line is nearly always pending
    write_input(src, 400)
    monkeypatch.setenv("COMETAPI_KEY", KEY)
    monkeypatch.setenv("COMETAPI_BASE_URL", server.base_url)
    code = _cli.main(["batch", str(src), "-o", str(out), "--concurrency", "8", "--no-progress"])
    assert code == 0
    assert compactions, compactions  # the journal was rewritten during the run
    lines = read_output(out)
    assert [line["custom_id"] for line in lines] == [f"id-{i}" for i in range(400)]
    assert all("response" in line for line in lines)
    assert not (tmp_path / "out.jsonl.journal").exists()
