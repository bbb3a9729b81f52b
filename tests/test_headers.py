"""Rate-limit and Retry-After header parsing: every family, every malformed shape, never raises."""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Iterator, Mapping
from email.utils import formatdate

import pytest
from requests.structures import CaseInsensitiveDict

from comet_sync._http import headers as _headers
from comet_sync._http.headers import (
    EMPTY,
    MAX_SANE_WAIT,
    Quota,
    ServerWord,
    parse_duration,
    parse_retry_after,
    parse_server_word,
)

# 2023-11-14T22:13:20Z: a round epoch, so told dates below are easy to check by eye.
NOW = 1_700_000_000.0
MICRO_SIGN = "\u00b5"
GREEK_MU = "\u03bc"


def http_date(offset: float) -> str:
    return formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("12ms", 0.012),
        ("6m0s", 360.0),
        ("23h18m29.144s", 23 * 3600 + 18 * 60 + 29.144),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("500us", 0.0005),
        (f"500{MICRO_SIGN}s", 0.0005),
        (f"500{GREEK_MU}s", 0.0005),
        ("250ns", 2.5e-7),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("24h", MAX_SANE_WAIT),
        ("2", 2.0),
        ("0.5", 0.5),
        ("0", 0.0),
        ("86400", MAX_SANE_WAIT),
        (" 7s ", 7.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        "s",
        "1x",
        "1 s",
        "-1s",
        "+1s",
        "-2",
        "1s2",
        "1.2.3s",
        "1h-2m",
        "inf",
        "nan",
        "Infinity",
        "infs",
        "1e3",
        "1e3s",
        "1_000s",
        "\u0661s",  # ARABIC-INDIC DIGIT ONE: float() would take it
        "24h0m0.001s",
        "25h",
        "86400.5",
        "1" + "0" * 400 + "s",  # a float that overflows to inf
        "9" * 400,
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("value", [None, 5, 1.5, b"1s"])
def test_parse_duration_rejects_non_strings(value: object) -> None:
    assert parse_duration(value) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500", "retry-after": "3"}, 1.5),
        ({"retry-after-ms": "12.5"}, 0.0125),
        ({"retry-after-ms": "0"}, 0.0),
        ({"retry-after-ms": "abc", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "-1", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "inf", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1e3", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1000000000000", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "", "retry-after": "3"}, 3.0),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": " 20 "}, 20.0),
        ({"retry-after": "86400"}, MAX_SANE_WAIT),
        ({"retry-after": http_date(120)}, 120.0),
        ({"retry-after": http_date(-120)}, 0.0),
        ({"retry-after": http_date(0)}, 0.0),
        ({"retry-after-ms": "-5", "retry-after": http_date(30)}, 30.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float) -> None:
    assert parse_retry_after(headers, NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "application/json"},
        {"retry-after": "-1"},
        {"retry-after": "-0.5"},
        {"retry-after": "inf"},
        {"retry-after": "-inf"},
        {"retry-after": "Infinity"},
        {"retry-after": "nan"},
        {"retry-after": "NaN"},
        {"retry-after": "1e3"},
        {"retry-after": "1000000000"},
        {"retry-after": "86401"},
        {"retry-after": "soon"},
        {"retry-after": ""},
        {"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"},
        {"retry-after": http_date(MAX_SANE_WAIT + 60)},
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"retry-after-ms": "-1"},
        {"retry-after-ms": "inf"},
        {"retry-after-ms": "nan"},
        {"retry-after-ms": "1000000000000"},
        {"retry-after-ms": "-1", "retry-after": "-1"},
        {"retry-after-ms": "inf", "retry-after": "nan"},
    ],
)
def test_parse_retry_after_absent(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers, NOW) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:28:00 +0000", 30.0),
        ("Wed, 21 Oct 2015 09:28:00 +0200", 30.0),
        # Naive once parsed: read as UTC, not as the machine's local time.
        ("Wed, 21 Oct 2015 07:28:00 -0000", 30.0),
        ("Wed, 21 Oct 2015 07:28:00", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after_http_dates(text: str, seconds: float) -> None:
    told = 1_445_412_480.0  # 2015-10-21T07:28:00Z
    assert parse_retry_after({"retry-after": text}, told - 30) == pytest.approx(seconds)


def test_parse_retry_after_any_case() -> None:
    assert parse_retry_after(CaseInsensitiveDict({"Retry-After-Ms": "250"}), NOW) == 0.25
    assert parse_retry_after(CaseInsensitiveDict({"RETRY-AFTER": "4"}), NOW) == 4.0
    assert parse_retry_after({"Retry-After": "5"}, NOW) == 5.0


OPENAI = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "1999975",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "0s",
}


def test_openai_headers() -> None:
    word = parse_server_word(OPENAI, NOW)
    assert word == ServerWord(
        retry_after=None,
        requests=Quota(limit=10000.0, remaining=9999.0, reset=0.006, window=60.0),
        tokens=Quota(limit=2_000_000.0, remaining=1_999_975.0, reset=0.0, window=60.0),
        source="openai",
    )
    assert word.requests is not None and word.requests.rate == pytest.approx(10000 / 60)
    assert word.tokens is not None and word.tokens.rate == pytest.approx(2_000_000 / 60)
    assert not word.empty


def test_openai_headers_any_case_in_requests_dict() -> None:
    headers = CaseInsensitiveDict(
        {
            "Content-Type": "application/json",
            "X-Request-Id": "req_8b2f",
            "X-RateLimit-Limit-Requests": "500",
            "X-Ratelimit-Remaining-Requests": "499",
            "x-RATELIMIT-reset-requests": "120ms",
            "X-RateLimit-Limit-Tokens": "30000",
            "X-RateLimit-Remaining-Tokens": "29500",
            "X-RateLimit-Reset-Tokens": "1s",
            "Retry-After-Ms": "20",
        }
    )
    word = parse_server_word(headers, NOW)
    assert word == ServerWord(
        retry_after=0.02,
        requests=Quota(500.0, 499.0, 0.12, 60.0),
        tokens=Quota(30000.0, 29500.0, 1.0, 60.0),
        source="openai",
    )


def test_openai_headers_any_case_in_plain_dict() -> None:
    headers = {"X-RateLimit-Remaining-Requests": "7", "X-RateLimit-Reset-Requests": "1m0s"}
    word = parse_server_word(headers, NOW)
    assert word.requests == Quota(None, 7.0, 60.0, 60.0)


@pytest.mark.parametrize(
    ("reset", "seconds"),
    [("20", 20.0), ("0.25", 0.25), ("6m0s", 360.0), ("23h18m29.144s", 83909.144)],
)
def test_openai_reset_forms(reset: str, seconds: float) -> None:
    word = parse_server_word({"x-ratelimit-reset-tokens": reset}, NOW)
    assert word.tokens is not None and word.tokens.reset == pytest.approx(seconds)


@pytest.mark.parametrize("limit", ["-1", "0", "0.0", "-5"])
def test_azure_unknown_limit(limit: str) -> None:
    headers = {
        "x-ratelimit-limit-requests": limit,
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-limit-tokens": limit,
        "x-ratelimit-remaining-tokens": "119000",
    }
    word = parse_server_word(headers, NOW)
    assert word.source == "openai"
    assert word.requests == Quota(None, 59.0, None, 60.0)
    assert word.tokens == Quota(None, 119000.0, None, 60.0)
    assert word.requests.rate is None


def test_azure_remaining_only() -> None:
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"}
    word = parse_server_word(headers, NOW)
    assert word.requests == Quota(None, 0.0, None, 60.0)
    assert word.tokens == Quota(None, 0.0, None, 60.0)


def test_remaining_above_limit_is_dropped() -> None:
    word = parse_server_word(
        {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "150"}, NOW
    )
    assert word.requests == Quota(100.0, None, None, 60.0)


def test_remaining_equal_to_limit_is_kept() -> None:
    word = parse_server_word(
        {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "100"}, NOW
    )
    assert word.requests == Quota(100.0, 100.0, None, 60.0)


