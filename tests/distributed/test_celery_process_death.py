"""Process death on a distributed stack: CeleryExecutor, PostgreSQL, Redis, 2 workers, 2 triggerers.

Issue 12, point 2. One ``CeleryStack`` serves the suite (``conftest.py``); the OpenRouter
emulator runs in the test process and logs every request with its headers. Each triggerer and
each worker sends its own ``X-OpenRouter-Title``, so every poll and download in that log is
attributed to the process that made it.

- ``test_mapped_s3_dag_survives_triggerer_kill``: a mapped DAG writing to ``s3://`` (moto); once
  every job is being polled, the triggerer polling the most jobs gets ``kill -9``; the other one
  must take its triggers over. Checked: every task instance succeeds on its first try, one POST
  per task instance, exactly the finished videos in the bucket (no temporary objects, no open
  multipart uploads), no job ever polled by both triggerers in alternation.
- ``test_local_dag_survives_worker_kill_during_download``: a mapped DAG writing to a directory
  every worker shares, plus a downstream task reading the videos back; the worker that is
  downloading (its ``/content`` request held open by the emulator) gets ``kill -9``, with its
  whole process tree. The scheduler fails the orphaned try after the heartbeat timeout; the
  retry, on either worker, must re-attach to the job (no second POST) and download it. Checked:
  as above, and no temporary or stray file in the shared directory.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.distributed.celery_stack import TRIGGERERS, WORKERS
from tests.distributed.conftest import DistributedEnv

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]

S3_DAG = "orvideo_celery_s3"
LOCAL_DAG = "orvideo_celery_local"
DAG_IDS = (S3_DAG, LOCAL_DAG)
S3_PROMPTS = [f"A paper lantern rising over a harbour at dusk, take {i}" for i in range(6)]
LOCAL_PROMPTS = [f"Rain running down a tram window at night, take {i}" for i in range(4)]

DAGS = {
    "celery_s3.py": f'''
from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG(
    dag_id="{S3_DAG}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    max_active_tasks=16,
):
    OpenRouterVideoOperator.partial(
        task_id="render",
        model="google/veo-3.1",
        duration=4,
        output_path="s3://" + os.environ["ORVIDEO_S3_BUCKET"]
        + "/videos/{{{{ dag_run.run_after | ts_nodash }}}}/clip-{{{{ ti.map_index }}}}.mp4",
        output_conn_id="orvideo_s3_test",
        poll_interval=1,
        initial_poll_delays=(1,),
        retries=1,
        retry_delay=timedelta(seconds=1),
    ).expand(prompt={S3_PROMPTS!r})
''',
    "celery_local.py": f'''
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG(
    dag_id="{LOCAL_DAG}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    max_active_tasks=16,
):
    renders = OpenRouterVideoOperator.partial(
        task_id="render",
        model="google/veo-3.1",
        duration=4,
        output_path=os.environ["ORVIDEO_OUTPUT_DIR"]
        + "/{{{{ dag_run.run_after | ts_nodash }}}}/clip-{{{{ ti.map_index }}}}.mp4",
        poll_interval=1,
        initial_poll_delays=(1,),
        retries=2,
        retry_delay=timedelta(seconds=1),
    ).expand(prompt={LOCAL_PROMPTS!r})

    @task
    def read_back(paths: list[str]) -> list[str]:
        """Downstream, on whichever worker: every video is on the shared disk and complete."""
        for path in paths:
            head = Path(path).read_bytes()[:8]
            if head[4:8] != b"ftyp":
                raise ValueError(f"{{path}} is not an MP4: {{head!r}}")
        return list(paths)

    read_back(renders.output)
''',
}

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T | None], env: DistributedEnv, timeout: float) -> T:
    """Poll ``check`` until it returns something other than None/False; fail with logs on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        env.stack.check_components()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def job_of(entry: dict[str, Any]) -> str:
    """The job id in a poll or content request path (``/api/v1/videos/<id>[/content]``)."""
    return str(entry["path"].split("/")[4])


