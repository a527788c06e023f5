"""OpenRouter's webhooks resume deferred tasks on a real stack (issue 14).

One stack (api-server with the provider's plugin, scheduler, dag-processor, triggerer; SQLite,
LocalExecutor) and one emulator that signs and delivers webhooks to the callback URL the operator
submits. The connection (callback URL and signing secret as extras) lives in the metadata
database, as a platform engineer would set it up, so the api-server reads the secret from there.

Each test names the path it proves: on time, lost (the safety poll finds the job), duplicated,
forged / stale / replayed (refused, the task unaffected), signed but contradicted by OpenRouter
(the task waits again), and the api-server restarted between submit and webhook; and each
completed job as an asset event that schedules a DAG.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from orvideo_emulator import EmulatorControl, EmulatorServer

from airflow_provider_orvideo.webhooks import build_signature_header
from tests.conftest import EMULATOR_API_KEY
from tests.system.conftest import StackFactory
from tests.system.stack import AirflowStack

pytestmark = pytest.mark.system

SECRET = "whsec-system-test-3c9f"
DAG_ID = "orvideo_webhooks"
SAFETY_DAG_ID = "orvideo_webhooks_safety"
HINT_DAG_ID = "orvideo_webhooks_hint"
ASSET_URI = "openrouter://videos/completed"
CONSUMER_DAG_ID = "orvideo_generated_videos"

DAG = """
from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

TIMINGS = {
    "orvideo_webhooks": {"webhook_poll_interval": 600},
    "orvideo_webhooks_safety": {"webhook_poll_interval": 3},
    # Waits again on the normal schedule (a check every 2 s) once OpenRouter contradicts a webhook.
    "orvideo_webhooks_hint": {"webhook_poll_interval": 600, "poll_interval": 2, "initial_poll_delays": (2,), "retries": 0},
}
for dag_id, timings in TIMINGS.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        OpenRouterVideoOperator(
            task_id="render",
            prompt="A paper boat drifting down a rain gutter",
            model="google/veo-3.1",
            duration=4,
            output_path=os.environ["ORVIDEO_OUTPUT_DIR"] + "/" + dag_id + "-{{ run_id | replace(':', '') }}.mp4",
            **timings,
        )
"""

CONSUMER_DAG = """
from __future__ import annotations

import json
import os

import pendulum
from airflow.sdk import DAG, Asset, task

VIDEOS = Asset("openrouter://videos/completed")

with DAG(dag_id="orvideo_generated_videos", schedule=[VIDEOS], start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):

    @task
    def record(*, triggering_asset_events=None):
        job_ids = [event.extra.get("job_id") for event in triggering_asset_events[VIDEOS]]
        with open(os.environ["ORVIDEO_OUTPUT_DIR"] + "/consumed.jsonl", "a") as out:
            out.write(json.dumps(job_ids) + "\\n")

    record()
