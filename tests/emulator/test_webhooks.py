"""The emulator delivers signed webhooks to a job's callback_url, verified by the provider's own
``airflow_provider_orvideo.webhooks`` (over real HTTP, a receiver on loopback)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from orvideo_emulator import EmulatorControl, EmulatorServer

from airflow_provider_orvideo.webhooks import verify_and_parse

SECRET = "whsec-emulator-test"


class Receiver(ThreadingHTTPServer):
    """Records every POST; answers ``failures`` of them with 500 first, then 204."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[dict[str, str], bytes, float]] = []
        self.failures = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/openrouter"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body, time.time()))
        status = 500 if self.server.failures > 0 else 204
        self.server.failures -= 1
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def signed_emulator() -> Iterator[tuple[EmulatorServer, EmulatorControl]]:
    with (
        EmulatorServer(
            api_key="k", pending_seconds=0.1, in_progress_seconds=0.1, webhook_secret=SECRET
        ) as server,
        EmulatorControl(server.origin) as control,
    ):
        yield server, control


def submit(server: EmulatorServer, callback_url: str, **fields: Any) -> str:
    body = {"model": "google/veo-3.1", "prompt": "a kite", "callback_url": callback_url, **fields}
    response = httpx.post(f"{server.base_url}/videos", json=body, headers={"Authorization": "Bearer k"})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("outcome", ["completed", "failed", "cancelled", "expired"])
def test_every_terminal_status_is_delivered_signed(
    signed_emulator: tuple[EmulatorServer, EmulatorControl], receiver: Receiver, outcome: str
) -> None:
    server, control = signed_emulator
    control.jobs_end_as(outcome)  # type: ignore[arg-type]
    submitted = time.time()
    job_id = submit(server, receiver.url)
    wait_for(lambda: receiver.received)
    ((headers, body, arrived),) = receiver.received
    assert arrived - submitted >= 0.2  # once the job is over, not before
    assert headers["X-OpenRouter-Idempotency-Key"] == f"{job_id}-{outcome}"
    event = verify_and_parse(body, headers, SECRET)
    assert (event.type, event.job_id, event.status, event.model) == (
        f"video.generation.{outcome}",
        job_id,
        outcome,
        "google/veo-3.1",
    )
    if outcome == "completed":
        assert event.unsigned_urls == (f"{server.base_url}/videos/{job_id}/content?index=0",)
        assert event.cost == 1.6
    else:
        assert event.error
        assert not event.unsigned_urls
    polled = httpx.get(f"{server.base_url}/videos/{job_id}", headers={"Authorization": "Bearer k"}).json()
    assert polled["status"] == outcome  # the webhook never runs ahead of the API
    (attempt,) = control.webhooks()
    assert (attempt["attempt"], attempt["status"], attempt["signed"]) == (1, 204, True)


def test_a_failed_delivery_is_retried_and_duplicates_share_the_key(
    signed_emulator: tuple[EmulatorServer, EmulatorControl], receiver: Receiver
) -> None:
    server, control = signed_emulator
    receiver.failures = 2
    job_id = submit(server, receiver.url)
    wait_for(lambda: len(receiver.received) == 3)
    assert [entry["status"] for entry in control.webhooks()] == [500, 500, 204]
    assert [entry["attempt"] for entry in control.webhooks()] == [1, 2, 3]

    control.reset()
    receiver.received.clear()
    control.webhook_copies(2)
    job_id = submit(server, receiver.url)
    wait_for(lambda: len(receiver.received) == 2)
    keys = {headers["X-OpenRouter-Idempotency-Key"] for headers, _, _ in receiver.received}
    assert keys == {f"{job_id}-completed"}


def test_a_lost_webhook_and_an_unsigned_one(receiver: Receiver) -> None:
    with (
        EmulatorServer(api_key="k", pending_seconds=0, in_progress_seconds=0.1) as server,
        EmulatorControl(server.origin) as control,
    ):
        control.webhook_copies(0)
        submit(server, receiver.url)
        time.sleep(0.5)
        assert receiver.received == []
        control.webhook_copies(1)
        submit(server, receiver.url)
        wait_for(lambda: receiver.received)
        ((headers, _, _),) = receiver.received
        assert "X-OpenRouter-Signature" not in headers  # no secret configured


def test_reset_cancels_pending_deliveries(
    signed_emulator: tuple[EmulatorServer, EmulatorControl], receiver: Receiver
) -> None:
    server, control = signed_emulator
    control.jobs_take(0.5)
    submit(server, receiver.url)
    control.reset()
    time.sleep(0.8)
    assert receiver.received == []
    assert control.webhooks() == []
