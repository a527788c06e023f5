"""Shared helpers for the benchmark scripts: a quiet-machine wait, an emulator in its own process,
and small statistics/table utilities. Not part of the package; nothing here is imported by it."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

#: Processes that make the machine "not quiet" (patterns from the brief: `.ci/run`, pytest, and the
#: other helper's triggerer benchmark).
_BUSY = re.compile(r"\.ci/run|pytest|triggerer_capacity")


def _own_lineage() -> set[int]:
    pids = {os.getpid()}
    try:
        proc: psutil.Process | None = psutil.Process()
        while proc is not None:
            pids.add(proc.pid)
            proc = proc.parent()
    except psutil.Error:
        pass
    for child in psutil.Process().children(recursive=True):
        pids.add(child.pid)
    return pids


def busy_processes() -> list[str]:
    """Command lines of running processes that make the machine not quiet (never our own)."""
    mine = _own_lineage()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.info["pid"] in mine:
            continue
        cmd = " ".join(proc.info["cmdline"] or [])
        if _BUSY.search(cmd):
            found.append(f"{proc.info['pid']} {cmd[:120]}")
    return found


def wait_quiet(max_wait: float = 900.0, poll: float = 20.0) -> tuple[bool, float]:
    """Wait until no CI run, pytest or triggerer benchmark is running (poll every 20 s, up to 15 min).

    Returns (quiet, seconds waited). Prints what it waits for to stderr.
    """
    t0 = time.monotonic()
    while True:
        busy = busy_processes()
        waited = time.monotonic() - t0
        if not busy:
            return True, waited
        if waited >= max_wait:
            print(f"[quiet] machine still busy after {waited:.0f} s: {busy}", file=sys.stderr, flush=True)
            return False, waited
        print(f"[quiet] waiting ({waited:.0f} s): {busy}", file=sys.stderr, flush=True)
        time.sleep(poll)


class Emulator:
    """``python -m orvideo_emulator`` in its own process (own session)."""

    def __init__(self, api_key: str = "bench-key", webhook_secret: str | None = None) -> None:
        self.api_key = api_key
        secret = ["--webhook-secret", webhook_secret] if webhook_secret else []
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "orvideo_emulator", "--port", "0", "--api-key", api_key, *secret],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            start_new_session=True,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"(http://\S+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"emulator did not print its URL: {line!r}")
        self.base_url = match[1]  # ends in /api/v1
        self.origin = self.base_url.removesuffix("/api/v1")
        self.client = httpx.Client(timeout=30.0)

    def control(self, path: str, **kwargs: Any) -> Any:
        method = "POST" if "json" in kwargs else "GET"
        response = self.client.request(method, f"{self.origin}/_emulator{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def set_job_defaults(self, **fields: Any) -> Any:
        return self.control("/job-defaults", json=fields)

    def submit_completed_job(self, output_size: int | None) -> str:
        """Submit a job that completes at once with an output of ``output_size`` bytes; its id."""
        self.set_job_defaults(pending_seconds=0, in_progress_seconds=0, output_size=output_size)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        response = self.client.post(
            f"{self.base_url}/videos",
            headers=headers,
            json={"model": "google/veo-3.1", "prompt": "benchmark"},
        )
        response.raise_for_status()
        job_id = str(response.json()["id"])
        for _ in range(100):
            status = self.client.get(f"{self.base_url}/videos/{job_id}", headers=headers).json()["status"]
            if status == "completed":
                return job_id
            time.sleep(0.05)
        raise RuntimeError(f"job {job_id} never completed")

    def content_url(self, job_id: str, index: int = 0) -> str:
        return f"{self.base_url}/videos/{job_id}/content?index={index}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.stop()


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def machine_line() -> str:
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"Python {sys.version.split()[0]}, load avg {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )
