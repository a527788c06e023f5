"""A flood of forged webhooks naming a new connection id each, against a real api-server (issue 22).

    python benchmarks/webhook_flood.py                          # 2,000 forged POSTs, 20 at a time
    python benchmarks/webhook_flood.py --requests 5000 --concurrency 50
    PYTHONPATH=/tmp/before python benchmarks/webhook_flood.py   # another checkout's receiver

The receiver is public (OpenRouter cannot log in), so anyone can POST
``/orvideo/webhook?conn_id=<anything>``. What matters is what such a request costs the api-server,
Airflow's most privileged process, and whether Airflow's own API stays usable meanwhile.

Set-up: a real Airflow 3.3 stack from ``tests/system/stack.py`` (api-server with the provider's
plugin, scheduler, dag-processor, triggerer; SQLite; all-admins auth) and one DAG. The
``openrouter_default`` connection, with a webhook secret, is stored in the metadata database. A
secrets backend that counts (``AIRFLOW__SECRETS__BACKEND``; it answers nothing, so the
environment and the metadata database are searched after it as usual) appends one line per
connection lookup to a file: that is how lookups are observed without touching the receiver.

Figures:

* latency of ``GET /api/v2/dags`` (bearer token, one request after another from one client):
  ``--samples`` requests at rest, then as many as fit while the flood runs; p50, p95, max;
* the flood: ``--requests`` POSTs from loopback, each naming its own connection id
  (``forged_<n>``) and a task, with a plausible event and a signature made with a guessed secret,
  ``--concurrency`` at a time, at most ``--timeout`` seconds; its rate and the answers, and the
  CPU time the api-server's process tree spent meanwhile (the GETs above included);
* one genuine signed webhook for ``openrouter_default`` (a URL naming no task: answered
  ``no_task_named``) sent half way through the flood and one after it: its answer and time;
* the api-server's log lines written during the flood: the receiver's (its logger's name) and
  all of them (Airflow's access log writes one line per request whatever the receiver does);
* the connection lookups made during the flood (the counting backend's lines for ``forged_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflow_provider_orvideo.webhooks import build_signature_header
from benchmarks._common import machine_line, table, wait_quiet
from tests.system.stack import AirflowStack

SECRET = "whsec-flood-benchmark"
DAG_ID = "bench_webhook_flood"
DAG = f"""
import pendulum
from airflow.sdk import DAG
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    OpenRouterVideoOperator(task_id="render", prompt="never run", model="google/veo-3.1", output_path="/tmp/x.mp4")
"""
COUNTER = """
import os

from airflow.secrets.base_secrets import BaseSecretsBackend


class CountingBackend(BaseSecretsBackend):
    \"\"\"Records each connection lookup, then lets the next backend answer.\"\"\"

    def get_conn_value(self, conn_id, team_name=None):
        with open(os.environ["ORVIDEO_LOOKUP_LOG"], "a", encoding="utf-8") as out:
            out.write(f"{conn_id}\\n")
        return None
