"""One scenario table through every driver: the same faults must lead to the same retry decisions.

The worker's sync call (``get_job``, httpx), the triggerer's poll (``aget_job``, aiohttp) and the
download (``download_output``, httpx streaming) each run against the real emulator with the same
scripted fault, proxy setting or dead port. A recording retry policy (no jitter) captures what
each driver's adapter classified (an HTTP answer, or a broken exchange *not sent* / *sent*) and
what the one engine decided (retry after N seconds, from byte K; or give up). The table says what
is expected, once, for all three.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo._internal.api import ApiRequest, Endpoint
from airflow_provider_orvideo.exceptions import (
    OpenRouterNotFoundError,
    OpenRouterRateLimitError,
    OpenRouterServerError,
    OpenRouterTransportError,
    OpenRouterVideoError,
    VideoDownloadError,
    VideoOutputGoneError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.retry import Answered, GiveUp, Outcome, Retry, RetryPolicy

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
BODY = {"model": "google/veo-3.1", "prompt": "a lighthouse at dawn", "duration": 4}


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """The default decisions without jitter, each one recorded as ``(outcome, step)`` labels."""

    decisions: list[tuple[str, str]] = field(default_factory=list, compare=False, hash=False)
    resumed_from: list[int] = field(default_factory=list, compare=False, hash=False)

    def next_step(self, request: ApiRequest, attempt: int, outcome: Outcome, **kwargs: Any) -> Retry | GiveUp:
        step = super().next_step(request, attempt, outcome, **{**kwargs, "rand": lambda: 1.0})
        seen = f"HTTP {outcome.status_code}" if isinstance(outcome, Answered) else outcome.fault.value
        if isinstance(step, Retry):
            decided = f"retry in {step.delay:g} s"
            if request.endpoint is Endpoint.CONTENT:
                self.resumed_from.append(step.resume_from)
        else:
            decided = "give up"
        self.decisions.append((seen, decided))
        return step


def _policy() -> RecordingPolicy:
    return RecordingPolicy(
        max_attempts=3, initial_delay=0.01, multiplier=2.0, max_delay=0.05, max_retry_after=0.5
    )


def _dead_url() -> str:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{unused.getsockname()[1]}"


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: dict[str, Any] | None = None
    """An emulator fault, aimed at the endpoint the driver calls."""
    proxy: dict[str, str] | None = None
    """Environment variables; the value ``"dead"`` stands for a port nobody listens on."""
    dead_host: bool = False
    decisions: tuple[tuple[str, str], ...] = ()
    error: type[OpenRouterVideoError] | None = None
    download_error: type[OpenRouterVideoError] | None = None
    """When the download raises a more specific error than the JSON calls."""


SCENARIOS = [
    Scenario("clean", decisions=()),
    Scenario(
        "429 with Retry-After seconds",
        {"kind": "status", "status": 429, "retry_after": "0.2", "times": 1},
        decisions=(("HTTP 429", "retry in 0.2 s"),),
    ),
    Scenario(
        "503 with a Retry-After HTTP date in the past",
        {"kind": "status", "status": 503, "retry_after": "Thu, 01 Jan 1970 00:00:00 GMT", "times": 1},
        decisions=(("HTTP 503", "retry in 0 s"),),
    ),
    Scenario(
        "502 without Retry-After: exponential backoff",
        {"kind": "status", "status": 502, "times": 2},
        decisions=(("HTTP 502", "retry in 0.01 s"), ("HTTP 502", "retry in 0.02 s")),
    ),
    Scenario(
        "500 until attempts run out",
        {"kind": "status", "status": 500, "times": 5},
        decisions=(("HTTP 500", "retry in 0.01 s"), ("HTTP 500", "retry in 0.02 s"), ("HTTP 500", "give up")),
        error=OpenRouterServerError,
    ),
    Scenario(
        "429 asking for longer than the cap",
        {"kind": "status", "status": 429, "retry_after": "3600", "times": 1},
        decisions=(("HTTP 429", "give up"),),
        error=OpenRouterRateLimitError,
    ),
    Scenario(
        "404 is permanent",
        {"kind": "status", "status": 404, "times": 1},
        decisions=(("HTTP 404", "give up"),),
        error=OpenRouterNotFoundError,
        download_error=VideoOutputGoneError,
    ),
    Scenario(
        "connection reset after the request left",
        {"kind": "reset", "times": 1},
        decisions=(("sent", "retry in 0.01 s"),),
    ),
    Scenario(
        "read timeout",
        {"kind": "delay", "seconds": 1.5, "times": 1},
        decisions=(("sent", "retry in 0.01 s"),),
    ),
    Scenario(
        "resets until attempts run out",
        {"kind": "reset", "times": 5},
        decisions=(("sent", "retry in 0.01 s"), ("sent", "retry in 0.02 s"), ("sent", "give up")),
        error=OpenRouterTransportError,
        download_error=VideoDownloadError,
    ),
    Scenario(
        "nobody listening: never sent",
        dead_host=True,
        decisions=(("not sent", "retry in 0.01 s"), ("not sent", "retry in 0.02 s"), ("not sent", "give up")),
        error=OpenRouterTransportError,
    ),
    Scenario(
        "HTTP_PROXY unreachable",
        proxy={"HTTP_PROXY": "dead"},
        decisions=(("not sent", "retry in 0.01 s"), ("not sent", "retry in 0.02 s"), ("not sent", "give up")),
        error=OpenRouterTransportError,
    ),
    Scenario(
        "ALL_PROXY unreachable",
        proxy={"ALL_PROXY": "dead"},
        decisions=(("not sent", "retry in 0.01 s"), ("not sent", "retry in 0.02 s"), ("not sent", "give up")),
        error=OpenRouterTransportError,
    ),
    Scenario("HTTP_PROXY bypassed by NO_PROXY", proxy={"HTTP_PROXY": "dead", "NO_PROXY": "127.0.0.1"}),
    Scenario("HTTP_PROXY bypassed by NO_PROXY=*", proxy={"HTTP_PROXY": "dead", "NO_PROXY": "*"}),
    Scenario("HTTPS_PROXY only: not for an http URL", proxy={"HTTPS_PROXY": "dead"}),
]

DRIVERS = ("sync get_job (httpx)", "async aget_job (aiohttp)", "download_output (httpx stream)")


@pytest.fixture
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _run_driver(driver: str, hook: OpenRouterVideoHook, job_id: str, out: Path) -> None:
    if driver.startswith("sync"):
        hook.get_job(job_id)
    elif driver.startswith("async"):

        async def poll() -> None:
            try:
                await hook.aget_job(job_id)
            finally:
                await hook.aclose()

        asyncio.run(poll())
    else:
        hook.download_output(job_id, 0, str(out))


@pytest.mark.usefixtures("clean_proxy_environment")
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_driver_decides_the_same(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scenario: Scenario, driver: str
) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    job_id = OpenRouterVideoHook().submit(BODY).id
    host = _dead_url() if scenario.dead_host else emulator.base_url
    connection = {
        "conn_type": "openrouter",
        "host": host,
        "password": emulator.api_key,
        "extra": json.dumps({"timeout": 0.75}),
    }
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_DEFAULT", json.dumps(connection))
    for name, value in (scenario.proxy or {}).items():
        monkeypatch.setenv(name, _dead_url() if value == "dead" else value)
    if scenario.fault is not None:
        endpoint = "content" if driver.startswith("download") else "poll"
        emulator.control.add_fault(endpoint, **scenario.fault)
    policy = _policy()
    hook = OpenRouterVideoHook(retry_policy=policy)
    out = tmp_path / "out.mp4"
    expected_error = (scenario.download_error if driver.startswith("download") else None) or scenario.error
    try:
        if expected_error is None:
            _run_driver(driver, hook, job_id, out)
        else:
            with pytest.raises(expected_error) as raised:
                _run_driver(driver, hook, job_id, out)
            assert emulator.api_key not in str(raised.value)
    finally:
        hook.close()
    assert tuple(policy.decisions) == scenario.decisions
    if driver.startswith("download"):
        assert policy.resumed_from == [0] * sum(1 for _, step in scenario.decisions if step != "give up")
        assert out.exists() is (expected_error is None)
        assert sorted(p.name for p in tmp_path.iterdir()) == (["out.mp4"] if expected_error is None else [])


def test_a_cut_download_resumes_at_the_first_byte_not_saved(emulator: Any, tmp_path: Path) -> None:
    """The download-only decision: a body cut after K bytes is asked for again from byte K."""
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    job_id = OpenRouterVideoHook().submit(BODY).id
    emulator.control.add_fault("content", "truncate", truncate_at=1000, times=1)
    policy = _policy()
    hook = OpenRouterVideoHook(retry_policy=policy)
    size = hook.download_output(job_id, 0, str(tmp_path / "out.mp4"))
    assert policy.decisions == [("sent", "retry in 0.01 s")]
    assert policy.resumed_from == [1000]
    ranges = [entry.get("headers", {}).get("range") for entry in emulator.control.requests("content")]
    assert (tmp_path / "out.mp4").stat().st_size == size > 1000
    assert ranges == [None, "bytes=1000-"]
