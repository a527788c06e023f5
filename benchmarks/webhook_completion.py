"""Completion on a real stack, polled vs webhook: delay from the job's end to the download, and
OpenRouter requests per job (issue 14).

    python benchmarks/webhook_completion.py                       # 30 s, 2 min, 10 min; 5 jobs each
    python benchmarks/webhook_completion.py --lengths 30 120 --jobs 3

Set-up: the emulator in its own process, signing and delivering webhooks (``--webhook-secret``).
A real Airflow 3.3 stack from ``tests/system/stack.py`` (api-server with the provider's plugin,
scheduler with LocalExecutor, dag-processor, triggerer; SQLite). The ``openrouter_default``
connection is stored in the metadata database with the receiver's URL and the signing secret as
extras. Two DAGs, identical but for the completion path: ``bench_polled`` (``callback_url=""``
overrides the connection: the default poll schedule) and ``bench_webhook`` (the connection's
callback URL; the trigger's safety poll every 600 s).

Each job's length is drawn within +-20 % of the nominal length (as in ``completion_detection.py``):
one DAG run per job, each submitted once the emulator's job defaults give it its length. All runs
of all lengths and both modes are in flight together, so the stack carries up to
``2 x jobs x lengths`` deferred tasks.

Figures per job, from the emulator's records only (no Airflow clock involved):

* **delay**: the first ``GET /videos/{id}/content`` (the worker starting the download) minus the
  job's ``finished_at`` (when the emulator's job completed and its webhook was sent);
* **requests**: every API request naming the job (``POST /videos`` with its answer, each
  ``GET /videos/{id}``, each content GET), and, of those, the status GETs beyond the download's.
  The model list (``GET /videos/models``, once per worker process) is counted apart.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import Emulator, machine_line, median, table, wait_quiet
from tests.system.stack import AirflowStack

SECRET = "whsec-benchmark"
DAG_SOURCE = """
from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

for dag_id, webhooks in (("bench_polled", False), ("bench_webhook", True)):
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), max_active_runs=64):
        OpenRouterVideoOperator(
            task_id="render",
            prompt="A red kite over a green valley",
            model="google/veo-3.1",
            duration=4,
            output_path=os.environ["ORVIDEO_OUTPUT_DIR"] + "/{{ dag.dag_id }}-{{ run_id | replace(':', '') }}.mp4",
            **({} if webhooks else {"callback_url": ""}),
        )
"""


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=float, nargs="+", default=[30.0, 120.0, 600.0])
    parser.add_argument("--jobs", type=int, default=5, help="jobs per length and mode")
    parser.add_argument("--keep", action="store_true", help="keep the stack's directory")
    args = parser.parse_args()
    quiet, waited = wait_quiet()
    print(f"machine: {machine_line()} (quiet={quiet}, waited {waited:.0f} s)", flush=True)
    home = Path(tempfile.mkdtemp(prefix="orvideo-webhook-bench-"))
    (home / "dags").mkdir()
    (home / "dags" / "bench.py").write_text(DAG_SOURCE)
    out = home / "videos"
    out.mkdir()
    with Emulator(webhook_secret=SECRET) as emulator:
        stack = AirflowStack(home / "stack", home / "dags", env={"ORVIDEO_OUTPUT_DIR": str(out)})
        stack.env["AIRFLOW__CORE__PARALLELISM"] = "8"
        stack.start()
        try:
            stack.add_connection(
                "openrouter_default",
                "openrouter",
                host=emulator.base_url,
                password=emulator.api_key,
                extra={"callback_url": f"{stack.base_url}/orvideo/webhook", "webhook_secret": SECRET},
            )
            for dag_id in ("bench_polled", "bench_webhook"):
                stack.wait_for_dag(dag_id, timeout=90)
                stack.unpause(dag_id)
            rng = random.Random(20261130)
            runs: list[tuple[str, str, float]] = []  # (dag id, run id, nominal length)
            for length in args.lengths:
                for _ in range(args.jobs):
                    for dag_id in ("bench_polled", "bench_webhook"):
                        emulator.set_job_defaults(
                            pending_seconds=0, in_progress_seconds=rng.uniform(0.8, 1.2) * length
                        )
                        before = len(emulator.control("/jobs")["jobs"])
                        runs.append((dag_id, stack.trigger(dag_id), length))
                        deadline = time.monotonic() + 60
                        while len(emulator.control("/jobs")["jobs"]) == before:  # submitted with that length
                            if time.monotonic() > deadline:
                                raise RuntimeError(f"{dag_id} never submitted:\n{stack.all_log_tails()}")
                            time.sleep(0.2)
            print(f"submitted {len(runs)} jobs; waiting for them to finish", flush=True)
            for dag_id, run_id, _ in runs:
                state = stack.wait_for_run_state(
                    dag_id, run_id, {"success", "failed"}, timeout=2 * max(args.lengths) + 300
                )
                if state != "success":
                    raise RuntimeError(f"{dag_id} {run_id} {state}:\n{stack.all_log_tails()}")
            jobs = emulator.control("/jobs")["jobs"]
            requests = emulator.control("/requests")["requests"]
            deliveries = emulator.control("/webhooks")["webhooks"]
        finally:
            stack.stop()
    by_job: dict[str, list[dict[str, Any]]] = {}
    for entry in requests:
        match = re.match(r"/api/v1/videos/([^/?]+)(/content)?$", entry["path"])
        if match and match.group(1) != "models":
            by_job.setdefault(match.group(1), []).append(entry)
    mode_of = {job["id"]: ("webhook" if job["request"].get("callback_url") else "polled") for job in jobs}
    rows = []
    for length in args.lengths:
        for mode in ("polled", "webhook"):
            picked = [
                j
                for j in jobs
                if mode_of[j["id"]] == mode
                and 0.75 * length <= j["finished_at"] - j["created_at"] <= 1.25 * length
            ]
            delays, status_gets, total = [], [], []
            for job in picked:
                entries = by_job.get(job["id"], [])
                content = [e["time"] for e in entries if e["path"].endswith("/content")]
                gets = [e for e in entries if not e["path"].endswith("/content")]
                delays.append(min(content) - job["finished_at"])
                status_gets.append(
                    len(gets) - 1
                )  # one GET belongs to the download (the webhook's confirmation)
                total.append(1 + len(entries))  # + the submit POST
            rows.append(
                [
                    f"{length:.0f} s",
                    mode,
                    len(picked),
                    f"{median(delays):.2f} s",
                    f"{p90(delays):.2f} s",
                    f"{sum(status_gets) / len(status_gets):.1f}",
                    f"{sum(total) / len(total):.1f}",
                ]
            )
    print(
        table(
            [
                "job length",
                "mode",
                "jobs",
                "median delay",
                "p90 delay",
                "polls beyond the download",
                "requests per job",
            ],
            rows,
        )
    )
    statuses = sorted({d["status"] for d in deliveries})
    print(
        f"webhook deliveries: {len(deliveries)}, answered {statuses}; model list fetches: "
        f"{sum(1 for e in requests if e['path'].endswith('/videos/models'))}"
    )
    if not args.keep:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    else:
        print(f"kept {home}")


if __name__ == "__main__":
    main()
