"""Completion detection: how long after a job completes does the download start, and how many polls?

Two ways to measure, both on the package's own ``JobPoller`` (the decision the trigger and the
worker-side loop run):

* default (model): the poller is driven with an injected clock against jobs whose duration is
  drawn uniformly within +-20 % of the nominal length (30 s, 2 min, 10 min), 1,001 jobs each.
  The poller is pure, so this is exact up to HTTP latency (milliseconds against the emulator).
* ``--real``: real ``OpenRouterVideoTrigger`` s in one event loop against the emulator in another
  process, for 30 s and 2 min jobs (add ``--real-lengths 30 120 600`` for 10 min): the delay is
  the trigger's event time minus the job's completion time at the emulator, and polls are
  counted from the emulator's request log.

Schedules compared: the default (checks 30 s and 40 s after submission, then at 60, 90, ... s), a fixed 30 s interval, a fixed 10 s interval, and the safety schedule a task keeps when webhooks
are on, as it behaves when the webhook is lost (``webhook_completion.py`` measures the webhook).

    python benchmarks/completion_detection.py            # model, ~1 s
    python benchmarks/completion_detection.py --real     # + real triggers, ~2.5 min
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflow_provider_orvideo._internal.api import VideoJob
from airflow_provider_orvideo.defaults import (
    DEFAULT_INITIAL_POLL_DELAYS,
    DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS,
)
from airflow_provider_orvideo.polling import JobPoller, PollState

SCHEDULES: dict[str, tuple[float, tuple[float, ...]]] = {
    "default (30 s, 40 s, then every 30 s)": (30.0, DEFAULT_INITIAL_POLL_DELAYS),
    "fixed 30 s": (30.0, (30.0,)),
    "fixed 10 s": (10.0, (10.0,)),
    "webhook lost: safety poll every 600 s": (
        DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS,
        (DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS,),
    ),
}
LENGTHS = (30.0, 120.0, 600.0)
API_KEY = "bench-key"


def model_one(interval: float, delays: tuple[float, ...], duration: float) -> tuple[float, int]:
    """(delay from completion to detection, polls) for one job, on an injected clock."""
    poller = JobPoller(
        "job", deadline=1e9, poll_interval=interval, submitted_at=0.0, initial_poll_delays=delays
    )
    now = poller.first_delay(0.0)
    state = PollState()
    while True:
        status = "completed" if now >= duration else "in_progress"
        step = poller.on_job(state, VideoJob(id="job", status=status), now=now)
        state = step.state
        if step.event is not None:
            return now - duration, state.polls
        now += step.delay or 0.0


def run_model(samples: int) -> list[dict[str, object]]:
    rng = random.Random(20261124)
    rows = []
    for length in LENGTHS:
        durations = [rng.uniform(0.8 * length, 1.2 * length) for _ in range(samples)]
        for name, (interval, delays) in SCHEDULES.items():
            results = [model_one(interval, delays, d) for d in durations]
            rows.append(
                {
                    "length_s": length,
                    "schedule": name,
                    "median_delay_s": statistics.median(r[0] for r in results),
                    "p90_delay_s": statistics.quantiles([r[0] for r in results], n=10)[-1],
                    "mean_polls": statistics.fmean(r[1] for r in results),
                }
            )
    return rows


async def _real_triggers(base_url: str, lengths: list[float], per_length: int) -> list[dict[str, object]]:
    import os

    import httpx

    from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger

    os.environ["AIRFLOW_CONN_OPENROUTER_DEFAULT"] = json.dumps(
        {"conn_type": "openrouter", "host": base_url, "password": API_KEY}
    )
    origin = base_url.removesuffix("/api/v1")
    jobs: list[tuple[str, float, float]] = []  # (job id, submitted_at, completes_at)
    async with httpx.AsyncClient(base_url=origin, timeout=30) as client:
        rng = random.Random(7)
        for length in lengths:
            for _ in range(per_length):
                duration = rng.uniform(0.8 * length, 1.2 * length)
                await client.post(
                    "/_emulator/job-defaults", json={"pending_seconds": 0, "in_progress_seconds": duration}
                )
                submitted = time.time()
                response = await client.post(
                    "/api/v1/videos",
                    json={"model": "google/veo-3.1", "prompt": "bench", "duration": 4},
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
                jobs.append((response.json()["id"], submitted, submitted + duration))

        async def follow(job_id: str, submitted: float) -> float:
            trigger = OpenRouterVideoTrigger(
                job_id=job_id,
                deadline=submitted + 3600,
                poll_interval=30.0,
                submitted_at=submitted,
                initial_delays=list(DEFAULT_INITIAL_POLL_DELAYS),
            )
            async for event in trigger.run():
                assert event.payload["status"] == "completed", event.payload
                return time.time()
            raise AssertionError("no event")

        finished = await asyncio.gather(*(follow(job_id, submitted) for job_id, submitted, _ in jobs))
        log = (await client.get("/_emulator/requests", params={"endpoint": "poll"})).json()["requests"]
    polls: dict[str, int] = {}
    for entry in log:
        match = re.search(r"/videos/([^/?]+)$", entry["path"])
        if match:
            polls[match.group(1)] = polls.get(match.group(1), 0) + 1
    rows = []
    for length_index, length in enumerate(lengths):
        chunk = range(length_index * per_length, (length_index + 1) * per_length)
        delays = [finished[i] - jobs[i][2] for i in chunk]
        rows.append(
            {
                "length_s": length,
                "schedule": "default, real triggers",
                "median_delay_s": statistics.median(delays),
                "p90_delay_s": max(delays) if len(delays) < 10 else statistics.quantiles(delays, n=10)[-1],
                "mean_polls": statistics.fmean(polls.get(jobs[i][0], 0) for i in chunk),
            }
        )
    return rows


def run_real(lengths: list[float], per_length: int) -> list[dict[str, object]]:
    emulator = subprocess.Popen(
        [sys.executable, "-m", "orvideo_emulator", "--port", "0", "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        base_url = re.search(r"(http://\S+/api/v1)", emulator.stdout.readline()).group(1)  # type: ignore[union-attr]
        return asyncio.run(_real_triggers(base_url, lengths, per_length))
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| job length | schedule | median delay | p90 delay | polls per job |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['length_s']:.0f} s | {row['schedule']} | {row['median_delay_s']:.1f} s | "
            f"{row['p90_delay_s']:.1f} s | {row['mean_polls']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1001, help="modelled jobs per length")
    parser.add_argument("--real", action="store_true", help="also run real triggers against the emulator")
    parser.add_argument("--real-lengths", type=float, nargs="+", default=[30.0, 120.0])
    parser.add_argument("--real-jobs", type=int, default=10, help="real jobs per length")
    args = parser.parse_args()
    rows = run_model(args.samples)
    if args.real:
        rows += run_real(args.real_lengths, args.real_jobs)
    print(table(rows))


if __name__ == "__main__":
    main()