@pytest.mark.parametrize(
    ("headers", "requests"),
    [
        (
            {"x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-requests": "3"},
            Quota(None, 3.0, None, 60.0),
        ),
        (
            {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "-3"},
            Quota(10.0, None, None, 60.0),
        ),
        (
            {"x-ratelimit-limit-requests": "10", "x-ratelimit-reset-requests": "soon"},
            Quota(10.0, None, None, 60.0),
        ),
        (
            {"x-ratelimit-limit-requests": "inf", "x-ratelimit-reset-requests": "48h"},
            None,
        ),
        (
            {"x-ratelimit-limit-requests": "nan", "x-ratelimit-remaining-requests": "Infinity"},
            None,
        ),
        ({"x-ratelimit-limit-requests": "1e400"}, None),
    ],
)
def test_openai_malformed_fields(headers: dict[str, str], requests: Quota | None) -> None:
    word = parse_server_word(headers, NOW)
    assert word.source == "openai"
    assert word.requests == requests
    assert word.tokens is None


def test_openai_all_malformed_is_empty_but_sourced() -> None:
    word = parse_server_word({"x-ratelimit-remaining-tokens": "many"}, NOW)
    assert word == ServerWord(None, None, None, "openai")
    assert word.empty


ANTHROPIC = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:21Z",
    "anthropic-ratelimit-tokens-limit": "40000",
    "anthropic-ratelimit-tokens-remaining": "39000",
    "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:22Z",
    "anthropic-ratelimit-input-tokens-limit": "30000",
    "anthropic-ratelimit-input-tokens-remaining": "29500",
    "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:23Z",
    "anthropic-ratelimit-output-tokens-limit": "8000",
    "anthropic-ratelimit-output-tokens-remaining": "8000",
    "anthropic-ratelimit-output-tokens-reset": "2023-11-14T22:13:20Z",
    "retry-after": "1",
}


def test_anthropic_headers() -> None:
    word = parse_server_word(ANTHROPIC, NOW)
    assert word == ServerWord(
        retry_after=1.0,
        requests=Quota(50.0, 49.0, 1.0, 60.0),
        tokens=Quota(40000.0, 39000.0, 2.0, 60.0),
        source="anthropic",
    )
    assert word.requests is not None and word.requests.rate == pytest.approx(50 / 60)


def test_anthropic_tokens_fall_back_to_input_tokens() -> None:
    headers = {k: v for k, v in ANTHROPIC.items() if "-ratelimit-tokens-" not in k}
    word = parse_server_word(headers, NOW)
    assert word.tokens == Quota(30000.0, 29500.0, 3.0, 60.0)


def test_anthropic_output_tokens_only() -> None:
    word = parse_server_word({"anthropic-ratelimit-output-tokens-remaining": "10"}, NOW)
    assert word == ServerWord(None, None, None, "anthropic")


def test_anthropic_any_case_in_requests_dict() -> None:
    headers = CaseInsensitiveDict(
        {
            "Anthropic-RateLimit-Requests-Limit": "4000",
            "Anthropic-Ratelimit-Requests-Remaining": "3999",
            "ANTHROPIC-RATELIMIT-REQUESTS-RESET": "2023-11-14T22:13:20.250Z",
            "Request-Id": "req_011CQ",
        }
    )
    word = parse_server_word(headers, NOW)
    assert word.source == "anthropic"
    assert word.requests == Quota(4000.0, 3999.0, 0.25, 60.0)


@pytest.mark.parametrize(
    ("reset", "seconds"),
    [
        ("2023-11-14T22:13:21Z", 1.0),
        ("2023-11-14T22:13:21z", 1.0),
        ("2023-11-14t22:13:21Z", 1.0),
        ("2023-11-14 22:13:21Z", 1.0),
        ("2023-11-14T22:13:21.5Z", 1.5),
        ("2023-11-14T22:13:21.123456789Z", 1.123456789),
        ("2023-11-14T22:13:21+00:00", 1.0),
        ("2023-11-14T22:13:21.5+00:00", 1.5),
        ("2023-11-14T23:13:21+01:00", 1.0),
        ("2023-11-14T17:13:21-05:00", 1.0),
        ("2023-11-15T03:43:21+05:30", 1.0),
        ("2023-11-14T22:13:20Z", 0.0),
        ("2023-11-14T22:12:00Z", 0.0),  # in the past
        ("2000-01-01T00:00:00Z", 0.0),
        ("2023-11-15T22:13:20Z", MAX_SANE_WAIT),
    ],
)
def test_anthropic_reset(reset: str, seconds: float) -> None:
    word = parse_server_word({"anthropic-ratelimit-requests-reset": reset}, NOW)
    assert word.requests is not None
    assert word.requests.reset == pytest.approx(seconds)


