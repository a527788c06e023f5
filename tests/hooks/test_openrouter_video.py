from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_orvideo.exceptions import (
    OpenRouterAuthError,
    OpenRouterConflictError,
    OpenRouterRateLimitError,
    OpenRouterResponseError,
    OpenRouterServerError,
    OpenRouterTransportError,
    SubmitOutcomeUnknownError,
    VideoDownloadError,
)
from airflow_provider_orvideo.hooks._transport import environment_proxy
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05)
BODY = {"model": "google/veo-3.1", "prompt": "a lighthouse at dawn", "duration": 4}


@pytest.fixture
def hook(emulator: Any) -> OpenRouterVideoHook:
    return OpenRouterVideoHook(retry_policy=FAST)


def wait_until_completed(hook: OpenRouterVideoHook, job_id: str) -> None:
    import time

    for _ in range(200):
        if hook.get_job(job_id).status == "completed":
            return
        time.sleep(0.05)
    raise AssertionError("job never completed")


def test_list_models_parses_capabilities(hook: OpenRouterVideoHook) -> None:
    models = hook.list_models()
    veo = models["google/veo-3.1"]
    assert veo.supported_durations
    assert 4 in veo.supported_durations
    assert len(models) >= 5


def test_submit_poll_download_round_trip(hook: OpenRouterVideoHook, emulator: Any, tmp_path: Path) -> None:
    job = hook.submit(BODY)
    assert job.status == "pending"
    wait_until_completed(hook, job.id)
    done = hook.get_job(job.id)
    assert done.generation_id
    assert done.unsigned_urls
    assert done.cost is not None
    target = tmp_path / "out.mp4"
    size = hook.download_output(job.id, 0, str(target))
    assert size == target.stat().st_size > 1000
    assert target.read_bytes()[4:8] == b"ftyp"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    submitted = [r for r in emulator.control.requests("submit")]
    assert submitted[0]["body"] == BODY


def test_poll_retries_429_honouring_retry_after(hook: OpenRouterVideoHook, emulator: Any) -> None:
    job = hook.submit(BODY)
    emulator.control.add_fault("poll", "status", status=429, retry_after="0", times=2)
    assert hook.get_job(job.id).id == job.id
    assert emulator.control.count("poll") == 3


def test_poll_retries_5xx_then_raises_typed_error_with_message(
    hook: OpenRouterVideoHook, emulator: Any
) -> None:
    job = hook.submit(BODY)
    emulator.control.add_fault("poll", "status", status=503, message="Upstream unavailable", times=10)
    with pytest.raises(OpenRouterServerError) as info:
        hook.get_job(job.id)
    assert info.value.http_status == 503
    assert info.value.api_message == "Upstream unavailable"
    assert emulator.control.count("poll") == FAST.max_attempts


def test_poll_survives_a_connection_reset(hook: OpenRouterVideoHook, emulator: Any) -> None:
    job = hook.submit(BODY)
    emulator.control.add_fault("poll", "reset", times=1)
    assert hook.get_job(job.id).id == job.id


def test_malformed_json_is_a_response_error(hook: OpenRouterVideoHook, emulator: Any) -> None:
    job = hook.submit(BODY)
    emulator.control.add_fault("poll", "malformed_json", times=1)
    with pytest.raises(OpenRouterResponseError, match="not JSON"):
        hook.get_job(job.id)


def test_submit_429_is_retried_and_creates_one_job(hook: OpenRouterVideoHook, emulator: Any) -> None:
    emulator.control.add_fault("submit", "status", status=429, retry_after="0", times=1)
    hook.submit(BODY)
    assert emulator.control.count("submit", "POST") == 2
    assert len(emulator.control.jobs()) == 1


def test_submit_429_exhausted_raises_rate_limit(hook: OpenRouterVideoHook, emulator: Any) -> None:
    emulator.control.add_fault("submit", "status", status=429, retry_after="0", times=10)
    with pytest.raises(OpenRouterRateLimitError):
        hook.submit(BODY)
    assert emulator.control.count("submit", "POST") == FAST.max_attempts
    assert emulator.control.jobs() == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_submit_5xx_is_never_retried(hook: OpenRouterVideoHook, emulator: Any, status: int) -> None:
    emulator.control.add_fault("submit", "status", status=status, times=5)
    with pytest.raises(OpenRouterServerError, match="not retried automatically"):
        hook.submit(BODY)
    assert emulator.control.count("submit", "POST") == 1


