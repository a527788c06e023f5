"""Key hygiene: the OpenRouter API key is cleaned, checked before use, and never reaches a log,
an exception, an XCom or the Airflow home, on any error path of the hook.

1. Surrounding whitespace is stripped (a key mounted from a file ends with a newline).
2. A key, or a header extra, that cannot be sent in a header is refused before any request with
   an ``InvalidConnectionError`` naming the connection and the field, never the key.
3. Every error path (each refusal status, each transport fault, each local protocol error, each
   HTTP library's refusal of a header value) runs with a distinctive key against an emulator
   that accepts it, and every log line (DEBUG, all loggers), captured output, exception text,
   traceback (with and without frame locals), XCom and task state value is searched for it.
4. One ``dag.test()`` run in its own Airflow home, then every file under it is searched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from orvideo_emulator import EmulatorControl, EmulatorServer

from airflow_provider_orvideo._internal.api import ConnectionSettings
from airflow_provider_orvideo.exceptions import (
    InvalidConnectionError,
    OpenRouterVideoError,
    RequestNotSentError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from airflow_provider_orvideo.retry import RetryPolicy
from tests.adversarial.conftest import airflow_env, migrated_airflow_home
from tests.helpers import (
    InMemoryTaskStateStore,
    RecordingTaskInstance,
    context_with,
    run_task,
    without_airflow_mask_requests,
)

CONN_ID = "openrouter_key_hygiene"
OLD_AIOHTTP_SENDS_IT = pytest.mark.skipif(
    tuple(int(part) for part in aiohttp.__version__.split(".")[:2]) < (3, 14),
    reason="aiohttp before 3.14 sends NUL and DEL in a header value; the values the connection "
    "supplies are refused before any library sees them (test_unsendable_*), so no key reaches it",
)
FAST = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02)
BODY = {"model": "google/veo-3.1", "prompt": "a lighthouse at dawn", "duration": 4}
HOOK_OPS = ("get_job", "aget_job", "download", "submit", "list_models")
ENDPOINT_OF = {
    "get_job": "poll",
    "aget_job": "poll",
    "download": "content",
    "submit": "submit",
    "list_models": "models",
}


def set_connection(
    monkeypatch: pytest.MonkeyPatch,
    *,
    host: str,
    password: str,
    extra: dict[str, Any] | None = None,
    conn_id: str = CONN_ID,
) -> None:
    connection = {"conn_type": "openrouter", "host": host, "password": password, "extra": extra or {}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


async def _aget_job(hook: OpenRouterVideoHook, job_id: str) -> Any:
    try:
        return await hook.aget_job(job_id)
    finally:
        await hook.aclose()


def call(op: str, hook: OpenRouterVideoHook, job_id: str, target: Path) -> Any:
    """One hook path: the sync JSON calls, the triggerer's ``aget_job`` and the download."""
    if op == "get_job":
        return hook.get_job(job_id)
    if op == "aget_job":
        return asyncio.run(_aget_job(hook, job_id))
    if op == "download":
        return hook.download_output(job_id, 0, str(target))
    if op == "submit":
        return hook.submit(BODY)
    if op == "list_models":
        return hook.list_models(max_age=0)
    raise AssertionError(op)


def outcome_of(op: str, hook: OpenRouterVideoHook, job_id: str, target: Path) -> BaseException | None:
    """Run ``op``; return what it raised (this frame, part of every traceback, holds no key)."""
    try:
        call(op, hook, job_id, target)
    except Exception as error:
        return error
    finally:
        hook.close()
    return None


def secret_forms(key: str) -> list[str]:
    """The key, the key without its ``sk-or-v1-`` prefix, and every 12-character slice of its
    random tail (a partly quoted key is a leak too)."""
    tail = key.removeprefix("sk-or-v1-")
    forms = [key.strip(), tail.strip()]
    random_part = tail[-32:]
    forms += [random_part[i : i + 12] for i in range(len(random_part) - 11)]
    return forms