@pytest.mark.parametrize(
    "reset",
    [
        "tomorrow",
        "",
        "2023-11-14T22:13:21",  # no offset: which zone?
        "2023-11-14",
        "2023-13-01T00:00:00Z",
        "2023-11-31T00:00:00Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:13:60Z",
        "2023-11-14T22:13:21+24:00",
        "2023-11-14T22:13:21+0100",
        "2023-11-16T22:13:21Z",  # more than a day away
        "9999-12-31T23:59:59Z",
        "30",
        "Tue, 14 Nov 2023 22:13:21 GMT",
    ],
)
def test_anthropic_reset_malformed(reset: str) -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-reset": reset,
    }
    word = parse_server_word(headers, NOW)
    assert word.requests == Quota(50.0, None, None, 60.0)


@pytest.mark.parametrize(
    ("headers", "requests"),
    [
        (
            {"ratelimit-policy": '"default";q=100;w=60', "ratelimit": '"default";r=50;t=30'},
            Quota(100.0, 50.0, 30.0, 60.0),
        ),
        # The tightest of several policies: 1000 a day is slower than 100 a minute.
        (
            {
                "ratelimit-policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
                "ratelimit": '"burst";r=80;t=10, "daily";r=500;t=3600',
            },
            Quota(1000.0, 500.0, 3600.0, 86400.0),
        ),
        (
            {
                "ratelimit-policy": '"daily";q=1000;w=86400,"burst";q=10;w=1',
                "ratelimit": '"daily";r=500;t=3600,"burst";r=9;t=1',
            },
            Quota(1000.0, 500.0, 3600.0, 86400.0),
        ),
        (
            {
                "ratelimit-policy": '"a";q=10;w=1, "b";q=60;w=60, "c";q=500;w=3600',
                "ratelimit": '"b";r=30;t=20',
            },
            # "c" is tightest; no report names it, so the first report is used.
            Quota(500.0, 30.0, 20.0, 3600.0),
        ),
        # No report names the policy: the first report is used.
        (
            {"ratelimit-policy": '"default";q=100;w=60', "ratelimit": '"other";r=7;t=3'},
            Quota(100.0, 7.0, 3.0, 60.0),
        ),
        # Tokens, as draft 07 wrote names, are as good as strings.
        (
            {"ratelimit-policy": "burst;q=100;w=60", "ratelimit": "burst;r=99;t=1"},
            Quota(100.0, 99.0, 1.0, 60.0),
        ),
        # A byte quota is no request rate.
        (
            {
                "ratelimit-policy": '"bytes";q=1;w=60;qu="content-bytes", "req";q=100;w=60',
                "ratelimit": '"bytes";r=0;t=5, "req";r=40;t=5',
            },
            Quota(100.0, 40.0, 5.0, 60.0),
        ),
        (
            {
                "ratelimit-policy": '"req";q=100;w=60;qu="requests";pk=:cHsdsRa894==:',
                "ratelimit": '"req";r=40;t=5;pk=:cHsdsRa894==:',
            },
            Quota(100.0, 40.0, 5.0, 60.0),
        ),
        ({"ratelimit-policy": '"default";q=100'}, Quota(100.0, None, None, None)),
        ({"ratelimit": '"default";r=50;t=30'}, Quota(None, 50.0, 30.0, None)),
        ({"ratelimit": '"default";r=50'}, Quota(None, 50.0, None, None)),
        ({"ratelimit": '"de\\"fault";r=0;t=0'}, Quota(None, 0.0, 0.0, None)),
        # Older drafts.
        (
            {"ratelimit-limit": "100", "ratelimit-remaining": "50", "ratelimit-reset": "30"},
            Quota(100.0, 50.0, 30.0, None),
        ),
        (
            {
                "ratelimit-limit": "100, 100;w=60",
                "ratelimit-remaining": "50",
                "ratelimit-reset": "30",
            },
            Quota(100.0, 50.0, 30.0, 60.0),
        ),
        (
            {"ratelimit-limit": "10, 10;w=1, 50;w=60", "ratelimit-remaining": "5"},
            Quota(10.0, 5.0, None, 1.0),
        ),
        (
            {"ratelimit-limit": "10, 50;w=60", "ratelimit-remaining": "5"},
            Quota(10.0, 5.0, None, 60.0),
        ),
        ({"ratelimit-limit": "100;w=60"}, Quota(100.0, None, None, 60.0)),
        ({"ratelimit-reset": "0"}, Quota(None, None, 0.0, None)),
        # Draft 06: RateLimit-Policy next to the old trio.
        (
            {
                "ratelimit-limit": "100",
                "ratelimit-remaining": "50",
                "ratelimit-reset": "30",
                "ratelimit-policy": "100;w=60",
            },
            Quota(100.0, 50.0, 30.0, 60.0),
        ),
    ],
)
def test_ietf_headers(headers: dict[str, str], requests: Quota) -> None:
    word = parse_server_word(headers, NOW)
    assert word == ServerWord(None, requests, None, "ietf")


