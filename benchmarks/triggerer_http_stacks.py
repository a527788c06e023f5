"""Where a trigger's CPU per poll goes: the package's poll path vs bare HTTP client stacks.

Companion to ``triggerer_capacity.py`` (section 1 of ``benchmarks/README.md``). Same rate as its
headline case - 333 polls/s, i.e. N=10,000 triggers at a 30 s interval - made with 1,000 pollers
every 3 s, each poll a ``GET /api/v1/videos/{id}`` against the emulator in its own process, JSON
decoded. Each stack runs in a fresh process; CPU per poll = ``time.process_time()`` over a steady
window / polls in it::

    .venv/bin/python benchmarks/triggerer_http_stacks.py
    .venv/bin/python benchmarks/triggerer_http_stacks.py --loop uvloop

Stacks: ``package`` (``OpenRouterVideoHook.aget_job``, one hook per poller, so the shared pooled
client), ``httpx`` (one ``httpx.AsyncClient``, ``.get`` + ``.json()``), ``httpcore`` (its pool
directly), ``aiohttp`` (one ``ClientSession``; only if aiohttp is importable - it is not a
dependency of the package: ``pip install aiohttp``, or ``pip install --target DIR aiohttp`` and
``--aiohttp-path DIR`` to keep it out of the venv) and ``raw`` (asyncio streams,
keep-alive, a hand-written HTTP/1.1 GET: a lower bound, not a proposal).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import triggerer_capacity as capacity  # sibling script, not a package

STACKS = ("package", "httpx", "httpcore", "aiohttp", "raw")
N, INTERVAL, WARMUP, WINDOW = 1000, 3.0, 4.5, 15.0


async def _measure(fetch: Callable[[str], Awaitable[Any]], ids: list[str]) -> tuple[float, int]:
    polls = 0
    recording = False

    async def poller(job_id: str, offset: float) -> None:
        nonlocal polls
        await asyncio.sleep(offset)
        while True:
            job = await fetch(job_id)
            if job["status"] != "in_progress":
                raise RuntimeError(f"unexpected job {job}")
            if recording:
                polls += 1
            await asyncio.sleep(INTERVAL)

    tasks = [asyncio.create_task(poller(ids[i], i * INTERVAL / N)) for i in range(N)]
    await asyncio.sleep(INTERVAL + WARMUP)
    recording, cpu0 = True, time.process_time()
    await asyncio.sleep(WINDOW)
    cpu, recording = time.process_time() - cpu0, False
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return cpu, polls


async def _run_stack(stack: str, base_url: str, ids: list[str]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {capacity.API_KEY}", "Accept": "application/json"}
    close: Callable[[], Awaitable[Any]] | None = None
    fetch: Callable[[str], Awaitable[Any]]
    if stack == "package":
        from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

        hooks: dict[str, OpenRouterVideoHook] = {}

        async def fetch(job_id: str) -> Any:
            hook = hooks.get(job_id) or hooks.setdefault(job_id, OpenRouterVideoHook())
            return {"status": (await hook.aget_job(job_id)).status}

    elif stack == "httpx":
        import httpx

        client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100))
        close = client.aclose

        async def fetch(job_id: str) -> Any:
            return (await client.get(f"{base_url}/videos/{job_id}", headers=headers)).json()

    elif stack == "httpcore":
        import httpcore

        pool = httpcore.AsyncConnectionPool(max_connections=100)
        close = pool.aclose
        raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]

        async def fetch(job_id: str) -> Any:
            response = await pool.request(b"GET", f"{base_url}/videos/{job_id}".encode(), headers=raw_headers)
            return json.loads(response.content)

    elif stack == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        close = session.close

        async def fetch(job_id: str) -> Any:
            async with session.get(f"{base_url}/videos/{job_id}", headers=headers) as response:
                return json.loads(await response.read())

    else:
        host, port = base_url.split("//", 1)[1].split("/", 1)[0].split(":")
        idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        head = f"Host: {host}:{port}\r\nAuthorization: {headers['Authorization']}\r\nAccept: application/json\r\n\r\n"

        async def fetch(job_id: str) -> Any:
            reader, writer = idle.pop() if idle else await asyncio.open_connection(host, int(port))
            writer.write(f"GET /api/v1/videos/{job_id} HTTP/1.1\r\n{head}".encode())
            response_head = await reader.readuntil(b"\r\n\r\n")
            length = int(response_head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            idle.append((reader, writer))
            return json.loads(body)

    cpu, polls = await _measure(fetch, ids)
    if close is not None:
        await close()
    return {"stack": stack, "cpu_ms_per_poll": round(1000 * cpu / polls, 3), "polls": polls}


def _child(stack: str, base_url: str, ids_file: str, loop: str, extra_path: str | None) -> None:
    if extra_path:
        sys.path.append(extra_path)  # after site-packages: only adds what the venv lacks
    ids = json.loads(Path(ids_file).read_text())
    runner: Callable[[Any], Any] = asyncio.run
    if loop == "uvloop":
        import uvloop

        runner = uvloop.run
    print(json.dumps(runner(_run_stack(stack, base_url, ids))), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stacks", nargs="+", default=list(STACKS), choices=STACKS)
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    parser.add_argument("--aiohttp-path", help="a directory holding aiohttp, for the aiohttp run only")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for CI/pytest to finish first")
    parser.add_argument("--child", nargs=3, metavar=("STACK", "BASE_URL", "IDS_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child, loop=args.loop, extra_path=args.aiohttp_path)
        return 0
    if not args.no_wait:
        capacity.wait_until_quiet(900.0)
    emulator, base_url = capacity.start_emulator()
    rows = []
    try:
        ids_file = Path(f"/tmp/orvideo-http-stacks-{os.getpid()}.json")
        ids_file.write_text(json.dumps(capacity.create_jobs(base_url, N)))
        env = {
            **os.environ,
            "AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(
                {"conn_type": "openrouter", "host": base_url, "password": capacity.API_KEY}
            ),
        }
        for stack in args.stacks:
            extra = ["--aiohttp-path", args.aiohttp_path] if stack == "aiohttp" and args.aiohttp_path else []
            if stack == "aiohttp":
                probe_code = f"import sys; sys.path.append({args.aiohttp_path or ''!r}); import aiohttp"
                probe = subprocess.run([sys.executable, "-c", probe_code], capture_output=True, env=env)
                if probe.returncode != 0:
                    print("# aiohttp not installed: skipped (pip install aiohttp to include it)", flush=True)
                    continue
            command = [sys.executable, __file__, "--loop", args.loop, *extra, "--child", stack, base_url]
            command.append(str(ids_file))
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"# {rows[-1]}", flush=True)
        ids_file.unlink()
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    print(
        f"\n{N:,} pollers every {INTERVAL:g} s ({N / INTERVAL:.0f} polls/s), loop {args.loop}, {WINDOW:g} s window\n"
    )
    print("| stack | CPU ms/poll | polls |\n|---|---:|---:|")
    for row in rows:
        print(f"| {row['stack']} | {row['cpu_ms_per_poll']:.3f} | {row['polls']:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