def submits_per_prompt(env: DistributedEnv) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for entry in env.emulator.requests("submit"):
        if entry["method"] == "POST":
            counts[str((entry["body"] or {}).get("prompt"))] += 1
    return dict(counts)


def assert_one_post_per_task_instance(env: DistributedEnv, prompts: list[str]) -> int:
    """Exactly one submit POST per prompt (= per mapped task instance), and one job each."""
    per_prompt = submits_per_prompt(env)
    assert per_prompt == dict.fromkeys(prompts, 1), per_prompt
    assert len(env.emulator.jobs()) == len(prompts)
    return sum(per_prompt.values())


def triggerer_runs(polls: list[tuple[float, str, str]]) -> dict[str, list[str]]:
    """Per job, the triggerers that polled it in time order, repeats collapsed.

    ``polls`` are ``(time, job, triggerer)``; ``["triggerer-1", "triggerer-2"]`` means triggerer-1
    polled the job, then triggerer-2 and never triggerer-1 again.
    """
    sequences: dict[str, list[str]] = defaultdict(list)
    for _, job, who in sorted(polls):
        if not sequences[job] or sequences[job][-1] != who:
            sequences[job].append(who)
    return dict(sequences)


def interleaving(runs: dict[str, list[str]], killed: str | None) -> list[str]:
    """What breaks "no job polled by two triggerers at once" in ``runs`` (empty: nothing).

    Each job may have at most two runs (A...A B...B): once a second triggerer polls a job the
    first never polls it again, and a switch is only allowed away from ``killed`` (a takeover
    after its death).
    """
    problems = []
    for job, pollers in runs.items():
        if len(pollers) > 2:
            problems.append(f"job {job} was polled by alternating triggerers: {pollers}")
        elif len(pollers) == 2 and pollers[0] != killed:
            problems.append(f"job {job} moved from {pollers[0]} to {pollers[1]} without a kill")
    return problems


def test_interleaving_is_detected() -> None:
    """The check used by the stack tests can fail (no stack needed)."""
    a, b = TRIGGERERS
    polls = [(1.0, "j1", a), (2.0, "j1", a), (3.0, "j2", b), (4.0, "j1", b), (5.0, "j1", a)]
    assert triggerer_runs(polls) == {"j1": [a, b, a], "j2": [b]}
    assert interleaving(triggerer_runs(polls), killed=a) == [
        f"job j1 was polled by alternating triggerers: {[a, b, a]}"
    ]
    takeover = triggerer_runs(polls[:4])
    assert interleaving(takeover, killed=a) == []
    assert interleaving(takeover, killed=None) == [f"job j1 moved from {a} to {b} without a kill"]


def assert_no_interleaved_polls(env: DistributedEnv, killed: str | None) -> dict[str, list[str]]:
    """No job polled by two triggerers at once (see ``interleaving``); returns the runs per job.

    Polls by workers (a retry re-attaching, the download's final status check) are not triggerer
    polls and are left out.
    """
    polls = [
        (entry["time"], job_of(entry), env.title_of(entry))
        for entry in env.emulator.requests("poll")
        if env.title_of(entry) in TRIGGERERS
    ]
    runs = triggerer_runs(polls)
    assert interleaving(runs, killed) == []
    return runs


