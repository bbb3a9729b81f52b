"""The SSE parser on byte streams split every which way."""

from __future__ import annotations

import random

import pytest

from comet_sync._http.sse import Event, iter_events

STREAM = (
    b": keep-alive\r\n\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"event: note\ndata: line one\ndata: line two\n\n"
    b"data:no-space\r\rdata: caf\xc3\xa9\n\n"
    b"id: 7\nretry: 100\ndata: [DONE]\n\n"
)
EXPECTED = [
    Event('{"a": 1}'),
    Event("line one\nline two", event="note"),
    Event("no-space"),
    Event("café"),
    Event("[DONE]"),
]


def split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), k=min(len(data) - 1, rng.randint(1, 30))))
    return [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)])]


def test_whole() -> None:
    assert list(iter_events([STREAM])) == EXPECTED


@pytest.mark.parametrize("seed", range(50))
def test_split_anywhere(seed: int) -> None:
    # Splits fall inside CRLFs, inside UTF-8 sequences' lines, between "data" and ":".
    assert list(iter_events(split(STREAM, random.Random(seed)))) == EXPECTED


def test_byte_by_byte() -> None:
    assert list(iter_events(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


def test_an_unfinished_event_is_not_dispatched() -> None:
    assert list(iter_events([b'data: {"a": 1}\n\ndata: {"half'])) == [Event('{"a": 1}')]
    assert list(iter_events([b"data: x\n"])) == []