"""


@pytest.fixture(scope="module")
def hooked_emulator() -> Iterator[tuple[EmulatorServer, EmulatorControl]]:
    with (
        EmulatorServer(api_key=EMULATOR_API_KEY, webhook_secret=SECRET) as server,
        EmulatorControl(server.origin) as control,
    ):
        yield server, control


@pytest.fixture(scope="module")
def stack(
    module_airflow_stack_factory: StackFactory,
    hooked_emulator: tuple[EmulatorServer, EmulatorControl],
    tmp_path_factory: pytest.TempPathFactory,
) -> AirflowStack:
    server, _ = hooked_emulator
    out = tmp_path_factory.mktemp("videos")
    stack = module_airflow_stack_factory(
        dags={"webhooks.py": DAG, "consumer.py": CONSUMER_DAG},
        env={"ORVIDEO_OUTPUT_DIR": str(out)},
        name="webhooks",
        start=False,
    )
    stack.start()
    stack.add_connection(
        "openrouter_default",
        "openrouter",
        host=server.base_url,
        password=EMULATOR_API_KEY,
        extra={
            "callback_url": f"{stack.base_url}/orvideo/webhook",
            "webhook_secret": SECRET,
            "webhook_asset": ASSET_URI,
        },
    )
    stack.wait_for_dag(DAG_ID, timeout=60)
    stack.wait_for_dag(SAFETY_DAG_ID, timeout=60)
    stack.wait_for_dag(HINT_DAG_ID, timeout=60)
    stack.wait_for_dag(CONSUMER_DAG_ID, timeout=60)
    stack.unpause(CONSUMER_DAG_ID)
    return stack


@pytest.fixture
def control(hooked_emulator: tuple[EmulatorServer, EmulatorControl]) -> EmulatorControl:
    _, control = hooked_emulator
    control.reset()
    return control


def _run(stack: AirflowStack, dag_id: str = DAG_ID) -> tuple[str, list[str]]:
    run_id = stack.trigger(dag_id)
    states = stack.wait_for_task_state(dag_id, run_id, "render", {"success", "failed"}, timeout=120)
    return run_id, states


def _only_job(control: EmulatorControl) -> dict[str, Any]:
    jobs = control.jobs()
    assert len(jobs) == 1, jobs
    return jobs[0]


def _trigger_polls(control: EmulatorControl, job: dict[str, Any]) -> int:
    """GETs of the job before the worker's confirmation: the trigger's (one GET confirms)."""
    return control.count("poll") - 1


def test_webhook_on_time_resumes_the_task_without_trigger_polls(
    stack: AirflowStack, control: EmulatorControl
) -> None:
    control.jobs_take(4)
    run_id, states = _run(stack)
    assert states[-1] == "success", [*states, stack.all_log_tails()]
    assert "deferred" in states, states
    job = _only_job(control)
    callback = job["request"]["callback_url"]
    target = dict(parse_qsl(urlsplit(callback).query))
    assert target == {
        "conn_id": "openrouter_default",
        "dag_id": DAG_ID,
        "task_id": "render",
        "run_id": run_id,
        "map_index": "-1",
    }
    deliveries = control.webhooks()
    assert [(d["status"], d["signed"]) for d in deliveries] == [(200, True)], deliveries
    assert control.count("submit", "POST") == 1
    assert _trigger_polls(control, job) == 0  # the webhook, not a poll, resumed it
    assert Path(stack.xcom(DAG_ID, run_id, "render")).read_bytes()[4:8] == b"ftyp"
    # The worker started the download within seconds of the job's end (benchmarks/ measures it).
    download = min(r["time"] for r in control.requests("content"))
    assert download - job["finished_at"] < 10, download - job["finished_at"]


def test_lost_webhook_the_safety_poll_finds_the_job(stack: AirflowStack, control: EmulatorControl) -> None:
    control.jobs_take(2)
    control.webhook_copies(0)
    run_id, states = _run(stack, SAFETY_DAG_ID)
    assert states[-1] == "success", states
    assert control.webhooks() == []
    job = _only_job(control)
    assert control.count("submit", "POST") == 1
    assert control.count("poll") >= 1  # the trigger's safety poll (every 3 s in this DAG)
    assert Path(stack.xcom(SAFETY_DAG_ID, run_id, "render")).exists()
    assert job["status"] == "completed"


def test_duplicated_webhook_resumes_once(stack: AirflowStack, control: EmulatorControl) -> None:
    control.jobs_take(5)
    control.webhook_copies(3)
    run_id, states = _run(stack)
    assert states[-1] == "success", states
    # Every copy is acknowledged (200): a copy that meets another api-server worker process
    # than the first finds the task no longer deferred; none is asked to come again.
    deliveries = control.webhooks()
    assert [d["status"] for d in deliveries] == [200, 200, 200], deliveries
    ti = stack.task_instance(DAG_ID, run_id, "render")
    assert ti is not None
    assert ti["try_number"] == 1
    assert control.count("submit", "POST") == 1
    assert control.count("content") >= 1


def _post(stack: AirflowStack, callback: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        callback, content=body, headers={"Content-Type": "application/json", **headers}, timeout=10
    )


def _event(job_id: str, status: str = "completed") -> bytes:
    data: dict[str, Any] = {"id": job_id, "status": status, "generation_id": None, "model": "google/veo-3.1"}
    if status == "completed":
        data |= {"unsigned_urls": [], "usage": {"cost": 1.0}}
    return json.dumps(
        {"type": f"video.generation.{status}", "created_at": "2026-11-30T00:00:00.000Z", "data": data}
    ).encode()


def test_forged_stale_and_replayed_webhooks_leave_the_task_waiting(
    stack: AirflowStack, control: EmulatorControl
) -> None:
    control.jobs_take(12)
    run_id = stack.trigger(DAG_ID)
    stack.wait_for_task_state(DAG_ID, run_id, "render", {"deferred"}, timeout=90)
    job = _only_job(control)
    callback = job["request"]["callback_url"]
    body = _event(job["id"])
    now = int(time.time())
    forged = _post(
        stack, callback, body, {"X-OpenRouter-Signature": build_signature_header(body, "whsec-guess", now)}
    )
    stale = _post(
        stack, callback, body, {"X-OpenRouter-Signature": build_signature_header(body, SECRET, now - 400)}
    )
    future = _post(
        stack, callback, body, {"X-OpenRouter-Signature": build_signature_header(body, SECRET, now + 400)}
    )
    unsigned = _post(stack, callback, body, {})
    assert [r.status_code for r in (forged, stale, future, unsigned)] == [401, 401, 401, 401]
    # A genuine event of another job (a replay of an earlier run's delivery) does not wake this task.
    other = _event("vid-some-other-job")
    replay = _post(
        stack, callback, other, {"X-OpenRouter-Signature": build_signature_header(other, SECRET, now)}
    )
    assert (replay.status_code, replay.json()["outcome"]) == (200, "other_job"), replay.text
    failed_claim = _event(job["id"], "failed")
    tampered = _post(
        stack,
        callback,
        failed_claim,
        {"X-OpenRouter-Signature": forged.request.headers["X-OpenRouter-Signature"]},
    )
    assert tampered.status_code == 401
    time.sleep(1)
    ti = stack.task_instance(DAG_ID, run_id, "render")
    assert ti is not None
    assert ti["state"] == "deferred", ti
    # The real webhook then resumes it; a replay of that delivery afterwards changes nothing.
    states = stack.wait_for_task_state(DAG_ID, run_id, "render", {"success", "failed"}, timeout=90)
    assert states[-1] == "success", states
    delivered = control.webhooks()
    assert [d["status"] for d in delivered] == [200], delivered
    assert control.count("submit", "POST") == 1


def _task_log_messages(stack: AirflowStack, dag_id: str) -> list[str]:
    """The messages of every task log line of ``dag_id`` (JSON lines; other lines as they are)."""
    messages = []
    for path in sorted(stack.airflow_home.glob(f"logs/dag_id={dag_id}/**/*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                messages.append(line)
                continue
            messages.append(str(record.get("event", "")) if isinstance(record, dict) else line)
    return messages


def test_a_webhook_openrouter_contradicts_leaves_the_task_waiting_for_the_real_end(
    stack: AirflowStack, control: EmulatorControl
) -> None:
    """Issue 22: a correctly signed "completed" for a job still rendering (a leaked secret, a buggy
    relay) resumes the task, since the receiver cannot know better; the worker's GET contradicts it,
    so the task (retries=0) defers again instead of failing, and saves the video when the job
    really ends. The job's own webhook is lost: only the normal schedule (a check every 2 s; the
    safety poll is 600 s) can find its end, so this also proves which schedule the task waits on."""
    control.jobs_take(15)  # resumed about 5 s after the submit: still pending, with room to spare
    control.webhook_copies(0)
    run_id = stack.trigger(HINT_DAG_ID)
    stack.wait_for_task_state(HINT_DAG_ID, run_id, "render", {"deferred"}, timeout=90)
    job = _only_job(control)
    # Late enough that a deadline counted from the webhook would show (the log has seconds).
    time.sleep(max(0.0, job["created_at"] + 4 - time.time()))
    body = _event(job["id"])
    early = _post(
        stack,
        job["request"]["callback_url"],
        body,
        {"X-OpenRouter-Signature": build_signature_header(body, SECRET, int(time.time()))},
    )
    assert (early.status_code, early.json()["outcome"]) == (200, "resumed"), early.text
    contradiction = re.compile(
        rf"A webhook said OpenRouter video job {job['id']} is completed, but OpenRouter reports it "
        r"(pending|in_progress)\. .* the task waits for the job again, .* until its deadline (\S+)\.$"
    )
    deadline = time.monotonic() + 60
    found = None
    while found is None and time.monotonic() < deadline:
        found = next(filter(None, map(contradiction.search, _task_log_messages(stack, HINT_DAG_ID))), None)
        time.sleep(0.5)
    assert found is not None, stack.all_log_tails()
    # The deadline it waits until again is the one it was submitted with, not one from the webhook.
    waits_until = datetime.fromisoformat(found.group(2)).timestamp()
    assert job["created_at"] + 3599 <= waits_until <= job["created_at"] + 3601, found.group(0)
    states = stack.wait_for_task_state(HINT_DAG_ID, run_id, "render", {"success", "failed"}, timeout=90)
    assert states[-1] == "success", [*states, stack.all_log_tails()]
    ti = stack.task_instance(HINT_DAG_ID, run_id, "render")
    assert ti is not None
    assert ti["try_number"] == 1
    assert control.count("submit", "POST") == 1
    assert control.webhooks() == []  # the job's own webhook was lost: a poll found its end
    assert Path(stack.xcom(HINT_DAG_ID, run_id, "render")).read_bytes()[4:8] == b"ftyp"
    assert min(r["time"] for r in control.requests("content")) >= job["finished_at"]


def test_api_server_restart_between_submit_and_webhook(stack: AirflowStack, control: EmulatorControl) -> None:
    control.jobs_take(25)
    run_id = stack.trigger(DAG_ID)
    stack.wait_for_task_state(DAG_ID, run_id, "render", {"deferred"}, timeout=90)
    stack.restart("api-server")
    stack.wait_healthy(timeout=90)
    states = stack.wait_for_task_state(DAG_ID, run_id, "render", {"success", "failed"}, timeout=120)
    assert states[-1] == "success", states
    job = _only_job(control)
    # Delivered by the restarted api-server (earlier attempts may have met it still starting).
    assert control.webhooks()[-1]["status"] == 200, control.webhooks()
    assert _trigger_polls(control, job) == 0
    assert control.count("submit", "POST") == 1


def _asset_events(stack: AirflowStack) -> list[dict[str, Any]]:
    assets = stack._api_json("GET", "/api/v2/assets", params={"uri_pattern": "openrouter://videos"})["assets"]
    (asset,) = [a for a in assets if a["uri"] == ASSET_URI]
    # Airflow (3.0.6 to 3.3.2) answers 500 while a DAG run an event created has not started yet
    # (its response model requires the run's start_date): ask again until the runs have started.
    for _ in range(30):
        response = stack.api("GET", "/api/v2/assets/events", params={"asset_id": asset["id"], "limit": 100})
        if response.status_code != 500:
            break
        time.sleep(1)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["asset_events"]
    return events


def test_completed_jobs_become_asset_events_that_schedule_a_dag(
    stack: AirflowStack, control: EmulatorControl
) -> None:
    control.jobs_take(3)
    run_id, states = _run(stack)
    assert states[-1] == "success", states
    job = _only_job(control)
    (announced,) = [e for e in _asset_events(stack) if e["extra"].get("job_id") == job["id"]]
    assert announced["extra"]["dag_id"] == DAG_ID
    assert announced["extra"]["run_id"] == run_id
    assert announced["extra"]["model"] == "google/veo-3.1"
    assert SECRET not in json.dumps(announced)
    # A job submitted outside any task (a script, with the receiver URL and no task in it) is
    # announced too: the DAG scheduled on the asset runs without a deferred task waiting.
    callback = f"{stack.base_url}/orvideo/webhook?conn_id=openrouter_default"
    body = _event("vid-from-a-script")
    headers = {"X-OpenRouter-Signature": build_signature_header(body, SECRET, int(time.time()))}
    first = _post(stack, callback, body, headers)
    again = _post(stack, callback, body, headers)
    assert first.json() == {
        "outcome": "no_task_named",
        "detail": first.json()["detail"],
        "asset_event": "registered",
    }
    # The copy is a duplicate for the process that saw the first; an api-server with several
    # worker processes (Airflow 3.0's default is 4) may hand it to another, whose database check
    # finds the job already announced.
    assert (again.json()["outcome"], again.json().get("asset_event")) in {
        ("duplicate", None),
        ("no_task_named", "already_registered"),
    }, again.json()
    events = [e for e in _asset_events(stack) if e["extra"].get("job_id") == "vid-from-a-script"]
    assert len(events) == 1
    # The DAG scheduled on the asset ran for both jobs (it records what triggered it).
    consumed_file = Path(stack.env["ORVIDEO_OUTPUT_DIR"]) / "consumed.jsonl"
    deadline = time.monotonic() + 90
    consumed: set[str] = set()
    while time.monotonic() < deadline and not {"vid-from-a-script", job["id"]} <= consumed:
        time.sleep(1)
        if consumed_file.exists():
            consumed = {i for line in consumed_file.read_text().splitlines() for i in json.loads(line)}
    assert {"vid-from-a-script", job["id"]} <= consumed, consumed