def exception_texts(error: BaseException) -> dict[str, str]:
    """Everything an exception can put into a log: str, repr, args, attributes, the formatted
    traceback, the traceback with each frame's locals, and the same for every chained exception
    (``__cause__`` and ``__context__``, even a suppressed one)."""
    texts = {
        "format_exception": "".join(traceback.format_exception(error)),
        "traceback with locals": "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        ),
    }
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        name = type(current).__name__
        texts[f"str({name})"] = str(current)
        texts[f"repr({name})"] = repr(current)
        texts[f"{name}.args"] = repr(current.args)
        texts[f"vars({name})"] = repr({k: repr(v) for k, v in vars(current).items()})
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return texts


def log_texts(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> dict[str, str]:
    out, err = capfd.readouterr()
    texts = {"caplog.text": caplog.text, "stdout": out, "stderr": err}
    for n, record in enumerate(caplog.records):
        texts[f"log record {n} ({record.name})"] = record.getMessage() + repr(record.args)
        if record.exc_info and record.exc_info[1] is not None:
            texts.update({f"log record {n} {k}": v for k, v in exception_texts(record.exc_info[1]).items()})
    return texts


def assert_no_leak(keys: list[str], texts: dict[str, str]) -> None:
    leaks = [
        (where, form)
        for key in keys
        for form in secret_forms(key)
        for where, text in texts.items()
        if form in text
    ]
    assert not leaks, f"the API key leaked into: {sorted({where for where, _ in leaks})}"


# -- 1 and 2: stripping and refusal, against the shared emulator -----------------------------------


def wait_until_completed(hook: OpenRouterVideoHook, job_id: str) -> None:
    for _ in range(400):
        if hook.get_job(job_id).status == "completed":
            return
        time.sleep(0.02)
    raise AssertionError("the job never completed")


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda key: key + "\n", id="trailing newline"),
        pytest.param(lambda key: key + "\r\n", id="trailing CRLF"),
        pytest.param(lambda key: " \t " + key + "\t  ", id="leading and trailing spaces and tabs"),
    ],
)
def test_surrounding_whitespace_is_stripped_and_the_key_works(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wrap: Any, record_property: Any
) -> None:
    set_connection(monkeypatch, host=emulator.base_url, password=wrap(emulator.api_key))
    hook = OpenRouterVideoHook(CONN_ID, retry_policy=FAST)
    assert hook.get_settings().api_key == emulator.api_key
    job = hook.submit(BODY)
    wait_until_completed(hook, job.id)
    assert (
        asyncio.run(_aget_job(OpenRouterVideoHook(CONN_ID, retry_policy=FAST), job.id)).status == "completed"
    )
    assert hook.download_output(job.id, 0, str(tmp_path / "out.mp4")) > 1000
    hook.close()
    requests = emulator.control.requests()
    record_property("requests", len(requests))
    assert requests
    assert all(r["status"] < 400 for r in requests), [(r["endpoint"], r["status"]) for r in requests]
    assert {r["endpoint"] for r in requests} >= {"submit", "poll", "content"}