def test_mapped_s3_dag_survives_triggerer_kill(distributed_env: DistributedEnv) -> None:
    env, stack, emulator = distributed_env, distributed_env.stack, distributed_env.emulator
    emulator.reset()
    # Long enough for every task instance to defer, the kill, and the takeover to happen while
    # all jobs still render; short enough for the suite's time budget.
    emulator.set_job_defaults(pending_seconds=5, in_progress_seconds=35)
    run_id = stack.trigger(S3_DAG)

    def polled_jobs() -> dict[str, str] | None:
        """Job -> triggerer of its latest poll, once all jobs exist and each was polled."""
        holders: dict[str, str] = {}
        for entry in sorted(emulator.requests("poll"), key=lambda e: e["time"]):
            who = env.title_of(entry)
            if who in TRIGGERERS:
                holders[job_of(entry)] = who
        jobs = {job["id"] for job in emulator.jobs()}
        return holders if len(jobs) == len(S3_PROMPTS) and set(holders) == jobs else None

    holders = wait_until("every job to be polled by a triggerer", polled_jobs, env, timeout=120)
    held: dict[str, list[str]] = defaultdict(list)
    for job, who in holders.items():
        held[who].append(job)
    victim = max(TRIGGERERS, key=lambda name: len(held[name]))
    survivor = next(name for name in TRIGGERERS if name != victim)
    victim_jobs = set(held[victim])
    # Capacity 4 per triggerer: both hold jobs, so the survivor's own jobs are watched too.
    assert victim_jobs, holders
    assert held[survivor], holders
    kill_time = time.time()
    stack.kill_tree(victim)
    # A poll the victim sent while its tree was being killed may reach the emulator after
    # kill_time; once kill_tree has returned, the victim can send nothing more.
    dead_since = time.time()

    def survivor_polled_a_victim_job() -> float | None:
        times = [
            e["time"]
            for e in emulator.requests("poll")
            if env.title_of(e) == survivor and job_of(e) in victim_jobs and e["time"] > kill_time
        ]
        return min(times) if times else None

    first_takeover_poll = wait_until(
        f"{survivor} to poll a job {victim} held", survivor_polled_a_victim_job, env, timeout=90
    )
    takeover = first_takeover_poll - kill_time
    env.figures.takeover_seconds = takeover
    env.figures.notes.append(
        f"triggerer kill: {victim} held {len(victim_jobs)} of {len(holders)} jobs, {survivor} "
        f"{len(held[survivor])}; {survivor} polled the first of {victim}'s {takeover:.1f} s after kill -9"
    )

    assert stack.wait_for_run_state(S3_DAG, run_id, {"success"}, timeout=180) == "success"
    tis = stack.task_instances(S3_DAG, run_id)
    assert [(ti["map_index"], ti["state"], ti["try_number"]) for ti in tis] == [
        (i, "success", 1) for i in range(len(S3_PROMPTS))
    ]
    posts = assert_one_post_per_task_instance(env, S3_PROMPTS)
    # Every job the dead triggerer held was finished by the survivor, and none alternated.
    runs = assert_no_interleaved_polls(env, killed=victim)
    for job in victim_jobs:
        assert runs[job][-1] == survivor, (job, runs[job])
    assert not [e for e in emulator.requests("poll") if env.title_of(e) == victim and e["time"] > dead_since]
    # The bucket holds the finished videos and nothing else: no temporary objects, no open uploads.
    run_after = stack.dag_run(S3_DAG, run_id)["run_after"]
    stamp = run_after[:19].replace("-", "").replace(":", "")  # ts_nodash: 20260101T000000
    expected = [f"videos/{stamp}/clip-{i}.mp4" for i in range(len(S3_PROMPTS))]
    assert env.s3.keys() == expected
    assert env.s3.uploads_in_progress() == []
    for i, key in enumerate(expected):
        assert env.s3.read(key)[4:8] == b"ftyp", key
        assert stack.xcom_of(S3_DAG, run_id, "render", i, "return_value") == f"s3://{env.s3.bucket}/{key}"
    env.figures.task_instances += len(tis)
    env.figures.renders += len(tis)
    env.figures.posts += posts
    stack.restart(victim)  # back to two triggerers for the next test