def test_ietf_any_case_in_requests_dict() -> None:
    headers = CaseInsensitiveDict(
        {
            "Server": "nginx",
            "RateLimit-Policy": '"default";q=600;w=60',
            "RATELIMIT": '"default";r=599;t=59',
        }
    )
    word = parse_server_word(headers, NOW)
    assert word.requests == Quota(600.0, 599.0, 59.0, 60.0)
    assert word.requests.rate == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("headers", "requests"),
    [
        ({"ratelimit-policy": '"default;q=100;w=60'}, None),  # unterminated string
        ({"ratelimit-policy": '"default";q=abc;w=60'}, None),
        ({"ratelimit-policy": '"default";q=100;w=0'}, Quota(100.0, None, None, None)),
        ({"ratelimit-policy": '"default";q=100;w=-60'}, Quota(100.0, None, None, None)),
        ({"ratelimit-policy": '"default";q=0;w=60'}, None),
        ({"ratelimit-policy": ";;;"}, None),
        ({"ratelimit-policy": ""}, None),
        ({"ratelimit": '"default";r=-1;t=30'}, Quota(None, None, 30.0, None)),
        ({"ratelimit": '"default";r=50;t=1000000000'}, Quota(None, 50.0, None, None)),
        ({"ratelimit": '"default";r=inf;t=nan'}, None),
        ({"ratelimit": "r=50, t=30"}, None),
        ({"ratelimit-limit": "many", "ratelimit-remaining": "5"}, Quota(None, 5.0, None, None)),
        ({"ratelimit-reset": "1000000000"}, None),  # an epoch, or a wait of 31 years
        ({"ratelimit-reset": "Tue, 14 Nov 2023 22:13:21 GMT"}, None),
        ({"ratelimit-remaining": "-1"}, None),
        (
            {"ratelimit-limit": "10", "ratelimit-remaining": "11", "ratelimit-reset": "1"},
            Quota(10.0, None, 1.0, None),
        ),
    ],
)
def test_ietf_malformed(headers: dict[str, str], requests: Quota | None) -> None:
    assert parse_server_word(headers, NOW) == ServerWord(None, requests, None, "ietf")


IETF = {"ratelimit-policy": '"default";q=100;w=60', "ratelimit": '"default";r=50;t=30'}


@pytest.mark.parametrize(
    ("headers", "source"),
    [
        ({**IETF, **ANTHROPIC, **OPENAI}, "openai"),
        ({**IETF, **OPENAI}, "openai"),
        ({**IETF, **ANTHROPIC}, "anthropic"),
        (IETF, "ietf"),
        # Present but unreadable still claims the response: families are never mixed.
        ({**IETF, "x-ratelimit-limit-requests": "junk"}, "openai"),
    ],
)
def test_first_family_wins(headers: dict[str, str], source: str) -> None:
    word = parse_server_word(headers, NOW)
    assert word.source == source
    if source == "openai" and "x-ratelimit-reset-requests" not in headers:
        assert word.requests is None