KEY_TAIL = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("op", HOOK_OPS)
@pytest.mark.parametrize(
    ("password", "problem"),
    [
        pytest.param(
            f"sk-or-v1-HYG{KEY_TAIL[:10]}\n{KEY_TAIL[10:]}",
            "a line break (LF) at position 23",
            id="internal newline",
        ),
        pytest.param(
            f"sk-or-v1-HYG{KEY_TAIL[:10]}\r{KEY_TAIL[10:]}", "a carriage return (CR)", id="internal CR"
        ),
        pytest.param(f"sk-or-v1-HYG{KEY_TAIL[:10]}\x00{KEY_TAIL[10:]}", "a NUL character", id="NUL"),
        pytest.param(f"sk-or-v1-HYG{KEY_TAIL[:10]}\x7f{KEY_TAIL[10:]}", "a DEL control character", id="DEL"),
        pytest.param(
            f"sk-or-v1-HYG{KEY_TAIL[:10]}é{KEY_TAIL[10:]}",
            "a non-ASCII character at position 23",
            id="non-ASCII (latin-1)",
        ),
        pytest.param(
            f"sk-or-v1-HYG{KEY_TAIL[:10]}€{KEY_TAIL[10:]}",
            "a non-ASCII character at position 23",
            id="non-ASCII (not latin-1)",
        ),
        pytest.param(
            f"\ufeffsk-or-v1-HYG{KEY_TAIL}", "a non-ASCII character at position 1", id="byte order mark"
        ),
        pytest.param(
            f"sk-or-v1-HYG{KEY_TAIL[:10]} {KEY_TAIL[10:]}", "a space at position 23", id="space inside"
        ),
        pytest.param(
            f"sk-or-v1-HYG{KEY_TAIL[:10]}\t{KEY_TAIL[10:]}", "a tab at position 23", id="tab inside"
        ),
    ],
)
def test_unsendable_key_is_refused_before_any_request(
    emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    password: str,
    problem: str,
    op: str,
    record_property: Any,
) -> None:
    set_connection(monkeypatch, host=emulator.base_url, password=password)
    error = outcome_of(op, OpenRouterVideoHook(CONN_ID, retry_policy=FAST), "gen-vid-x", tmp_path / "o.mp4")
    record_property("outcome", type(error).__name__)
    record_property("requests", len(emulator.control.requests()))
    assert isinstance(error, InvalidConnectionError), repr(error)
    message = str(error)
    assert repr(CONN_ID) in message
    assert "password" in message
    assert "API key" in message
    assert problem in message
    assert_no_leak([password], exception_texts(error))
    assert emulator.control.requests() == []
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("op", HOOK_OPS)
@pytest.mark.parametrize(
    "password", [pytest.param(" \n\t \r\n", id="whitespace only"), pytest.param("", id="empty")]
)
def test_whitespace_only_key_is_a_missing_key(
    emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    password: str,
    op: str,
    record_property: Any,
) -> None:
    set_connection(monkeypatch, host=emulator.base_url, password=password)
    error = outcome_of(op, OpenRouterVideoHook(CONN_ID, retry_policy=FAST), "gen-vid-x", tmp_path / "o.mp4")
    record_property("outcome", type(error).__name__)
    record_property("requests", len(emulator.control.requests()))
    assert isinstance(error, InvalidConnectionError), repr(error)
    assert "The OpenRouter connection has no API key" in str(error)
    assert emulator.control.requests() == []


@pytest.mark.parametrize("op", ["get_job", "aget_job", "download"])
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {"http_referer": "https://example.com/\r\nX-Injected: 1"},
            ["'http_referer'", "HTTP-Referer", "a carriage return (CR) at position 21"],
            id="http_referer with a header injection",
        ),
        pytest.param(
            {"app_title": "Nightly\nrenders"},
            ["'app_title'", "a line break (LF) at position 8"],
            id="app_title line break",
        ),
        pytest.param(
            {"app_title": "Café renders"}, ["'app_title'", "a non-ASCII character"], id="app_title non-ASCII"
        ),
        pytest.param(
            {"app_title": "Renders €"}, ["'app_title'", "a non-ASCII character"], id="app_title not latin-1"
        ),
        pytest.param({"app_title": "a\x00b"}, ["'app_title'", "a NUL character"], id="app_title NUL"),
        pytest.param({"timeout": "thirty"}, ["'timeout'", "'thirty'"], id="timeout not a number"),
        pytest.param({"timeout": 0}, ["'timeout'", " 0,"], id="timeout zero"),
        pytest.param({"timeout": "-5"}, ["'timeout'", "'-5'"], id="timeout negative"),
        pytest.param({"timeout": "nan"}, ["'timeout'", "'nan'"], id="timeout nan"),
        pytest.param({"timeout": "inf"}, ["'timeout'", "'inf'"], id="timeout inf"),
        pytest.param({"timeout": True}, ["'timeout'", "True"], id="timeout boolean"),
        pytest.param({"timeout": [30]}, ["'timeout'", "[30]"], id="timeout list"),
    ],
)
def test_unsendable_extra_is_refused_before_any_request(
    emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    extra: dict[str, Any],
    expected: list[str],
    op: str,
    record_property: Any,
) -> None:
    set_connection(monkeypatch, host=emulator.base_url, password=emulator.api_key, extra=extra)
    error = outcome_of(op, OpenRouterVideoHook(CONN_ID, retry_policy=FAST), "gen-vid-x", tmp_path / "o.mp4")
    record_property("outcome", type(error).__name__)
    record_property("requests", len(emulator.control.requests()))
    assert isinstance(error, InvalidConnectionError), repr(error)
    assert repr(CONN_ID) in str(error)
    for part in expected:
        assert part in str(error)
    assert emulator.api_key not in str(error)
    assert emulator.control.requests() == []