def test_submit_reset_after_sending_is_outcome_unknown(hook: OpenRouterVideoHook, emulator: Any) -> None:
    emulator.control.add_fault("submit", "reset", after_create=True, times=1)
    with pytest.raises(SubmitOutcomeUnknownError, match="may have created a job"):
        hook.submit(BODY)
    assert emulator.control.count("submit", "POST") == 1
    assert len(emulator.control.jobs()) == 1  # the job exists and bills: we must not pay twice


def test_connect_refused_is_retried_then_transport_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENROUTER_DEFAULT",
        f'{{"conn_type":"openrouter","host":"http://127.0.0.1:{free_port}/api/v1","password":"k"}}',
    )
    with pytest.raises(OpenRouterTransportError, match="No answer from OpenRouter"):
        OpenRouterVideoHook(retry_policy=FAST).submit(BODY)


def test_wrong_key_is_auth_error_without_the_key(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENROUTER_DEFAULT",
        f'{{"conn_type":"openrouter","host":"{emulator.base_url}","password":"sk-or-WRONG-KEY"}}',
    )
    with pytest.raises(OpenRouterAuthError) as info:
        OpenRouterVideoHook(retry_policy=FAST).get_job("whatever")
    assert info.value.http_status == 401
    assert "sk-or-WRONG-KEY" not in str(info.value)