@pytest.mark.parametrize(
    "headers",
    [
        {**OPENAI, "retry-after": "7"},
        {**ANTHROPIC, "retry-after-ms": "7000"},
        {**IETF, "retry-after": http_date(7)},
        {"retry-after": "7"},
    ],
)
def test_retry_after_rides_along(headers: dict[str, str]) -> None:
    word = parse_server_word(headers, NOW)
    assert word.retry_after == pytest.approx(7.0)
    assert word.retry_after == parse_retry_after(headers, NOW)
    assert not word.empty


def test_retry_after_alone() -> None:
    assert parse_server_word({"retry-after": "5"}, NOW) == ServerWord(5.0, None, None, None)


PLAIN = {
    "date": "Tue, 14 Nov 2023 22:13:20 GMT",
    "content-type": "application/json",
    "content-length": "512",
    "connection": "keep-alive",
    "x-request-id": "req_8b2f1c",
    "openai-processing-ms": "312",
    "cf-ray": "8250a1b2c3d4e5f6-AMS",
}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        PLAIN,
        CaseInsensitiveDict(PLAIN),
        CaseInsensitiveDict({"Content-Type": "text/event-stream", "X-Request-Id": "abc"}),
        # Near misses of the families' names.
        {"x-ratelimit": "5", "x-ratelimit-limit": "100", "anthropic-ratelimit": "5"},
        {"ratelimit-foo": "1", "retry-afterwards": "1"},
        # Told nothing usable.
        {"retry-after": "never"},
    ],
)
def test_nothing_told_is_empty(headers: Mapping[str, str]) -> None:
    assert parse_server_word(headers, NOW) is EMPTY


def test_near_miss_names_do_not_pick_a_family() -> None:
    word = parse_server_word({"x-ratelimit-limit": "100", "retry-after": "1"}, NOW)
    assert word == ServerWord(1.0, None, None, None)


@pytest.mark.parametrize(
    ("limit", "window", "rate"),
    [
        (60.0, 60.0, 1.0),
        (100.0, 1.0, 100.0),
        (1000.0, 86400.0, 1000.0 / 86400.0),
        (None, 60.0, None),
        (60.0, None, None),
        (None, None, None),
        (0.0, 60.0, None),
        (60.0, 0.0, None),
        (-1.0, 60.0, None),
    ],
)
def test_quota_rate(limit: float | None, window: float | None, rate: float | None) -> None:
    quota = Quota(limit=limit, remaining=None, reset=None, window=window)
    assert quota.rate == (None if rate is None else pytest.approx(rate))


@pytest.mark.parametrize(
    ("word", "empty"),
    [
        (EMPTY, True),
        (ServerWord(None, None, None, "openai"), True),
        (ServerWord(0.0, None, None, None), False),
        (ServerWord(None, Quota(None, 0.0, None, 60.0), None, "openai"), False),
        (ServerWord(None, None, Quota(10.0, None, None, 60.0), "anthropic"), False),
    ],
)
def test_server_word_empty(word: ServerWord, empty: bool) -> None:
    assert word.empty is empty


def test_empty_and_frozen() -> None:
    assert ServerWord(None, None, None, None) == EMPTY
    assert EMPTY.empty
    with pytest.raises(dataclasses.FrozenInstanceError):
        EMPTY.source = "openai"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Quota(1.0, 1.0, 1.0, 1.0).limit = 2.0  # type: ignore[misc]


def test_public_names() -> None:
    assert set(_headers.__all__) == {
        "EMPTY",
        "MAX_SANE_WAIT",
        "Quota",
        "ServerWord",
        "parse_duration",
        "parse_retry_after",
        "parse_server_word",
    }
    assert MAX_SANE_WAIT == 86_400.0


class Exploding(Mapping[str, str]):
    """A mapping that fails however it is read."""

    def __getitem__(self, key: str) -> str:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        raise RuntimeError("boom")


class LyingKeys(Mapping[str, str]):
    """Lists a rate header it then cannot produce."""

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(["x-ratelimit-limit-requests", "retry-after"])

    def __len__(self) -> int:
        return 2