def test_header_extras_are_stripped(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"app_title": "  Nightly renders \n", "http_referer": "\thttps://example.com/pipelines \r\n"}
    set_connection(monkeypatch, host=emulator.base_url, password=emulator.api_key, extra=extra)
    hook = OpenRouterVideoHook(CONN_ID, retry_policy=FAST)
    hook.list_models(max_age=0)
    hook.close()
    (request,) = emulator.control.requests()
    assert request["headers"]["x-openrouter-title"] == "Nightly renders"
    assert request["headers"]["http-referer"] == "https://example.com/pipelines"


def test_host_with_an_unsupported_scheme_is_refused(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host="ftp://127.0.0.1:21/api/v1", password=emulator.api_key)
    with pytest.raises(InvalidConnectionError, match=r"host field .* scheme 'ftp'"):
        OpenRouterVideoHook(CONN_ID).get_settings()


# -- 3: every error path with a distinctive key ------------------------------------------------


@dataclass(frozen=True)
class CanaryEmulator:
    server: EmulatorServer
    base_url: str
    control: EmulatorControl
    api_key: str


@pytest.fixture(scope="module")
def canary_key() -> str:
    return "sk-or-v1-LEAKCANARY" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def canary_server(canary_key: str) -> Iterator[CanaryEmulator]:
    """An emulator whose key is the canary, so that every path (a completed job, a cut download)
    can be reached with it."""
    with (
        EmulatorServer(api_key=canary_key, pending_seconds=0.05, in_progress_seconds=0.1) as server,
        EmulatorControl(server.origin) as control,
    ):
        yield CanaryEmulator(server, server.base_url, control, canary_key)