def test_download_before_completion_is_conflict_and_leaves_nothing(
    hook: OpenRouterVideoHook, emulator: Any, tmp_path: Path
) -> None:
    emulator.control.set_job_defaults(pending_seconds=30)
    job = hook.submit(BODY)
    with pytest.raises(OpenRouterConflictError):
        hook.download_output(job.id, 0, str(tmp_path / "out.mp4"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("honour_range", [True, False], ids=["server honours Range", "server ignores Range"])
def test_truncated_download_resumes_with_range(
    hook: OpenRouterVideoHook, emulator: Any, tmp_path: Path, honour_range: bool
) -> None:
    """A cut download asks for the rest; a server that answers 200 with the whole video instead
    (the published spec promises no Range support) makes it start again from byte 0."""
    emulator.control.set_job_defaults(
        pending_seconds=0, in_progress_seconds=0, output_size=3 * 1024 * 1024, honour_range=honour_range
    )
    job = hook.submit(BODY)
    emulator.control.add_fault("content", "truncate", truncate_at=1024 * 1024 + 17, times=1)
    target = tmp_path / "out.mp4"
    assert hook.download_output(job.id, 0, str(target)) == 3 * 1024 * 1024
    whole = httpx.get(
        f"{emulator.base_url}/videos/{job.id}/content?index=0",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
    ).content
    assert target.read_bytes() == whole
    downloads = emulator.control.requests("content")
    assert len(downloads) == 3  # cut, resumed, and the check above
    assert downloads[1]["headers"].get("range") == f"bytes={1024 * 1024 + 17}-"
    assert downloads[1]["status"] == (206 if honour_range else 200)


def test_download_that_keeps_failing_leaves_nothing(
    hook: OpenRouterVideoHook, emulator: Any, tmp_path: Path
) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    job = hook.submit(BODY)
    emulator.control.add_fault("content", "truncate", times=10)
    target = tmp_path / "out.mp4"
    target_existing = tmp_path / "keep.txt"
    target_existing.write_text("x")
    with pytest.raises(VideoDownloadError, match="Nothing was written"):
        hook.download_output(job.id, 0, str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_gone_output_fails_clearly(hook: OpenRouterVideoHook, emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, gone=True)
    job = hook.submit(BODY)
    with pytest.raises(VideoDownloadError, match="is no longer available \\(HTTP 410") as info:
        hook.download_output(job.id, 0, str(tmp_path / "out.mp4"))
    assert "was billed" in str(info.value)
    assert str(info.value).startswith(
        f"Output 0 of OpenRouter video job {job.id} is no longer"
    )  # names as written
    assert list(tmp_path.iterdir()) == []


def test_vanished_output_fails_clearly(hook: OpenRouterVideoHook, emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    job = hook.submit(BODY)
    emulator.control.add_fault("content", "vanish")
    with pytest.raises(VideoDownloadError, match="HTTP 404"):
        hook.download_output(job.id, 0, str(tmp_path / "out.mp4"))
    assert list(tmp_path.iterdir()) == []


async def test_async_poll_shares_the_sync_parsing(hook: OpenRouterVideoHook) -> None:
    job = hook.submit(BODY)
    polled = await hook.aget_job(job.id)
    await hook.aclose()
    assert polled.id == job.id
    assert polled.status in ("pending", "in_progress", "completed")


def test_the_key_never_reaches_the_logs(
    hook: OpenRouterVideoHook,
    emulator: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # includes httpx's and httpcore's own request logging
    emulator.control.add_fault("poll", "status", status=503, retry_after="0", times=1)
    job = hook.submit(BODY)
    wait_until_completed(hook, job.id)
    hook.download_output(job.id, 0, str(tmp_path / "o.mp4"))
    captured = capsys.readouterr()
    logs = caplog.text + captured.out + captured.err
    assert f"Submitted OpenRouter video job {job.id}" in logs  # the capture really holds our log lines
    assert "HTTP 503" in logs  # ... including the retry warning
    assert emulator.api_key not in logs
    assert "sig=" not in logs


def test_test_connection_reports_key_acceptance(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert OpenRouterVideoHook(retry_policy=FAST).test_connection()[0] is True
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENROUTER_DEFAULT",
        f'{{"conn_type":"openrouter","host":"{emulator.base_url}","password":"bad"}}',
    )
    ok, message = OpenRouterVideoHook(retry_policy=FAST).test_connection()
    assert ok is False
    assert "401" in message


def test_proxy_is_read_from_the_environment_with_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://openrouter.ai/api/v1/videos/j/content?index=0"
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxy(url) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert environment_proxy(url) == "http://proxy.internal:3128"
    assert environment_proxy("http://127.0.0.1:8080/api/v1/videos/j/content") is None
    monkeypatch.setenv("NO_PROXY", "openrouter.ai")
    assert environment_proxy(url) is None


def test_download_goes_through_a_configured_proxy(
    hook: OpenRouterVideoHook, emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a proxy set for the emulator's URL, the download uses it (here: a dead one) instead of going direct."""
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    job = hook.submit(BODY)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{unused.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    proxied = OpenRouterVideoHook(retry_policy=FAST)
    with pytest.raises(OpenRouterTransportError, match="Connection refused"):
        proxied.download_output(job.id, 0, str(tmp_path / "out.mp4"))
    assert list(tmp_path.iterdir()) == []
    assert emulator.control.requests("content") == []
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert OpenRouterVideoHook(retry_policy=FAST).download_output(job.id, 0, str(tmp_path / "out.mp4")) > 1000


async def test_polls_beyond_the_shared_session_limit_wait_their_turn(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of polls (a triggerer restart) never has more than the limit in flight at the server."""
    import asyncio

    from airflow_provider_orvideo.hooks import _async_sessions

    limit = 8
    monkeypatch.setattr(_async_sessions, "SHARED_SESSION_CONCURRENCY", limit)
    burst = 3 * limit
    job = OpenRouterVideoHook(retry_policy=FAST).submit(BODY)
    emulator.control.add_fault("poll", "delay", seconds=0.4, times=burst)
    hooks = [OpenRouterVideoHook(retry_policy=FAST) for _ in range(burst)]
    polls = asyncio.gather(*(hook.aget_job(job.id) for hook in hooks))
    in_flight: list[int] = []
    while not polls.done():
        logged = await asyncio.to_thread(emulator.control.requests, "poll")
        in_flight.append(sum(1 for entry in logged if entry["status"] is None))
    jobs = await polls
    for hook in hooks:
        await hook.aclose()
    assert [polled.id for polled in jobs] == [job.id] * burst
    assert max(in_flight) == limit  # the limit was reached ...
    assert all(count <= limit for count in in_flight)  # ... and never passed


async def test_triggerer_polls_go_through_a_configured_proxy(
    hook: OpenRouterVideoHook, emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy is read from the environment when the shared session is made (not per poll)."""
    job = hook.submit(BODY)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{unused.getsockname()[1]}")
    proxied = OpenRouterVideoHook(retry_policy=FAST)
    with pytest.raises(OpenRouterTransportError, match="ClientProxyConnectionError"):
        await proxied.aget_job(job.id)
    await proxied.aclose()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = OpenRouterVideoHook(retry_policy=FAST)
    assert (await direct.aget_job(job.id)).id == job.id
    await direct.aclose()