def test_local_dag_survives_worker_kill_during_download(distributed_env: DistributedEnv) -> None:
    env, stack, emulator = distributed_env, distributed_env.stack, distributed_env.emulator
    emulator.reset()
    emulator.set_job_defaults(pending_seconds=2, in_progress_seconds=4)
    # The first download request is held open for 30 s: the worker is caught mid-download.
    emulator.add_fault("content", "delay", seconds=30, times=1)
    run_id = stack.trigger(LOCAL_DAG)

    def download_in_flight() -> dict[str, Any] | None:
        held = [e for e in emulator.requests("content") if e["status"] is None]
        return held[0] if held else None

    held = wait_until("a worker to start downloading", download_in_flight, env, timeout=120)
    victim = env.title_of(held)
    assert victim in WORKERS, held
    job = job_of(held)
    (prompt,) = [j["request"]["prompt"] for j in emulator.jobs() if j["id"] == job]
    killed_index = LOCAL_PROMPTS.index(prompt)
    # That try's temporary file is open beside its destination: what a kill leaves behind.
    partial = wait_until(
        "the download's temporary file",
        lambda: list(env.output_dir.rglob(f".clip-{killed_index}.mp4.*.part")),
        env,
        timeout=10,
    )
    kill_time = time.time()
    killed_pids = set(stack.kill_tree(victim))
    stack.restart(victim)  # the worker's host comes back; the retry may run on either worker

    assert stack.wait_for_run_state(LOCAL_DAG, run_id, {"success"}, timeout=180) == "success"
    tis = stack.task_instances(LOCAL_DAG, run_id)
    renders = [ti for ti in tis if ti["task_id"] == "render"]
    assert all(ti["state"] == "success" for ti in tis), [(ti["task_id"], ti["state"]) for ti in tis]
    job_by_index = {
        ti["map_index"]: stack.xcom_of(LOCAL_DAG, run_id, "render", ti["map_index"], "job_id")
        for ti in renders
    }
    assert job_by_index[killed_index] == job, job_by_index
    # The downloading task instance was retried once; so was any other task instance the dead
    # worker was running at that moment (its first try ran in a process that was killed); no
    # other task instance needed a second try.
    tries = {ti["map_index"]: ti["try_number"] for ti in renders}
    assert tries[killed_index] == 2, tries
    for index, number in tries.items():
        assert number in (1, 2), tries
        if number == 2:
            first = stack.task_instance_try(LOCAL_DAG, run_id, "render", index, 1)
            assert first["pid"] in killed_pids, (index, first["pid"], sorted(killed_pids))
    # Every retry re-attached to its job: one POST per task instance in all.
    posts = assert_one_post_per_task_instance(env, LOCAL_PROMPTS)
    after = [e for e in emulator.requests() if e["time"] > kill_time and e["endpoint"] in ("poll", "content")]
    retry_downloads = [
        e for e in after if e["endpoint"] == "content" and job_of(e) == job and e["status"] == 200
    ]
    assert retry_downloads, "the retry never downloaded the killed try's job"
    retried_on = env.title_of(retry_downloads[-1])
    assert retried_on in WORKERS
    retry_download = max(e["time"] for e in retry_downloads)
    env.figures.worker_retry_seconds = retry_download - kill_time
    env.figures.notes.append(
        f"worker kill: {victim} was downloading map index {killed_index} (temporary file "
        f"{partial[0].name} open); try 2 ran on {retried_on} and asked for the video "
        f"{retry_download - kill_time:.1f} s after kill -9 (heartbeat timeout included)"
    )
    assert_no_interleaved_polls(env, killed=None)
    # The run's directory on the shared disk holds the finished videos and nothing else: no
    # temporary (.part) files (other modules' DAGs write under directories of their own).
    run_after = stack.dag_run(LOCAL_DAG, run_id)["run_after"]
    stamp = run_after[:19].replace("-", "").replace(":", "")
    expected = sorted(env.output_dir / stamp / f"clip-{i}.mp4" for i in range(len(LOCAL_PROMPTS)))
    assert sorted(p for p in (env.output_dir / stamp).rglob("*") if p.is_file()) == expected
    for path in expected:
        assert path.read_bytes()[4:8] == b"ftyp", path
    assert stack.xcom(LOCAL_DAG, run_id, "read_back") == [str(p) for p in expected]
    env.figures.task_instances += len(tis)
    env.figures.renders += len(renders)
    env.figures.posts += posts