@pytest.fixture
def canary(canary_server: CanaryEmulator) -> CanaryEmulator:
    canary_server.control.reset()
    return canary_server


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def completed_job(canary: CanaryEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    set_connection(monkeypatch, host=canary.base_url, password=canary.api_key, conn_id="canary_setup")
    hook = OpenRouterVideoHook("canary_setup", retry_policy=FAST)
    job = hook.submit(BODY)
    wait_until_completed(hook, job.id)
    hook.close()
    return job.id


@dataclass(frozen=True)
class Case:
    """One error path: a fault at the emulator, a connection, or settings built around the checks."""

    fault: dict[str, Any] | None = None
    password_suffix: str = "\n"  # what a key from a mounted file carries: stripped, then accepted
    password_infix: str | None = None  # a character put inside the key: refused before sending
    extra: dict[str, Any] | None = None
    refused_port: bool = False
    raw_settings: dict[str, Any] | None = None  # made around settings_from_connection's checks
    needs_job: bool = False


STATUSES = [400, 401, 402, 403, 404, 409, 413, 429, 500, 502, 503]


def _grep_cases() -> list[Any]:
    cases: list[Any] = []
    for status in STATUSES:
        for op in HOOK_OPS:
            fault = {"kind": "status", "status": status, "retry_after": "0", "times": 5}
            fault["message"] = f"scripted {status}"
            cases.append(pytest.param(op, Case(fault=fault), id=f"HTTP {status}-{op}"))
    for op in HOOK_OPS:
        cases.append(pytest.param(op, Case(fault={"kind": "reset", "times": 5}), id=f"connection reset-{op}"))
        cases.append(
            pytest.param(
                op,
                Case(fault={"kind": "delay", "seconds": 1.0, "times": 2}, extra={"timeout": 0.3}),
                id=f"read timeout-{op}",
            )
        )
        cases.append(pytest.param(op, Case(refused_port=True), id=f"connection refused-{op}"))
    for op in ("get_job", "aget_job", "submit", "list_models"):
        cases.append(
            pytest.param(op, Case(fault={"kind": "malformed_json", "times": 5}), id=f"malformed JSON-{op}")
        )
    cases.append(
        pytest.param(
            "download", Case(fault={"kind": "truncate", "times": 5}, needs_job=True), id="cut body-download"
        )
    )
    for op in ("get_job", "aget_job", "download"):
        cases.append(
            pytest.param(op, Case(fault={"kind": "vanish"}, needs_job=True), id=f"job vanished-{op}")
        )
    for op in HOOK_OPS:
        cases += [
            pytest.param(op, Case(password_infix="\n"), id=f"key with a line break refused-{op}"),
            pytest.param(
                op, Case(extra={"app_title": "x\r\nX-Evil: 1"}), id=f"app_title injection refused-{op}"
            ),
            pytest.param(op, Case(raw_settings={"key_suffix": "\n"}), id=f"local: key ends in LF-{op}"),
            pytest.param(
                op, Case(raw_settings={"key_suffix": "\r\nX-Evil: 1"}), id=f"local: key with CRLF-{op}"
            ),
            pytest.param(op, Case(raw_settings={"key_suffix": "\x00"}), id=f"local: key with NUL-{op}"),
            pytest.param(op, Case(raw_settings={"key_suffix": "€"}), id=f"local: non-latin-1 key-{op}"),
            pytest.param(op, Case(raw_settings={"title": "x\r\ny"}), id=f"local: app_title with CRLF-{op}"),
            pytest.param(op, Case(raw_settings={"scheme": "ftp"}), id=f"local: unsupported URL scheme-{op}"),
        ]
    return cases


def _hook_for(case: Case, canary: CanaryEmulator, monkeypatch: pytest.MonkeyPatch) -> OpenRouterVideoHook:
    key = canary.api_key
    host = f"http://127.0.0.1:{closed_port()}/api/v1" if case.refused_port else canary.base_url
    password = key + case.password_suffix
    if case.password_infix is not None:
        password = key[:20] + case.password_infix + key[20:]
    set_connection(monkeypatch, host=host, password=password, extra=case.extra, conn_id="openrouter_canary")
    hook = OpenRouterVideoHook("openrouter_canary", retry_policy=FAST)
    if case.raw_settings is not None:
        raw = case.raw_settings
        settings = hook.get_settings()
        settings = replace(
            settings,
            api_key=settings.api_key + raw.get("key_suffix", ""),
            extra_headers={"X-OpenRouter-Title": raw["title"]} if "title" in raw else {},
            base_url=settings.base_url.replace("http://", f"{raw['scheme']}://")
            if "scheme" in raw
            else settings.base_url,
        )
        assert isinstance(settings, ConnectionSettings)
        hook._settings = settings  # settings made around settings_from_connection's checks
    return hook


@pytest.mark.parametrize(("op", "case"), _grep_cases())
def test_no_error_path_leaks_the_key(
    canary: CanaryEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    op: str,
    case: Case,
    record_property: Any,
) -> None:
    job_id = completed_job(canary, monkeypatch) if case.needs_job or op == "download" else "gen-vid-nope"
    hook = _hook_for(case, canary, monkeypatch)
    before = len(canary.control.requests())
    if case.fault is not None:
        canary.control.add_fault(ENDPOINT_OF[op], **case.fault)
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    error = outcome_of(op, hook, job_id, tmp_path / "out.mp4")
    requests = len(canary.control.requests()) - before
    record_property("outcome", type(error).__name__)
    record_property("requests", requests)
    texts = log_texts(caplog, capfd)
    assert isinstance(error, OpenRouterVideoError), repr(error)
    texts.update(exception_texts(error))
    assert_no_leak([canary.api_key], texts)
    assert not (tmp_path / "out.mp4").exists()
    if (
        case.raw_settings is not None
        or case.password_infix is not None
        or (case.extra and "app_title" in case.extra)
    ):
        # Refused locally: at once, never through the retry policy.
        assert "retrying in" not in caplog.text
        assert not any("OpenRouter" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("op", HOOK_OPS)
@pytest.mark.parametrize(
    ("raw", "expected", "field"),
    [
        pytest.param({"key_suffix": "\n"}, InvalidConnectionError, "password", id="key ends in LF"),
        pytest.param({"key_suffix": "\r\nX-Evil: 1"}, InvalidConnectionError, "password", id="key with CRLF"),
        pytest.param({"title": "x\r\ny"}, InvalidConnectionError, "'app_title'", id="app_title with CRLF"),
        pytest.param({"scheme": "ftp"}, RequestNotSentError, "host (base URL)", id="unsupported URL scheme"),
    ],
)
def test_local_protocol_errors_are_raised_at_once(
    canary: CanaryEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    raw: dict[str, Any],
    expected: type[Exception],
    field: str,
    op: str,
    record_property: Any,
) -> None:
    """Settings made around settings_from_connection (a subclass, a test): the hook checks their
    headers before an HTTP library sees them, and an unusable URL scheme refused by the library is
    "not sent, not retryable": one attempt, a provider exception without context, no request."""
    hook = _hook_for(Case(raw_settings=raw), canary, monkeypatch)
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    error = outcome_of(op, hook, "gen-vid-nope", tmp_path / "out.mp4")
    record_property("outcome", type(error).__name__)
    record_property("requests", len(canary.control.requests()))
    assert type(error) is expected, repr(error)
    assert field in str(error)
    assert "openrouter_canary" in str(error)
    assert error.__context__ is None
    assert error.__cause__ is None
    assert canary.control.requests() == []
    assert "retrying in" not in caplog.text
    assert time.monotonic() - started < 2


def _library_refusal(
    hook: OpenRouterVideoHook, path: str, value: str, tmp_path: Path
) -> BaseException | None:
    """Make one HTTP library refuse a header the connection checks do not cover (the ``Accept``
    header the hook adds itself), to see how each driver classifies that library's exception."""
    from dataclasses import replace

    from airflow_provider_orvideo._internal.api import content_request, get_job_request
    from airflow_provider_orvideo._internal.atomic_output import AtomicOutput

    try:
        if path == "httpx":
            hook._send(replace(get_job_request("gen-vid-nope"), accept=value))
        elif path == "httpx download":
            output = AtomicOutput(str(tmp_path / "out.mp4"))
            output.open()
            try:
                hook._receive(replace(content_request("gen-vid-nope", 0), accept=value), output)
            finally:
                output.discard()
        else:

            async def poll_once() -> None:
                try:
                    await hook._asend(replace(get_job_request("gen-vid-nope"), accept=value))
                finally:
                    await hook.aclose()

            asyncio.run(poll_once())
    except Exception as error:
        return error
    finally:
        hook.close()
    return None


@pytest.mark.parametrize(
    ("path", "value", "library_error"),
    [
        pytest.param("httpx", "a\nb", "LocalProtocolError", id="httpx-line break"),
        pytest.param("httpx", "a\x00b", "LocalProtocolError", id="httpx-NUL"),
        pytest.param("httpx", "caf\u00e9", "UnicodeEncodeError", id="httpx-non-ASCII"),
        pytest.param("httpx download", "a\nb", "LocalProtocolError", id="download-line break"),
        pytest.param("httpx download", "\u20ac", "UnicodeEncodeError", id="download-not latin-1"),
        pytest.param("aiohttp", "a\nb", "ValueError", id="aiohttp-line break"),
        pytest.param("aiohttp", "a\x00b", "ValueError", id="aiohttp-NUL", marks=OLD_AIOHTTP_SENDS_IT),
        pytest.param("aiohttp", "a\x7fb", "ValueError", id="aiohttp-DEL", marks=OLD_AIOHTTP_SENDS_IT),
    ],
)
def test_http_library_refusals_are_classified_as_not_sent(
    canary: CanaryEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    path: str,
    value: str,
    library_error: str,
    record_property: Any,
) -> None:
    """What each library raises for a header value it cannot send becomes "not sent, not retried"."""
    set_connection(monkeypatch, host=canary.base_url, password=canary.api_key, conn_id="openrouter_canary")
    hook = OpenRouterVideoHook("openrouter_canary", retry_policy=FAST)
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    error = _library_refusal(hook, path, value, tmp_path)
    record_property("outcome", f"{type(error).__name__}({library_error})")
    record_property("requests", len(canary.control.requests()))
    assert type(error) is RequestNotSentError, repr(error)
    assert f"({library_error})" in str(error)
    assert error.__context__ is None or error.__suppress_context__
    assert "retrying in" not in caplog.text
    assert canary.control.requests() == []
    assert list(tmp_path.iterdir()) == []
    texts = log_texts(caplog, capfd)
    texts.update(exception_texts(error))
    assert_no_leak([canary.api_key], texts)


# -- the operator: XComs and task state -----------------------------------------------------------


def try_of(operator: Any, ti: RecordingTaskInstance, store: InMemoryTaskStateStore) -> BaseException | None:
    """One try as Airflow runs it; return what it raised (this frame holds no key)."""
    try:
        run_task(operator, context_with(ti, store))
    except Exception as error:
        return error
    return None


@pytest.mark.parametrize(
    ("endpoint", "fault", "password"),
    [
        *[
            pytest.param(
                "submit",
                {"kind": "status", "status": s, "retry_after": "0", "times": 6},
                None,
                id=f"HTTP {s} on submit",
            )
            for s in STATUSES
        ],
        *[
            pytest.param("poll", {"kind": "status", "status": s, "times": 1}, None, id=f"HTTP {s} on poll")
            for s in (400, 401, 403, 404)
        ],
        pytest.param("submit", {"kind": "reset", "after_create": True}, None, id="reset after submit"),
        pytest.param("content", {"kind": "truncate", "times": 1}, None, id="cut body, resumed"),
        pytest.param("content", {"kind": "status", "status": 401}, None, id="HTTP 401 on download"),
        pytest.param(None, None, "infix", id="key refused"),
    ],
)
def test_operator_tries_leak_nothing(
    canary: CanaryEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    endpoint: str | None,
    fault: dict[str, Any] | None,
    password: str | None,
    record_property: Any,
) -> None:
    key = canary.api_key
    value = key[:20] + "\n" + key[20:] if password == "infix" else key + "\n"
    set_connection(monkeypatch, host=canary.base_url, password=value, conn_id="openrouter_canary")
    if fault is not None and endpoint is not None:
        canary.control.add_fault(endpoint, **fault)
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    ti = RecordingTaskInstance()
    store = InMemoryTaskStateStore()
    operator = OpenRouterVideoOperator(
        task_id="render",
        openrouter_conn_id="openrouter_canary",
        output_path=str(tmp_path / "out.mp4"),
        poll_interval=0.05,
        initial_poll_delays=(0.05,),
        max_consecutive_poll_failures=1,
        **BODY,
    )
    error = try_of(operator, ti, store)
    record_property("outcome", type(error).__name__)
    record_property("requests", len(canary.control.requests()))
    texts = log_texts(caplog, capfd)
    texts["xcom"] = json.dumps(ti.xcom, default=repr)
    texts["task state store"] = json.dumps(store.values, default=repr)
    if error is not None:
        texts.update(exception_texts(error))
        assert isinstance(error, OpenRouterVideoError), repr(error)
    assert_no_leak([key], texts)


# -- 4: dag.test() in its own Airflow home ----------------------------------------------------------

KEY_DAG = """
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG("key_hygiene", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    for name in ("accepted", "refused", "rejected"):
        OpenRouterVideoOperator(
            task_id=name,
            openrouter_conn_id="orv_" + name,
            prompt="a lighthouse at dawn",
            model="google/veo-3.1",
            duration=4,
            output_path="{output_dir}/" + name + ".mp4",
            poll_interval=0.2,
            initial_poll_delays=(0.2,),
            retries=1 if name == "refused" else 0,
            retry_delay=timedelta(seconds=0),
        )

if __name__ == "__main__":
    run = dag.test()
    for ti in sorted(run.get_task_instances(), key=lambda t: t.task_id):
        print("STATE", ti.task_id, ti.state)
"""


@pytest.fixture(scope="module")
def key_airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow home of its own, so the grep below reads only what this run wrote."""
    return migrated_airflow_home(tmp_path_factory.mktemp("key_hygiene_airflow_home"))


def test_dag_test_run_leaves_the_key_nowhere_in_the_airflow_home(
    canary: CanaryEmulator, key_airflow_home: Path, tmp_path: Path, record_property: Any
) -> None:
    """One accepted key (a trailing newline, stripped), one refused (a line break inside), one
    rejected by the server (401): the task log, XComs and the metadata database keep none."""
    key = canary.api_key
    wrong_key = "sk-or-v1-LEAKCANARY" + secrets.token_hex(16)
    passwords = {"accepted": key + "\n", "refused": key[:20] + "\n" + key[20:], "rejected": wrong_key}
    env = airflow_env(
        key_airflow_home,
        {
            f"AIRFLOW_CONN_ORV_{name.upper()}": json.dumps(
                {"conn_type": "openrouter", "host": canary.base_url, "password": password}
            )
            for name, password in passwords.items()
        },
    )
    dag_file = key_airflow_home / "dags" / "key_hygiene.py"
    dag_file.write_text(textwrap.dedent(KEY_DAG).replace("{output_dir}", str(tmp_path)))
    run = subprocess.run(
        [sys.executable, str(dag_file)], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    output = run.stdout + run.stderr
    states = dict(line.split()[1:3] for line in run.stdout.splitlines() if line.startswith("STATE "))
    record_property("requests", len(canary.control.requests()))
    record_property("outcome", json.dumps(states))
    assert states == {"accepted": "success", "refused": "failed", "rejected": "failed"}, output[-6000:]
    assert "InvalidConnectionError" in output
    assert "OpenRouterAuthError" in output
    assert (tmp_path / "accepted.mp4").read_bytes()[4:8] == b"ftyp"
    with sqlite3.connect(key_airflow_home / "airflow.db") as db:
        tries = dict(
            db.execute(
                "SELECT task_id, try_number FROM task_instance WHERE dag_id = 'key_hygiene'"
            ).fetchall()
        )
        xcoms = db.execute("SELECT task_id, key, value FROM xcom WHERE dag_id = 'key_hygiene'").fetchall()
    assert tries["refused"] == 1  # InvalidConnectionError is not retried
    assert any(task == "accepted" for task, _, _ in xcoms)  # the search below covers real XCom rows
    texts = {"dag.test output": without_airflow_mask_requests(output), "xcom rows": repr(xcoms)}
    files = [path for path in key_airflow_home.rglob("*") if path.is_file()]
    assert any(path.name == "airflow.db" for path in files)
    for path in files:
        texts[str(path.relative_to(key_airflow_home))] = path.read_bytes().decode("latin-1")
    assert_no_leak([key, wrong_key], texts)
