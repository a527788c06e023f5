"""Outages on the distributed stack: OpenRouter down while tasks wait, the broker down at resume.

Issue 23, item 6. The stack is the suite's (``conftest.py``: CeleryExecutor, PostgreSQL, Redis,
two workers, two triggerers); both DAGs leave ``retries`` unset, so the operator's default (3)
applies.

- ``test_openrouter_outage_and_404s_while_tasks_wait``: six mapped tasks with the operator's
  default poll schedule (no ``poll_interval`` nor ``initial_poll_delays``: checks 30 s and 40 s
  after the submit, then every 30 s; the stack sets no ``[openrouter] loopback_poll_scale``, so
  these are the real delays). Once every task is deferred, the next 12 polls answer 404 (jobs
  that exist) and OpenRouter goes down for two minutes: 60 s of 503 on every endpoint, then 60 s
  of connection resets. The jobs complete during the outage. Checked: every task instance
  succeeds on its first try, one POST per task instance, every video on the shared disk and
  byte for byte what the emulator serves, every job polled (and failed) during both halves of
  the outage, no request answered 2xx during it, and the 12 404s. The 404s take the first polls
  of the outage (a fault of the poll endpoint goes before one of every endpoint): after the
  outage each job's backoff is at its 30 s cap, and 404s there would cost CI 30-60 s more.
- ``test_redis_outage_at_resume_with_default_retries``: four mapped tasks with a 10 s
  ``retry_delay`` (Airflow's default is 5 minutes) and short polls; the broker (Redis) gets
  ``kill -9`` two seconds before the first job completes, so every trigger fires while it is down.
  The scheduler cannot queue the resumed tries ("Error sending Celery workload"), the executor
  reports them failed and Airflow marks them ``up_for_retry`` before any provider code runs.
  Redis comes back (empty) 5 s after the last of those failures, before the retry_delay has
  passed. Checked: every trigger fired and every resumed try failed during the outage, every task
  instance ends ``success`` on try 2, whose log says it found the earlier try's completed job,
  one POST per task instance, every video kept. The states each task instance went through and
  the scheduler's lines are in the suite's figures.

Both print what they measured in the suite's figures (``conftest.py``).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from orvideo_emulator import EmulatorServer

from tests.conftest import EMULATOR_API_KEY
from tests.distributed.celery_stack import TRIGGERERS, WORKERS, CeleryStack
from tests.distributed.conftest import DistributedEnv
from tests.distributed.test_celery_process_death import assert_one_post_per_task_instance, job_of
from tests.system.stack import AirflowStack, _q

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]

OUTAGE_DAG = "orvideo_celery_openrouter_outage"
REDIS_DAG = "orvideo_celery_redis_outage"
DAG_IDS = (OUTAGE_DAG, REDIS_DAG)
OUTAGE_PROMPTS = [f"Snow settling on a lighthouse gallery, take {i}" for i in range(6)]
REDIS_PROMPTS = [f"A kettle steaming on a camp stove at dawn, take {i}" for i in range(4)]

#: The OpenRouter outage: 503 on every endpoint, then connection resets, back to back.
OUTAGE_503_SECONDS = 60.0
OUTAGE_RESET_SECONDS = 60.0
OUTAGE_SECONDS = OUTAGE_503_SECONDS + OUTAGE_RESET_SECONDS
#: Status 404 answers to polls of jobs that exist, scripted with the outage.
NOT_FOUND_POLLS = 12
#: Render time of the outage DAG's jobs: each completes during the outage (checked).
OUTAGE_JOB_SECONDS = 60.0
#: The operator's default first check, seconds after the submit (``DEFAULT_INITIAL_POLL_DELAYS``).
DEFAULT_FIRST_CHECK_SECONDS = 30.0

#: Render time of the Redis DAG's jobs: long enough for all four tasks to defer first.
REDIS_JOB_SECONDS = 30.0
#: Redis dies this long before the first job completes ...
REDIS_KILL_LEAD_SECONDS = 2.0
#: ... and comes back this long after Airflow failed the last resumed try (less than the
#: retry_delay, so that the retries find it up) ...
REDIS_HOLD_AFTER_FAILURES_SECONDS = 5.0
#: ... or at the latest this long after the last job completed (then the test fails).
REDIS_MAX_DOWN_AFTER_LAST_SECONDS = 30.0
#: The task's retry_delay (Airflow's default, 5 minutes, would make CI wait that long).
REDIS_RETRY_DELAY_SECONDS = 10

DAGS = {
    "celery_openrouter_outage.py": f'''
from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

# No retries, poll_interval or initial_poll_delays: the operator's defaults.
with DAG(
    dag_id="{OUTAGE_DAG}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    max_active_tasks=16,
):
    OpenRouterVideoOperator.partial(
        task_id="render",
        model="google/veo-3.1",
        duration=4,
        output_path=os.environ["ORVIDEO_OUTPUT_DIR"]
        + "/{OUTAGE_DAG}/{{{{ dag_run.run_after | ts_nodash }}}}/clip-{{{{ ti.map_index }}}}.mp4",
    ).expand(prompt={OUTAGE_PROMPTS!r})
''',
    "celery_redis_outage.py": f'''
from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

# No retries: the operator's default (3); a short retry_delay instead of Airflow's 5 minutes.
with DAG(
    dag_id="{REDIS_DAG}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    max_active_tasks=16,
):
    OpenRouterVideoOperator.partial(
        task_id="render",
        model="google/veo-3.1",
        duration=4,
        output_path=os.environ["ORVIDEO_OUTPUT_DIR"]
        + "/{REDIS_DAG}/{{{{ dag_run.run_after | ts_nodash }}}}/clip-{{{{ ti.map_index }}}}.mp4",
        poll_interval=1,
        initial_poll_delays=(1,),
        retry_delay=timedelta(seconds={REDIS_RETRY_DELAY_SECONDS}),
    ).expand(prompt={REDIS_PROMPTS!r})
''',
}

#: Task instance states that end a wait at once (``up_for_retry`` unless a retry is expected).
FAILED_STATES = frozenset({"failed", "upstream_failed", "removed"})


def _base_check(stack: CeleryStack) -> None:
    """The Airflow components are running (not Redis: the Redis test stops it on purpose)."""
    AirflowStack.check_components(stack)


def wait_for_tis(
    env: DistributedEnv,
    dag_id: str,
    run_id: str,
    count: int,
    states: Collection[str],
    *,
    timeout: float,
    fail_on: Collection[str] = FAILED_STATES | {"up_for_retry"},
    services: bool = True,
) -> list[dict[str, Any]]:
    """Wait until the run's ``count`` task instances are all in ``states``; fail at once when one
    reaches a state of ``fail_on`` or a component exits (Redis and PostgreSQL too if ``services``)."""
    deadline = time.monotonic() + timeout
    while True:
        if services:
            env.stack.check_components()
        else:
            _base_check(env.stack)
        tis = env.stack.task_instances(dag_id, run_id)
        seen = [(ti["map_index"], ti["state"], ti["try_number"]) for ti in tis]
        if any(ti["state"] in fail_on for ti in tis):
            pytest.fail(f"{dag_id}: a task instance reached {sorted(fail_on)}: {seen}")
        if len(tis) == count and all(ti["state"] in states for ti in tis):
            return tis
        if time.monotonic() > deadline:
            pytest.fail(f"{dag_id}: timed out after {timeout:.0f} s waiting for {sorted(states)}: {seen}")
        time.sleep(1)


def run_dir(env: DistributedEnv, dag_id: str, run_id: str) -> Path:
    run_after = str(env.stack.dag_run(dag_id, run_id)["run_after"])
    return env.output_dir / dag_id / run_after[:19].replace("-", "").replace(":", "")  # ts_nodash


def served_video(emulator_server: EmulatorServer, job_id: str) -> bytes:
    """The video the emulator serves for ``job_id`` (read after the request log was checked)."""
    response = httpx.get(
        f"{emulator_server.base_url}/videos/{job_id}/content",
        headers={"Authorization": f"Bearer {EMULATOR_API_KEY}"},
        timeout=60,
    )
    response.raise_for_status()
    return response.content


def assert_videos_kept(
    env: DistributedEnv,
    emulator_server: EmulatorServer,
    dag_id: str,
    run_id: str,
    prompts: list[str],
) -> dict[int, str]:
    """Every map index's video is in the run's directory, complete (the bytes the emulator serves
    for its job), and nothing else is (no temporary files); returns map index -> job id."""
    directory = run_dir(env, dag_id, run_id)
    expected = [directory / f"clip-{i}.mp4" for i in range(len(prompts))]
    assert sorted(p for p in directory.rglob("*") if p.is_file()) == expected
    job_by_prompt = {job["request"]["prompt"]: job["id"] for job in env.emulator.jobs()}
    jobs: dict[int, str] = {}
    for i, path in enumerate(expected):
        job_id = env.stack.xcom_of(dag_id, run_id, "render", i, "job_id")
        assert job_id == job_by_prompt[prompts[i]], (i, job_id)
        assert env.stack.xcom_of(dag_id, run_id, "render", i, "return_value") == str(path)
        assert path.read_bytes() == served_video(emulator_server, job_id), path
        jobs[i] = job_id
    return jobs


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _answer(entry: dict[str, Any]) -> str:
    """How a logged request was answered: its status, or ``reset``."""
    if entry["fault"] == "reset":
        return "reset"
    return str(entry["status"])


def test_openrouter_outage_and_404s_while_tasks_wait(
    distributed_env: DistributedEnv, emulator_server: EmulatorServer
) -> None:
    env, stack, emulator = distributed_env, distributed_env.stack, distributed_env.emulator
    emulator.reset()
    emulator.jobs_take(OUTAGE_JOB_SECONDS)
    run_id = stack.trigger(OUTAGE_DAG)
    count = len(OUTAGE_PROMPTS)
    wait_for_tis(env, OUTAGE_DAG, run_id, count, {"deferred"}, timeout=120)
    assert_one_post_per_task_instance(env, OUTAGE_PROMPTS)  # every submit answered before the outage

    # The next 12 polls: 404. Then OpenRouter is down: 503 on every endpoint for 60 s, then
    # connection resets until 120 s (posted now, the reset window applies once the 503 one ends).
    emulator.fail_requests("poll", 404, times=NOT_FOUND_POLLS)
    outage_start = time.time()
    emulator.outage(OUTAGE_503_SECONDS, kind="503")
    emulator.outage(OUTAGE_SECONDS, kind="reset")
    outage_end = outage_start + OUTAGE_SECONDS
    reset_start = outage_start + OUTAGE_503_SECONDS
    jobs = {job["id"]: job for job in emulator.jobs()}
    assert len(jobs) == count
    for job in jobs.values():  # the jobs were waited for when the outage began, and end during it
        assert outage_start < job["finished_at"] < outage_end, (job["id"], job["finished_at"], outage_start)

    tis = wait_for_tis(env, OUTAGE_DAG, run_id, count, {"success"}, timeout=OUTAGE_SECONDS + 180)
    finished = max(_epoch(ti["end_date"]) for ti in tis)
    assert [(ti["map_index"], ti["state"], ti["try_number"]) for ti in tis] == [
        (i, "success", 1) for i in range(count)
    ]
    posts = assert_one_post_per_task_instance(env, OUTAGE_PROMPTS)

    log = emulator.requests()
    # The default poll schedule: each job's first check came 30 s after its submit.
    first_checks = {
        job_id: min(e["time"] for e in log if e["endpoint"] == "poll" and job_of(e) == job_id)
        - job["created_at"]
        for job_id, job in jobs.items()
    }
    for job_id, delay in first_checks.items():
        assert DEFAULT_FIRST_CHECK_SECONDS - 0.5 <= delay <= DEFAULT_FIRST_CHECK_SECONDS + 15, (job_id, delay)
    # Nothing was answered during the outage (1 s margins: the windows run on the emulator's
    # monotonic clock from when each was posted); the 404s were polls of the jobs that exist.
    inside = [e for e in log if outage_start + 1 < e["time"] < outage_end - 1]
    answers = Counter(_answer(e) for e in inside)
    assert set(answers) <= {"404", "503", "reset"}, answers
    not_found = [e for e in log if e["status"] == 404]
    assert len(not_found) == NOT_FOUND_POLLS, [(e["endpoint"], e["path"]) for e in not_found]
    assert all(e["endpoint"] == "poll" and job_of(e) in jobs for e in not_found)
    # Every job was polled, by a triggerer, during both halves of the outage, and failed.
    outage_polls: dict[str, Counter[str]] = defaultdict(Counter)
    for e in inside:
        if e["endpoint"] == "poll":
            assert env.title_of(e) in TRIGGERERS, e
            kind = "503" if e["time"] < reset_start else "reset"
            outage_polls[job_of(e)][f"{kind} window: {_answer(e)}"] += 1
    for job_id in jobs:
        assert outage_polls[job_id]["503 window: 503"] >= 1, (job_id, outage_polls[job_id])
        assert outage_polls[job_id]["reset window: reset"] >= 1, (job_id, outage_polls[job_id])
    # After it, each job was seen completed by a triggerer and downloaded by a worker, once.
    after = [e for e in log if e["time"] > outage_end]
    for job_id in jobs:
        assert [e for e in after if e["endpoint"] == "poll" and job_of(e) == job_id and e["status"] == 200]
        downloads = [e for e in after if e["endpoint"] == "content" and job_of(e) == job_id]
        assert downloads, job_id
        assert all(_answer(e) in ("200", "206") and env.title_of(e) in WORKERS for e in downloads), downloads
    videos = assert_videos_kept(env, emulator_server, OUTAGE_DAG, run_id, OUTAGE_PROMPTS)

    not_found_jobs = Counter(job_of(e) for e in not_found)
    env.figures.notes.append(
        f"OpenRouter outage: {count} deferred tasks, default poll schedule (first check "
        f"{min(first_checks.values()):.1f}-{max(first_checks.values()):.1f} s after submit); "
        f"{OUTAGE_503_SECONDS:.0f} s of 503 then {OUTAGE_RESET_SECONDS:.0f} s of resets on every endpoint, "
        f"{NOT_FOUND_POLLS} poll 404s ({len(not_found_jobs)} jobs) first; requests during the outage: "
        f"{dict(sorted(answers.items()))}; all {len(videos)} succeeded on try 1, {posts} POSTs, the last "
        f"{finished - outage_end:.1f} s after the outage ended ({finished - outage_start:.1f} s after it began)"
    )
    env.figures.task_instances += count
    env.figures.renders += count
    env.figures.posts += posts


def tries_of(stack: CeleryStack, dag_id: str, run_id: str, map_index: int) -> dict[int, str]:
    """Try number -> state of every try Airflow recorded for one mapped task instance."""
    response = stack.api(
        "GET",
        f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/render/{map_index}/tries",
    )
    assert response.status_code == 200, response.text
    return {int(t["try_number"]): str(t["state"]) for t in response.json()["task_instances"]}


def _log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _log_since(path: Path, offset: int) -> list[str]:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", errors="replace").splitlines()


def test_redis_outage_at_resume_with_default_retries(
    distributed_env: DistributedEnv, emulator_server: EmulatorServer
) -> None:
    env, stack, emulator = distributed_env, distributed_env.stack, distributed_env.emulator
    emulator.reset()
    emulator.jobs_take(REDIS_JOB_SECONDS, pending_share=0.2)
    run_id = stack.trigger(REDIS_DAG)
    count = len(REDIS_PROMPTS)
    wait_for_tis(env, REDIS_DAG, run_id, count, {"deferred"}, timeout=120)
    jobs = {job["id"]: job for job in emulator.jobs()}
    assert len(jobs) == count
    first_done = min(job["finished_at"] for job in jobs.values())
    last_done = max(job["finished_at"] for job in jobs.values())
    kill_at = first_done - REDIS_KILL_LEAD_SECONDS
    assert time.time() < kill_at, "the tasks took too long to defer: a job completes before the kill"
    time.sleep(kill_at - time.time())
    states = [ti["state"] for ti in stack.task_instances(REDIS_DAG, run_id)]
    assert states == ["deferred"] * count, states  # nothing has resumed yet

    logs = {name: stack.log_path(name) for name in ("scheduler", *WORKERS)}
    offsets = {name: _log_size(path) for name, path in logs.items()}
    redis_pid = stack.redis.kill()
    killed = time.time()
    # While Redis is down every trigger fires and Airflow fails each resumed try (it cannot queue
    # it); Redis comes back a few seconds after the last of those failures, before the retry_delay
    # has passed, so the retries find it up.
    timeline: dict[int, list[tuple[float, str, int]]] = defaultdict(list)
    failed_at: dict[int, float] = {}
    give_up = last_done + REDIS_MAX_DOWN_AFTER_LAST_SECONDS
    while True:
        _base_check(stack)
        now = time.time()
        for ti in stack.task_instances(REDIS_DAG, run_id):
            step = (now - killed, str(ti["state"]), int(ti["try_number"]))
            seen = timeline[ti["map_index"]]
            if not seen or seen[-1][1:] != step[1:]:
                seen.append(step)
            if ti["state"] in ("up_for_retry", *FAILED_STATES):
                failed_at.setdefault(ti["map_index"], now)
        if len(failed_at) == count and now >= max(failed_at.values()) + REDIS_HOLD_AFTER_FAILURES_SECONDS:
            break
        if now > give_up:
            break
        time.sleep(0.5)
    fired = {
        job_of(e)
        for e in emulator.requests("poll")
        if env.title_of(e) in TRIGGERERS
        and e["status"] == 200
        and e["time"] >= jobs[job_of(e)]["finished_at"]
    }
    stack.redis.start()
    restarted = time.time()

    def story() -> str:
        return "; ".join(
            f"map index {index}: " + ", ".join(f"{t:.0f}s {state} (try {n})" for t, state, n in steps)
            for index, steps in sorted(timeline.items())
        )

    assert fired == set(jobs), f"a trigger did not fire while Redis was down: {story()}"
    assert sorted(failed_at) == list(range(count)), (
        f"a resumed try did not fail while Redis was down: {story()}"
    )

    tis = wait_for_tis(
        env, REDIS_DAG, run_id, count, {"success"}, timeout=240, fail_on=FAILED_STATES, services=False
    )
    finished = max(_epoch(ti["end_date"]) for ti in tis)
    for ti in tis:
        timeline[ti["map_index"]].append((time.time() - killed, str(ti["state"]), int(ti["try_number"])))
    # One failed try each (the resumed one), then the retry: it re-attached to the completed job
    # (0 POSTs) and a worker downloaded it once Redis was back.
    assert [(ti["map_index"], ti["try_number"]) for ti in tis] == [(i, 2) for i in range(count)], story()
    posts = assert_one_post_per_task_instance(env, REDIS_PROMPTS)
    downloads = [
        e for e in emulator.requests("content") if e["time"] > restarted and e["status"] in (200, 206)
    ]
    assert {job_of(e) for e in downloads} == set(jobs)
    assert all(env.title_of(e) in WORKERS for e in downloads)
    retry_logs = [
        stack.airflow_home
        / "logs"
        / f"dag_id={REDIS_DAG}"
        / f"run_id={run_id}"
        / "task_id=render"
        / f"map_index={ti['map_index']}"
        / "attempt=2.log"
        for ti in tis
    ]
    for path in retry_logs:
        assert "from an earlier try completed" in path.read_text(encoding="utf-8"), path
    videos = assert_videos_kept(env, emulator_server, REDIS_DAG, run_id, REDIS_PROMPTS)
    # What Airflow did, from the scheduler's and the workers' logs.
    lines = {name: _log_since(path, offsets[name]) for name, path in logs.items()}
    send_errors = [line for line in lines["scheduler"] if "Error sending Celery workload" in line]
    executor_failed = [line for line in lines["scheduler"] if "finished with state failed" in line]
    broker_errors = {name: sum("Cannot connect to redis" in line for line in lines[name]) for name in WORKERS}
    listed = {ti["map_index"]: sorted(tries_of(stack, REDIS_DAG, run_id, ti["map_index"])) for ti in tis}
    env.figures.notes.append(
        f"Redis outage: kill -9 of redis (pid {redis_pid}) {first_done - killed:.1f} s before the first of "
        f"{count} jobs completed, back (empty) {restarted - killed:.1f} s later; every trigger fired and every "
        f"resumed try failed meanwhile; scheduler: {len(send_errors)} 'Error sending Celery workload', "
        f"{len(executor_failed)} 'Executor ... reported ... finished with state failed'; workers' 'Cannot connect "
        f"to redis' lines {broker_errors}; all {len(videos)} succeeded on try 2 "
        f"{finished - restarted:.1f} s after Redis came back, {posts} POSTs; tries listed by the REST API {listed}"
    )
    env.figures.notes.extend(f"  {part}" for part in story().split("; "))
    env.figures.notes.extend(f"  scheduler: {line[:200]}" for line in (send_errors[:1] + executor_failed[:1]))
    env.figures.task_instances += count
    env.figures.renders += count
    env.figures.posts += posts