"""
RECEIVER_MODULE = "airflow_provider_orvideo.plugins._webhook_receiver"


def event_body(job: str) -> bytes:
    return json.dumps(
        {
            "type": "video.generation.completed",
            "created_at": "2026-12-05T00:00:00.000Z",
            "data": {
                "id": job,
                "status": "completed",
                "generation_id": f"gen-{job}",
                "model": "google/veo-3.1",
                "unsigned_urls": [f"https://openrouter.ai/api/v1/videos/{job}/content?index=0"],
                "usage": {"cost": 0.5},
            },
        }
    ).encode()


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p95 and max, in milliseconds."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000, ordered[-1] * 1000


class Sampler(threading.Thread):
    """``GET /api/v2/dags`` one after another until stopped or ``limit`` samples are taken."""

    def __init__(self, base_url: str, token: str, limit: int | None = None) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(
            base_url=base_url, timeout=60.0, headers={"Authorization": f"Bearer {token}"}
        )
        self.limit = limit
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with self.client:
            while not self.stop.is_set() and (self.limit is None or len(self.latencies) < self.limit):
                t0 = time.perf_counter()
                try:
                    answer = self.client.get("/api/v2/dags", params={"limit": 100})
                except httpx.HTTPError as error:
                    self.failures.append(type(error).__name__)
                    continue
                if answer.status_code != 200:
                    self.failures.append(str(answer.status_code))
                    continue
                self.latencies.append(time.perf_counter() - t0)
                time.sleep(0.02)


async def flood(
    base_url: str, requests: int, concurrency: int, timeout: float
) -> tuple[dict[str, int], float, dict[str, Any]]:
    """Send the forged POSTs; returns (answers by status, seconds taken, the genuine webhooks' answers)."""
    forged_body = event_body("vid-job-forged")
    genuine: dict[str, Any] = {}
    answers: dict[str, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def send_genuine(client: httpx.AsyncClient, label: str) -> None:
        body = event_body(f"vid-job-genuine-{label}")
        headers = {
            "X-OpenRouter-Signature": build_signature_header(body, SECRET, int(time.time())),
            "Content-Type": "application/json",
        }
        t0 = time.perf_counter()
        answer = await client.post(
            "/orvideo/webhook?conn_id=openrouter_default", content=body, headers=headers
        )
        try:
            outcome = answer.json().get("outcome")
        except ValueError:
            outcome = answer.text[:80]
        genuine[label] = (answer.status_code, outcome, (time.perf_counter() - t0) * 1000)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if n == requests // 2:
                await send_genuine(client, "during")
            headers = {
                "X-OpenRouter-Signature": build_signature_header(
                    forged_body, "whsec-guess", int(time.time())
                ),
                "Content-Type": "application/json",
            }
            url = f"/orvideo/webhook?conn_id=forged_{n}&dag_id=d&task_id=t&run_id=r&map_index=-1"
            try:
                answer = await client.post(url, content=forged_body, headers=headers)
                key = str(answer.status_code)
            except httpx.HTTPError as error:
                key = type(error).__name__
            answers[key] = answers.get(key, 0) + 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:
        try:
            await asyncio.wait_for(asyncio.gather(*(worker(client) for _ in range(concurrency))), timeout)
        except TimeoutError:
            answers["not sent (timeout)"] = queue.qsize()
        seconds = time.perf_counter() - t0
        await send_genuine(client, "after")
    return answers, seconds, genuine


def receiver_file(stack: AirflowStack) -> str:
    """Which ``_webhook_receiver.py`` the stack's processes import (PYTHONPATH may point elsewhere)."""
    python = str(Path(stack.airflow).parent / "python")
    done = subprocess.run(
        [python, "-c", f"import {RECEIVER_MODULE} as m; print(m.__file__)"],
        env=stack.env,
        cwd=stack.home,  # as the components run: ``python -c`` puts its working directory first
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its descendants so far."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="forged POSTs, one connection id each")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on the flood, seconds")
    parser.add_argument("--samples", type=int, default=200, help="GET /api/v2/dags at rest")
    parser.add_argument("--max-wait", type=float, default=300.0, help="wait this long for a quiet machine")
    parser.add_argument("--keep", action="store_true", help="keep the stack's directory")
    args = parser.parse_args()
    quiet, waited = wait_quiet(max_wait=args.max_wait)
    print(f"machine: {machine_line()} (quiet={quiet}, waited {waited:.0f} s)", flush=True)
    home = Path(tempfile.mkdtemp(prefix="orvideo-flood-bench-"))
    (home / "dags").mkdir()
    (home / "dags" / "bench.py").write_text(DAG)
    (home / "pylib").mkdir()
    (home / "pylib" / "orvideo_lookup_counter.py").write_text(COUNTER)
    lookups = home / "lookups.txt"
    lookups.touch()
    pythonpath = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(home / "pylib")) if p)
    stack = AirflowStack(
        home / "stack",
        home / "dags",
        env={
            "PYTHONPATH": pythonpath,
            "AIRFLOW__SECRETS__BACKEND": "orvideo_lookup_counter.CountingBackend",
            "ORVIDEO_LOOKUP_LOG": str(lookups),
        },
    )
    stack.start()
    try:
        print(f"receiver: {receiver_file(stack)}", flush=True)
        stack.add_connection(
            "openrouter_default", "openrouter", password="k", extra={"webhook_secret": SECRET}
        )
        stack.wait_for_dag(DAG_ID, timeout=120)
        token = stack.token()
        warm = Sampler(stack.base_url, token, limit=20)
        warm.run()
        rest = Sampler(stack.base_url, token, limit=args.samples)
        rest.run()
        log_path = stack.log_path("api-server")
        log_offset = log_path.stat().st_size
        lookups_offset = lookups.stat().st_size
        api_server = stack.component_pid("api-server")
        cpu_before = cpu_seconds(api_server)
        during = Sampler(stack.base_url, token)
        during.start()
        answers, seconds, genuine = asyncio.run(
            flood(stack.base_url, args.requests, args.concurrency, args.timeout)
        )
        during.stop.set()
        during.join()
        cpu = cpu_seconds(api_server) - cpu_before
        time.sleep(2)  # let the api-server's log reach the file
        with log_path.open("rb") as handle:
            handle.seek(log_offset)
            written = handle.read().decode("utf-8", errors="replace").splitlines()
        with lookups.open("rb") as handle:
            handle.seek(lookups_offset)
            looked_up = handle.read().decode().split()
    finally:
        stack.stop()
    receiver_lines = [line for line in written if "webhook_receiver" in line or "OpenRouter webhook" in line]
    access_lines = [line for line in written if "/orvideo/webhook" in line and line not in receiver_lines]
    rows = []
    for label, sampler in (("at rest", rest), ("during the flood", during)):
        p50, p95, worst = percentiles(sampler.latencies)
        rows.append(
            [label, len(sampler.latencies), f"{p50:.1f}", f"{p95:.1f}", f"{worst:.1f}", len(sampler.failures)]
        )
    print(table(["GET /api/v2/dags", "requests", "p50 ms", "p95 ms", "max ms", "failed"], rows))
    sent = sum(v for k, v in answers.items() if not k.startswith("not sent"))
    print(
        f"flood: {sent} forged POSTs in {seconds:.1f} s = {sent / seconds:.0f} requests/s "
        f"({args.concurrency} at a time); answers {dict(sorted(answers.items()))}"
    )
    print(
        f"api-server CPU during the flood: {cpu:.1f} s ({cpu / sent * 1000:.2f} ms per forged POST, "
        f"the sampler's {len(during.latencies)} GETs included)"
    )
    for label, (status, outcome, ms) in sorted(genuine.items()):
        print(f"genuine webhook {label} the flood: {status} {outcome} in {ms:.0f} ms")
    print(
        f"api-server log lines written during the flood: {len(written)} in all, "
        f"{len(receiver_lines)} by the receiver, {len(access_lines)} access-log lines for /orvideo/webhook"
    )
    for line in receiver_lines[:6]:
        print(f"    {line[:240]}")
    forged_lookups = [conn_id for conn_id in looked_up if conn_id.startswith("forged_")]
    print(
        f"connection lookups during the flood: {len(forged_lookups)} of forged ids, "
        f"{len(looked_up) - len(forged_lookups)} of others"
    )
    if args.keep:
        print(f"kept {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
