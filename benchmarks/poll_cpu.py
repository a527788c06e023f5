"""CPU per triggerer poll, in one process: a fine A/B of the async poll path.

``OpenRouterVideoHook.aget_job`` from 20 hooks, 10 concurrent polls each, 25 rounds (5,000 polls),
against the emulator in its own process; prints the process CPU (user + system) per poll in ms.
Much less noisy than the capacity benchmark (section 1), so it tells whether a change moved the
poll path at all. To compare two commits, run it from a worktree of each::

    python benchmarks/poll_cpu.py --repeat 4
    git worktree add /tmp/base <commit> && (cd /tmp/base && PYTHONPATH=/tmp/base python benchmarks/poll_cpu.py --repeat 4)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

import httpx

API_KEY = "poll-cpu-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _measure(job_id: str, hooks: int, concurrency: int, rounds: int) -> float:
    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

    clients = [OpenRouterVideoHook() for _ in range(hooks)]
    for hook in clients:  # warm: settings, shared session, connections
        await hook.aget_job(job_id)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(rounds):
        await asyncio.gather(*(hook.aget_job(job_id) for hook in clients for _ in range(concurrency)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    for hook in clients:
        await hook.aclose()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / (hooks * concurrency * rounds) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hooks", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=1, help="measurements, each in this process")
    args = parser.parse_args()
    port = _free_port()
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orvideo_emulator",
            "--port",
            str(port),
            "--api-key",
            API_KEY,
            "--pending-seconds",
            "0",
            "--in-progress-seconds",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                job = httpx.post(
                    f"{base_url}/videos",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    json={"model": "google/veo-3.1", "prompt": "poll cpu", "duration": 4},
                    timeout=5,
                ).json()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        os.environ["AIRFLOW_CONN_OPENROUTER_DEFAULT"] = json.dumps(
            {"conn_type": "openrouter", "host": base_url, "password": API_KEY}
        )
        figures = [
            asyncio.run(_measure(job["id"], args.hooks, args.concurrency, args.rounds))
            for _ in range(args.repeat)
        ]
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    import airflow_provider_orvideo

    print(f"# package at {os.path.dirname(airflow_provider_orvideo.__file__)}")
    print(
        "ms CPU per poll:",
        ", ".join(f"{f:.3f}" for f in figures),
        f"(median {statistics.median(figures):.3f})",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