@pytest.mark.parametrize(
    "headers",
    [
        Exploding(),
        LyingKeys(),
        {"retry-after": None, "x-ratelimit-limit-requests": 5},
        {"retry-after": b"5", "ratelimit": 1.5},
        {1: "2", None: "x"},
        {"anthropic-ratelimit-requests-reset": "\x00\udcff"},
        {"ratelimit-policy": '"' * 1000},
        {"ratelimit-policy": ";q=" * 1000},
        {"ratelimit-policy": ", ".join(f'"p{i}";q={i};w={i % 7}' for i in range(500))},
        {"x-ratelimit-reset-requests": "1h" * 10_000},
    ],
)
def test_never_raises(headers: Mapping[str, str]) -> None:
    word = parse_server_word(headers, NOW)
    assert isinstance(word, ServerWord)
    assert_sane(word)
    parse_retry_after(headers, NOW)


def assert_sane(word: ServerWord) -> None:
    assert word.source in (None, "openai", "anthropic", "ietf")
    if word.retry_after is not None:
        assert 0.0 <= word.retry_after <= MAX_SANE_WAIT
    for quota in (word.requests, word.tokens):
        if quota is None:
            continue
        assert (quota.limit, quota.remaining, quota.reset) != (None, None, None)
        for value in (quota.limit, quota.remaining, quota.reset, quota.window):
            assert value is None or (math.isfinite(value) and value >= 0)
        if quota.limit is not None:
            assert quota.limit > 0
        if quota.limit is not None and quota.remaining is not None:
            assert quota.remaining <= quota.limit
        if quota.reset is not None:
            assert quota.reset <= MAX_SANE_WAIT
        if quota.rate is not None:
            assert math.isfinite(quota.rate) and quota.rate > 0


FUZZ_NAMES = [
    *OPENAI,
    *(k for k in ANTHROPIC if k != "retry-after"),
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "retry-after",
    "retry-after-ms",
    "content-type",
]
FUZZ_ALPHABET = '0123456789.-+eE;=,:" \tqwrtsmhuzZT\u00b5\u03bcinfa\\/*_'
FUZZ_WORDS = [
    "5",
    "100",
    "inf",
    "nan",
    "-1",
    "0",
    "1e309",
    "9" * 40,
    "2023-11-14T22:13:21Z",
    "Tue, 14 Nov 2023 22:13:21 GMT",
    '"default";q=100;w=60',
    '"default";r=5;t=1',
    "100, 100;w=60",
    "6m0s",
    "500\u00b5s",
]


def fuzz_value(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(FUZZ_WORDS) + "".join(
            rng.choice(FUZZ_ALPHABET) for _ in range(rng.randrange(3))
        )
    return "".join(rng.choice(FUZZ_ALPHABET) for _ in range(rng.randrange(30)))


def fuzz_name(rng: random.Random) -> str:
    name = rng.choice(FUZZ_NAMES)
    return "".join(c.upper() if rng.random() < 0.3 else c for c in name)


def test_fuzz_never_raises() -> None:
    rng = random.Random(0)
    for _ in range(500):
        plain = {fuzz_name(rng): fuzz_value(rng) for _ in range(rng.randrange(1, 8))}
        for headers in (plain, CaseInsensitiveDict(plain)):
            word = parse_server_word(headers, NOW)
            assert isinstance(word, ServerWord)
            assert_sane(word)
            retry_after = parse_retry_after(headers, NOW)
            assert retry_after is None or 0.0 <= retry_after <= MAX_SANE_WAIT
        duration = parse_duration(fuzz_value(rng))
        assert duration is None or 0.0 <= duration <= MAX_SANE_WAIT


def test_fuzz_random_names_and_bytes() -> None:
    rng = random.Random(0)
    for _ in range(300):
        headers = {
            "".join(chr(rng.randrange(32, 0x3FF)) for _ in range(rng.randrange(1, 25))): "".join(
                chr(rng.randrange(0, 0x3FF)) for _ in range(rng.randrange(40))
            )
            for _ in range(rng.randrange(6))
        }
        assert_sane(parse_server_word(headers, NOW))


@pytest.fixture
def fresh_log(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> set[str]:
    logged: set[str] = set()
    monkeypatch.setattr(_headers, "_LOGGED", logged)
    caplog.set_level(logging.DEBUG, logger="comet_sync")
    return logged


def test_malformed_logged_once_per_name(
    fresh_log: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        parse_server_word({"x-ratelimit-limit-requests": "lots"}, NOW)
    parse_server_word({"x-ratelimit-remaining-requests": "-2"}, NOW)
    records = [r for r in caplog.records if r.name == "comet_sync"]
    assert [r.levelno for r in records] == [logging.DEBUG, logging.DEBUG]
    assert "x-ratelimit-limit-requests" in records[0].getMessage()
    assert "x-ratelimit-remaining-requests" in records[1].getMessage()
    assert fresh_log == {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests"}


def test_azure_unknown_limit_is_not_malformed(
    fresh_log: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    parse_server_word({"x-ratelimit-limit-requests": "-1"}, NOW)
    assert not caplog.records
    assert not fresh_log


def test_logged_value_is_truncated(fresh_log: set[str], caplog: pytest.LogCaptureFixture) -> None:
    parse_server_word({"retry-after": "x" * 10_000}, NOW)
    (record,) = caplog.records
    assert len(record.getMessage()) < 120


def test_logged_names_are_capped(fresh_log: set[str], caplog: pytest.LogCaptureFixture) -> None:
    fresh_log.update(f"name-{i}" for i in range(_headers._LOGGED_CAP))
    parse_server_word({"retry-after": "never"}, NOW)
    assert not caplog.records
    assert len(fresh_log) == _headers._LOGGED_CAP


def test_nothing_logged_without_debug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    logged: set[str] = set()
    monkeypatch.setattr(_headers, "_LOGGED", logged)
    caplog.set_level(logging.INFO, logger="comet_sync")
    parse_server_word({"retry-after": "never"}, NOW)
    assert not caplog.records
    assert not logged  # so turning DEBUG on later still names it


def test_unreadable_headers_logged(fresh_log: set[str], caplog: pytest.LogCaptureFixture) -> None:
    assert parse_server_word(Exploding(), NOW) is EMPTY
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.exc_info is not None


@pytest.mark.parametrize(
    "reset, seconds, resolution",
    [
        ("1s", 1.0, 0.001),
        ("250ms", 0.25, 0.001),
        ("2", 2.0, 1.0),  # a bare integer: whole seconds, maybe rounded up
        (str(int(NOW) + 30), 30.0, 1.0),  # a Unix time in seconds (gateways send when it ends)
        (str(int(NOW * 1000) + 1500), 1.5, 0.001),  # ... or in milliseconds
        (str(int(NOW) - 30), 0.0, 1.0),  # a moment past: nothing to wait
    ],
)
def test_openai_reset_as_a_duration_or_a_moment(
    reset: str, seconds: float, resolution: float
) -> None:
    word = parse_server_word(
        {"x-ratelimit-limit-requests": "50", "x-ratelimit-reset-requests": reset}, NOW
    )
    assert word.requests is not None
    assert word.requests.reset == pytest.approx(seconds)
    assert word.requests.reset_resolution == resolution


def test_an_rfc3339_reset_without_a_fraction_is_coarse() -> None:
    whole = parse_server_word({"anthropic-ratelimit-requests-reset": "2023-11-14T22:13:21Z"}, NOW)
    fine = parse_server_word({"anthropic-ratelimit-requests-reset": "2023-11-14T22:13:20.5Z"}, NOW)
    assert whole.requests is not None and fine.requests is not None
    assert (whole.requests.reset, whole.requests.reset_resolution) == (1.0, 1.0)
    assert (fine.requests.reset, fine.requests.reset_resolution) == (0.5, 0.001)


def test_ietf_reset_written_with_a_unit_and_the_window_stated() -> None:
    word = parse_server_word(
        {"ratelimit-limit": "40, 40;w=1", "ratelimit-remaining": "3", "ratelimit-reset": "0.6s"},
        NOW,
    )
    assert word.requests is not None
    assert (word.requests.reset, word.requests.window) == (0.6, 1.0)
    assert word.requests.window_stated
    openai = parse_server_word({"x-ratelimit-limit-requests": "40"}, NOW)
    assert openai.requests is not None and not openai.requests.window_stated
