"""Triggerer capacity: N OpenRouterVideoTriggers in one event loop against the emulator.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/triggerer_capacity.py                 # N = 100, 1,000, 10,000; 30 s interval
    .venv/bin/python benchmarks/triggerer_capacity.py --quick         # a ~2 minute smoke run
    .venv/bin/python benchmarks/triggerer_capacity.py --n 10000 --interval 30 --window 60
    # experiments (N=10,000, shared client only; write elsewhere to keep the headline files):
    .venv/bin/python benchmarks/triggerer_capacity.py --n 10000 --patterns shared --stagger 0 \
        --out /tmp/restart.png --json-out /tmp/restart.json     # all picked up at once (restart)

What it does
------------
* Starts the emulator (``python -m orvideo_emulator``) as its own process, with
  jobs that stay ``in_progress`` for days, and creates ``max(N)`` jobs through the real
  ``POST /api/v1/videos`` before any clock starts.
* For every N and both patterns it starts a fresh *trigger process* (this script with
  ``--child``), so each run starts from the same memory baseline. The trigger process runs N
  ``OpenRouterVideoTrigger.run()`` generators as asyncio tasks in one loop, as a triggerer does,
  each built as the operator builds it (``poll_interval=--interval``, the default
  ``initial_delays``, ``submitted_at``) with a deadline a week away. Starts are spread uniformly
  over one interval (a triggerer picks triggers up over time); each job was submitted just long
  enough before its pickup that the initial checks are past, so a trigger polls at once and then
  every interval on its own grid (the steady state); submission times are spread over one
  interval, so the grids are too. After ``--warmup`` seconds more, a steady window of
  ``--window`` seconds is measured. ``--stagger 0`` starts all triggers at once instead, as a
  triggerer does after a restart or a handover (each still on its own grid afterwards).
* The emulator runs with a listen backlog of 4,096 instead of socketserver's 5 (a class attribute
  set in the benchmark's emulator process, see ``serve_emulator``): with 5, the naive pattern's
  bursts of new connections got SYNs dropped (1 s retransmits), an emulator artefact.
* A watchdog thread aborts a trigger process whose RSS passes ``--rss-cap-mb`` (default 4,096) or
  whose event loop is too overloaded to end the window in time, and reports what it measured up
  to then (marked "aborted" / "collapsed").
* Patterns:
  - ``shared``: the package as shipped (all triggers of the loop share one pooled aiohttp session).
  - ``naive``: the same trigger and hook, but every poll gets a brand-new ``httpx.AsyncClient``
    (so a new TCP connection) that is closed after the poll - what ``async with
    httpx.AsyncClient() as client:`` inside the poll loop would do. Done here only, by
    swapping ``hooks._async_sessions``' session registry and exchange for per-poll clients and
    closing the hook's client after each ``aget_job``; no package code changes.

What is measured (trigger process, inside the window only)
----------------------------------------------------------
* **CPU per poll** = (``time.process_time()`` at window end - at start) / polls completed in the
  window. Polls are counted by wrapping ``OpenRouterVideoHook.aget_job`` (one call = one poll;
  the hook's own HTTP retries would be inside it, and there are none here). Everything the
  process spends is charged to the polls: event loop, GC, logging, the instrumentation itself.
* **RSS per live trigger** = (median RSS sampled every second in the window - RSS before any
  trigger object existed) / N. The baseline is taken after one throw-away trigger has run to
  completion (so module imports and lazy initialisation are not charged to the triggers) and a
  ``gc.collect()``. It includes the trigger objects, their tasks and coroutine frames, hooks,
  resolved connections, the shared client and its sockets, and ~100 bytes per trigger of the
  benchmark's own bookkeeping (one dict entry per sleeping trigger).
* **Poll lateness** = actual - scheduled poll time. *Scheduled* = the moment the trigger called
  ``asyncio.sleep(delay)`` after its previous poll + ``delay`` (captured by replacing the
  ``asyncio`` name inside the trigger module with a proxy whose ``sleep`` records the target
  and returns the real ``asyncio.sleep`` coroutine). *Actual* = the moment that poll's response
  had been received and parsed (end of ``aget_job``): conservative, it includes the round trip
  to the emulator. The wake-up lateness (start of ``aget_job``) is also recorded.
* **Emulator CPU** = the emulator process's user+system CPU over the same window (psutil), to
  show whether the emulator, not the triggers, was the bottleneck.
* Also recorded (JSON): requests inside httpx's connection pool (in flight + queued, sampled
  every 0.5 s), GC pauses (``gc.callbacks``), GC-tracked objects per trigger, the machine's other
  load during the window, and the kernel's listen-queue drops.

Outputs: a markdown table on stdout, ``benchmarks/capacity.png`` (the capacity curve) and
``benchmarks/capacity.json`` (raw numbers). Before measuring, the script waits (up to 15 min)
until no ``.ci/run`` or ``pytest`` process is running, so numbers come from a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
API_KEY = "bench-key"
SUBMIT_BODY = {"model": "google/veo-3.1", "prompt": "capacity benchmark"}
TARGET_CPU_MS = 0.5
TARGET_RSS_KB = 50.0
TARGET_P99_S = 1.0
QUIET_PATTERNS = (".ci/run", "pytest")


# ----------------------------------------------------------------------------------------------
# trigger process (--child)
# ----------------------------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class _Recorder:
    """Counters filled by the instrumentation; read by snapshots (also from the watchdog thread)."""

    def __init__(self) -> None:
        self.polls = 0
        self.errors = 0
        self.late: list[float] = []
        self.wake: list[float] = []
        self.scheduled: dict[Any, float] = {}
        self.gc = {"gen2_collections": 0, "pause_s": 0.0}
        self.long_pauses: list[tuple[float, float]] = []  # (when, seconds) for pauses over 1 ms
        self._gc_started = 0.0

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """``gc.callbacks`` hook: every collection stops the event loop; sum those pauses."""
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.gc["pause_s"] += pause
        if pause > 0.001:
            self.long_pauses.append((time.monotonic(), pause))
        if info.get("generation") == 2:
            self.gc["gen2_collections"] += 1


def _instrument(pattern: str, recorder: _Recorder) -> None:
    import httpx

    from airflow_provider_orvideo.hooks import _async_sessions as sessions_mod
    from airflow_provider_orvideo.hooks import openrouter_video as hook_mod
    from airflow_provider_orvideo.hooks._transport import failed_exchange
    from airflow_provider_orvideo.retry import Fault
    from airflow_provider_orvideo.triggers import openrouter_video as trigger_mod

    real_asyncio = asyncio
    scheduled = recorder.scheduled

    class _AsyncioProxy:
        """Stands in for ``asyncio`` inside the trigger module only; records each poll's schedule."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real_asyncio, name)

        @staticmethod
        def sleep(delay: float, result: Any = None) -> Any:
            loop = real_asyncio.get_running_loop()
            scheduled[real_asyncio.current_task()] = loop.time() + delay
            return real_asyncio.sleep(delay, result)  # the real coroutine: no extra frame per trigger

    trigger_mod.asyncio = _AsyncioProxy()  # type: ignore[assignment]

    if pattern == "naive":

        class _NewClientPerPoll:
            """Replaces the shared pool: a fresh client (and TCP connection) per acquire, closed on release.

            An ``httpx.AsyncClient``, as most hooks do it (and as this package did before its async
            path moved to aiohttp), wrapped to look like a shared session to the hook."""

            def acquire(self, settings: Any) -> Any:
                connect = min(settings.timeout, 10.0)
                client = httpx.AsyncClient(timeout=httpx.Timeout(settings.timeout, connect=connect))
                return _PerPollClient(client)

            async def release(self, shared: Any) -> None:
                await shared.client.aclose()

        class _PerPollClient:
            def __init__(self, client: httpx.AsyncClient) -> None:
                self.client = client

        async def exchange(shared: Any, request: Any, settings: Any) -> Any:
            try:
                response = await shared.client.request(
                    request.method,
                    request.url(settings),
                    headers=request.headers(settings),
                    content=request.encoded_body(),
                )
            except httpx.TransportError as error:
                raise failed_exchange(Fault.SENT, error) from None
            return sessions_mod.Answer(response.status_code, response.headers, response.content)

        sessions_mod.shared_sessions = _NewClientPerPoll()  # type: ignore[assignment]
        sessions_mod.exchange = exchange  # type: ignore[assignment]

    original = hook_mod.OpenRouterVideoHook.aget_job
    naive = pattern == "naive"

    async def aget_job(self: Any, job_id: str) -> Any:
        loop = real_asyncio.get_running_loop()
        target = scheduled.pop(real_asyncio.current_task(), None)
        started = loop.time()
        try:
            job = await original(self, job_id)
        except Exception:
            recorder.errors += 1
            raise
        finally:
            if naive:
                await self.aclose()  # give the per-poll client back (closes it)
        recorder.polls += 1
        if target is not None:  # every poll but a trigger's first has a schedule
            recorder.wake.append(started - target)
            recorder.late.append(loop.time() - target)
        return job

    hook_mod.OpenRouterVideoHook.aget_job = aget_job  # type: ignore[method-assign]


def _read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data))


def _pool_queue_depth() -> int:
    """Polls inside the shared sessions (in flight or waiting for the gate); 0 for the naive pattern."""
    from airflow_provider_orvideo.hooks import _async_sessions as sessions_mod

    total = 0
    for shared in list(getattr(sessions_mod.shared_sessions, "sessions", {}).values()):
        gate = shared.gate
        total += sessions_mod.SHARED_SESSION_CONCURRENCY - gate._value + len(gate._waiters or ())
    return total


def _snapshot(recorder: _Recorder, tasks: list[Any], emulator: Any) -> dict[str, Any]:
    return {
        "t": time.monotonic(),
        "cpu": time.process_time(),
        "polls": recorder.polls,
        "errors": recorder.errors,
        "nlate": len(recorder.late),
        "nwake": len(recorder.wake),
        "launched": len(tasks),
        "emu_cpu": sum(emulator.cpu_times()[:2]),
        "sys_cpu": _busy_cpu_seconds(),
        "listen_drops": _listen_drops(),
        "gc": dict(recorder.gc),
    }


def _listen_drops() -> int:
    """The kernel's count of connections dropped because an accept queue was full (machine-wide)."""
    try:
        header, values = Path("/proc/net/netstat").read_text().splitlines()[:2]
    except OSError:
        return 0
    fields = dict(zip(header.split()[1:], values.split()[1:], strict=True))
    return int(fields.get("ListenDrops", 0))


def _busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all cores)."""
    import psutil

    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def _summarize(
    args: argparse.Namespace,
    recorder: _Recorder,
    first: dict[str, Any],
    last: dict[str, Any],
    rss_base: float,
    rss_samples: list[tuple[float, int]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    late = sorted(recorder.late[first["nlate"] : last["nlate"]])
    wake = sorted(recorder.wake[first["nwake"] : last["nwake"]])
    window = last["t"] - first["t"]
    cpu = last["cpu"] - first["cpu"]
    emu_cpu = last["emu_cpu"] - first["emu_cpu"]
    polls = last["polls"] - first["polls"]
    in_window = [rss for t, rss in rss_samples if first["t"] <= t <= last["t"]] or [rss_samples[-1][1]]
    rss_window = statistics.median(in_window)
    live = max(1, last["launched"])
    return {
        "n": args.n,
        "pattern": args.pattern,
        "interval_s": args.interval,
        "window_s": round(window, 3),
        "launched_at_window_start": first["launched"],
        "launched_at_end": last["launched"],
        "polls": polls,
        "expected_polls": round(args.n * window / args.interval),
        "errors": last["errors"] - first["errors"],
        "cpu_s": round(cpu, 4),
        "cpu_ms_per_poll": round(1000 * cpu / polls, 4) if polls else None,
        "cpu_util": round(cpu / window, 4) if window > 0 else None,
        "rss_base_mb": round(rss_base / 2**20, 2),
        "rss_window_mb": round(rss_window / 2**20, 2),
        "rss_max_mb": round(max(rss for _, rss in rss_samples) / 2**20, 2),
        "rss_kb_per_trigger": round((rss_window - rss_base) / 1024 / live, 3),
        "late_p50_ms": _ms(_percentile(late, 0.50)),
        "late_p99_ms": _ms(_percentile(late, 0.99)),
        "late_max_ms": _ms(late[-1] if late else None),
        "wake_p50_ms": _ms(_percentile(wake, 0.50)),
        "wake_p99_ms": _ms(_percentile(wake, 0.99)),
        "lateness_samples": len(late),
        "emulator_cpu_s": round(emu_cpu, 4),
        "emulator_util": round(emu_cpu / window, 4) if window > 0 else None,
        "emulator_ms_per_request": round(1000 * emu_cpu / polls, 4) if polls else None,
        "gc_gen2_collections": last["gc"]["gen2_collections"] - first["gc"]["gen2_collections"],
        "gc_pause_ms_per_s": round(1000 * (last["gc"]["pause_s"] - first["gc"]["pause_s"]) / window, 3)
        if window > 0
        else None,
        "gc_max_pause_ms": round(
            1000 * max((p for t, p in recorder.long_pauses if first["t"] <= t <= last["t"]), default=0.0), 2
        ),
        "listen_drops": last["listen_drops"] - first["listen_drops"],
        # everything else on the machine during the window (other users' jobs, kernel), in cores
        "other_load_cores": round((last["sys_cpu"] - first["sys_cpu"] - cpu - emu_cpu) / window, 3)
        if window > 0
        else None,
        **extra,
    }


async def _child_run(args: argparse.Namespace) -> None:
    import threading

    import psutil

    from airflow_provider_orvideo.defaults import DEFAULT_INITIAL_POLL_DELAYS
    from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger

    job_ids: list[str] = _read_json(args.jobs_file)[: args.n]
    assert len(job_ids) == args.n, f"need {args.n} jobs, have {len(job_ids)}"
    me = psutil.Process()
    emulator = psutil.Process(args.emulator_pid)
    loop = asyncio.get_running_loop()
    result_file = Path(args.result_file)

    # Warm-up: one trigger runs to completion (deadline already passed -> one poll, a timeout
    # event), so imports, the connection lookup path and lazy initialisation are paid here.
    warm = OpenRouterVideoTrigger(job_id=job_ids[0], deadline=time.time() - 1, poll_interval=args.interval)
    events = [e async for e in warm.run()]
    assert len(events) == 1, events
    assert events[0].payload["status"] == "timeout", events

    recorder = _Recorder()
    _instrument(args.pattern, recorder)
    gc.callbacks.append(recorder.on_gc)
    gc.collect()
    await asyncio.sleep(0.5)
    rss_base = statistics.median(me.memory_info().rss for _ in range(5))
    objects_base = len(gc.get_objects())
    if args.gc_freeze:
        gc.freeze()  # what a triggerer could do after start-up: keep its import-time heap out of GC

    tasks: list[asyncio.Task[Any]] = []
    ended: list[Any] = []
    queue_samples: list[tuple[float, int]] = []
    rss_samples: list[tuple[float, int]] = []
    marks: dict[str, dict[str, Any]] = {}
    done = threading.Event()

    def extra(**more: Any) -> dict[str, Any]:
        start = marks.get("window_start", marks["launch"])["t"]
        in_window = [depth for t, depth in queue_samples if t >= start]
        return {
            "ended_triggers": len(ended),
            "ended_statuses": sorted(set(map(str, ended))),
            "pool_requests_max": max(in_window, default=None),
            "pool_requests_median": statistics.median(in_window) if in_window else None,
            "stagger_intervals": args.stagger,
            "gc_freeze": args.gc_freeze,
            **more,
        }

    def watchdog() -> None:
        """A thread, so it still runs when an overloaded loop does not: samples RSS, enforces the caps."""
        hard_stop = (
            marks["launch"]["t"] + args.interval + args.warmup + args.window + max(60.0, args.interval)
        )
        while not done.wait(0.5):
            rss = me.memory_info().rss
            rss_samples.append((time.monotonic(), rss))
            queue_samples.append((time.monotonic(), _pool_queue_depth()))
            reason = None
            if rss > args.rss_cap_mb * 2**20:
                reason = f"RSS {rss / 2**20:.0f} MB passed the {args.rss_cap_mb} MB cap"
            elif time.monotonic() > hard_stop:
                reason = "the window did not end in time (event loop overloaded)"
            if reason:
                first = marks.get("window_start", marks["launch"])
                last = _snapshot(recorder, tasks, emulator)
                measured = "window" if "window_start" in marks else "launch-to-abort"
                result = _summarize(
                    args,
                    recorder,
                    first,
                    last,
                    rss_base,
                    rss_samples,
                    extra(aborted=reason, measured_over=measured),
                )
                _write_json(result_file, result)
                os._exit(0)  # no orderly teardown of an overloaded loop

    deadline = time.time() + 7 * 86400
    # Triggers are built as the operator builds them (default schedule: checks 30 s and 40 s after
    # submission, then on the poll_interval grid) and picked up as a triggerer picks up existing
    # triggers: their jobs were submitted long enough ago that the initial checks are past, so each
    # polls at once and then every poll_interval on its own grid - the steady state. Submission
    # times are spread uniformly over one interval, so the grids are too, whatever --stagger says.
    past_initial_checks = sum(min(d, args.interval) for d in DEFAULT_INITIAL_POLL_DELAYS)
    wall0 = time.time()
    step = args.stagger * args.interval / args.n

    async def consume(trigger: OpenRouterVideoTrigger) -> None:
        async for event in trigger.run():
            ended.append(event.payload.get("status"))

    marks["launch"] = _snapshot(recorder, tasks, emulator)
    t0 = marks["launch"]["t"]
    threading.Thread(target=watchdog, name="capacity-watchdog", daemon=True).start()

    async def launch() -> None:
        i = 0
        while i < args.n:
            now = time.monotonic()
            while i < args.n and t0 + i * step <= now:
                trigger = OpenRouterVideoTrigger(
                    job_id=job_ids[i],
                    deadline=deadline,
                    poll_interval=args.interval,
                    submitted_at=wall0 - past_initial_checks - i * args.interval / args.n,
                    initial_delays=list(DEFAULT_INITIAL_POLL_DELAYS),
                )
                tasks.append(loop.create_task(consume(trigger)))
                i += 1
            if i < args.n:
                await asyncio.sleep(max(0.0, t0 + i * step - time.monotonic()))

    launcher = loop.create_task(launch())
    await asyncio.sleep(max(0.0, t0 + args.interval + args.warmup - time.monotonic()))
    marks["window_start"] = first = _snapshot(recorder, tasks, emulator)
    await asyncio.sleep(max(0.0, first["t"] + args.window - time.monotonic()))
    last = _snapshot(recorder, tasks, emulator)
    rss_samples.append((last["t"], me.memory_info().rss))
    connections = len(me.net_connections(kind="tcp"))
    done.set()
    objects_per_trigger = (len(gc.get_objects()) + gc.get_freeze_count() - objects_base) / args.n
    result = _summarize(
        args,
        recorder,
        first,
        last,
        rss_base,
        rss_samples,
        extra(
            measured_over="window",
            tcp_connections_at_end=connections,
            gc_tracked_objects_base=objects_base,
            gc_tracked_objects_per_trigger=round(objects_per_trigger, 1),
        ),
    )
    _write_json(result_file, result)

    launcher.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.wait([launcher, *tasks], timeout=30)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 3)


def child_main(args: argparse.Namespace) -> int:
    asyncio.run(_child_run(args))
    sys.stdout.flush()
    os._exit(0)  # the result is written; skip interpreter teardown of thousands of objects


# ----------------------------------------------------------------------------------------------
# orchestrator
# ----------------------------------------------------------------------------------------------


def _busy_processes() -> list[str]:
    found = []
    for pattern in QUIET_PATTERNS:
        out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
        for line in out.splitlines():
            pid = int(line.split()[0])
            if pid != os.getpid() and "pgrep" not in line:
                found.append(line)
    return found


def wait_until_quiet(max_wait: float, every: float = 20.0) -> None:
    started = time.monotonic()
    while busy := _busy_processes():
        if time.monotonic() - started > max_wait:
            print(f"# machine still busy after {max_wait:.0f} s; measuring anyway: {busy}", flush=True)
            return
        print(f"# waiting for a quiet machine ({len(busy)} busy: {busy[0][:80]}) ...", flush=True)
        time.sleep(every)


def serve_emulator(argv: list[str]) -> int:
    """The emulator's own entry point, with a listen backlog of 4,096 instead of socketserver's 5.

    With a backlog of 5, the naive pattern's bursts of new connections overflow the emulator's
    accept queue and the kernel drops SYNs (each costing the client a 1 s retransmit), which would
    charge an emulator artefact to the naive pattern. A real API front end has a deep backlog.
    Only this class attribute is changed, in the benchmark's emulator process; the emulator's code
    is untouched.
    """
    from orvideo_emulator import __main__ as emulator_main
    from orvideo_emulator import server

    server._HTTPServer.request_queue_size = 4096
    return emulator_main.main(argv)


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-emulator",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--pending-seconds",
            "0",
            "--in-progress-seconds",
            str(30 * 86400),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.terminate()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def create_jobs(base_url: str, count: int) -> list[str]:
    import httpx

    ids = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for _ in range(count):
            response = client.post("/videos", json=SUBMIT_BODY)
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


def run_child(
    args: argparse.Namespace, n: int, pattern: str, base_url: str, emulator_pid: int, workdir: Path
) -> dict[str, Any]:
    result_file = workdir / f"result-{pattern}-{n}.json"
    log_file = workdir / f"trigger-process-{pattern}-{n}.log"
    env = {
        **os.environ,
        "AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(
            {"conn_type": "openrouter", "host": base_url, "password": API_KEY}
        ),
        "AIRFLOW_HOME": str(workdir / "airflow-home"),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--pattern",
        pattern,
        "--n-child",
        str(n),
        "--interval",
        str(args.interval),
        "--warmup",
        str(args.warmup),
        "--window",
        str(args.window),
        "--jobs-file",
        str(workdir / "jobs.json"),
        "--result-file",
        str(result_file),
        "--emulator-pid",
        str(emulator_pid),
        "--rss-cap-mb",
        str(args.rss_cap_mb),
        *(["--gc-freeze"] if args.gc_freeze else []),
        *(["--stagger", str(args.stagger)]),
    ]
    with log_file.open("w") as log:
        done = subprocess.run(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log_file.read_text()[-4000:]
        raise RuntimeError(f"trigger process ({pattern}, N={n}) failed with {done.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def markdown_tables(results: list[dict[str, Any]]) -> str:
    lines = [
        "| N | pattern | polls in window (got / due) | CPU ms/poll | trigger proc CPU | RSS KB/trigger "
        "| lateness p50 / p99 (ms) | wake-up p99 (ms) | emulator CPU (ms/req) | poll errors | other load (cores) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['n']:,} | {r['pattern']}{' (aborted†)' if r.get('aborted') else ''} "
            f"| {r['polls']:,} / {r['expected_polls']:,} "
            f"| {_fmt(r['cpu_ms_per_poll'])} | {_pct(r['cpu_util'])} | {_fmt(r['rss_kb_per_trigger'], '.1f')} "
            f"| {_fmt(r['late_p50_ms'], '.1f')} / {_fmt(r['late_p99_ms'], '.1f')} | {_fmt(r['wake_p99_ms'], '.1f')} "
            f"| {_pct(r['emulator_util'])} ({_fmt(r['emulator_ms_per_request'], '.2f')}) | {r['errors']} "
            f"| {_fmt(r.get('other_load_cores'), '.2f')} |"
        )
    by = {(r["n"], r["pattern"]): r for r in results}
    ratio_lines = [
        "",
        "| N | CPU/poll naive ÷ shared | RSS/trigger naive ÷ shared | p99 lateness naive ÷ shared |",
        "|---:|---:|---:|---:|",
    ]
    for n in sorted({r["n"] for r in results}):
        ours, naive = by.get((n, "shared")), by.get((n, "naive"))
        if not ours or not naive:
            continue
        if naive.get("aborted") or ours.get("aborted"):
            ratio_lines.append(f"| {n:,} | collapsed† | collapsed† | collapsed† |")
            continue
        ratio_lines.append(
            f"| {n:,} | {_ratio(naive['cpu_ms_per_poll'], ours['cpu_ms_per_poll'])} "
            f"| {_ratio(naive['rss_kb_per_trigger'], ours['rss_kb_per_trigger'])} "
            f"| {_ratio(naive['late_p99_ms'], ours['late_p99_ms'])} |"
        )
    notes = [
        f"\n† N={r['n']:,} {r['pattern']}: aborted ({r['aborted']}); figures measured {r['measured_over']}, "
        f"{r.get('launched_at_end', 0):,} triggers started by then."
        for r in results
        if r.get("aborted")
    ]
    return "\n".join(lines + (ratio_lines if len(ratio_lines) > 3 else []) + notes)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "n/a"
    return f"{a / b:.1f}x"


def plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = [
        ("cpu_ms_per_poll", "CPU time per poll (ms)", TARGET_CPU_MS),
        ("rss_kb_per_trigger", "RSS per live trigger (KB)", TARGET_RSS_KB),
        ("late_p99_ms", "p99 poll lateness (ms)", TARGET_P99_S * 1000),
    ]
    styles = {
        "shared": ("tab:blue", "o", "shared client (package)"),
        "naive": ("tab:red", "s", "new client per poll (naive)"),
    }
    for ax, (key, label, target) in zip(axes, panels, strict=True):
        for pattern, (color, marker, name) in styles.items():
            rows = sorted(
                (r for r in results if r["pattern"] == pattern and r[key] is not None), key=lambda r: r["n"]
            )
            ok = [r for r in rows if not r.get("aborted")]
            if ok:
                ax.plot([r["n"] for r in ok], [r[key] for r in ok], marker=marker, color=color, label=name)
            for r in rows:
                if r.get("aborted"):
                    # a run that collapsed: its figures are from launch to abort, not a steady window
                    ax.plot([r["n"]], [r[key]], marker="X", markersize=10, color=color, linestyle="none")
                    ax.annotate(
                        "collapsed",
                        (r["n"], r[key]),
                        textcoords="offset points",
                        xytext=(-55, 0),
                        fontsize=8,
                        color=color,
                    )
                elif r["polls"] < 0.95 * r["expected_polls"]:
                    ax.annotate(
                        "saturated",
                        (r["n"], r[key]),
                        textcoords="offset points",
                        xytext=(-55, 4),
                        fontsize=8,
                        color=color,
                    )
        ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent triggers N")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-emulator"]:
        return serve_emulator(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000], help="trigger counts")
    parser.add_argument("--interval", type=float, default=30.0, help="poll_interval of every trigger (s)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="s after the last start before the window (default interval/2)",
    )
    parser.add_argument(
        "--window", type=float, default=None, help="measured steady window (s; default 2 intervals)"
    )
    parser.add_argument("--patterns", nargs="+", default=["shared", "naive"], choices=["shared", "naive"])
    parser.add_argument("--quick", action="store_true", help="N = 100, 1,000 at a 10 s interval, 20 s window")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for CI/pytest to finish first")
    parser.add_argument("--max-wait", type=float, default=900.0, help="longest wait for a quiet machine (s)")
    parser.add_argument(
        "--stagger",
        type=float,
        default=1.0,
        help="spread trigger starts over this many intervals (0: all at once, like a triggerer restart)",
    )
    parser.add_argument("--json-out", type=Path, default=HERE / "capacity.json", help="raw results path")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() in the trigger process before the triggers start (a triggerer-side experiment)",
    )
    parser.add_argument("--rss-cap-mb", type=int, default=4096, help="abort a trigger process above this RSS")
    parser.add_argument("--out", type=Path, default=HERE / "capacity.png", help="PNG plot path")
    # trigger-process mode (internal)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pattern", help=argparse.SUPPRESS)
    parser.add_argument("--n-child", dest="n_child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--jobs-file", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    parser.add_argument("--emulator-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.quick:
        args.n, args.interval = [100, 1000], 10.0
        args.window = args.window or 20.0
    args.warmup = args.interval / 2 if args.warmup is None else args.warmup
    args.window = 2 * args.interval if args.window is None else args.window

    if args.child:
        args.n = args.n_child
        return child_main(args)

    if not args.no_wait:
        wait_until_quiet(args.max_wait)
    started = datetime.datetime.now().astimezone()
    emulator, base_url = start_emulator()
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="orvideo-capacity-") as tmp:
            workdir = Path(tmp)
            t = time.monotonic()
            job_ids = create_jobs(base_url, max(args.n))
            (workdir / "jobs.json").write_text(json.dumps(job_ids))
            print(
                f"# emulator {base_url} (pid {emulator.pid}); {len(job_ids):,} jobs created in "
                f"{time.monotonic() - t:.1f} s via POST /videos",
                flush=True,
            )
            for n in sorted(args.n):
                for pattern in args.patterns:
                    print(
                        f"# running N={n:,} {pattern} (interval {args.interval:g} s, warm-up {args.warmup:g} s, "
                        f"window {args.window:g} s) ...",
                        flush=True,
                    )
                    result = run_child(args, n, pattern, base_url, emulator.pid, workdir)
                    results.append(result)
                    print("#   " + json.dumps(result), flush=True)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)

    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    header = (
        f"Triggerer capacity, {started:%Y-%m-%d %H:%M %Z}; {machine}; poll interval {args.interval:g} s, "
        f"window {args.window:g} s"
        + (f", starts over {args.stagger:g} intervals" if args.stagger != 1.0 else "")
        + (", gc.freeze()" if args.gc_freeze else "")
    )
    print()
    print(f"<!-- {header} -->")
    print(markdown_tables(results))
    args.json_out.write_text(
        json.dumps(
            {"started": started.isoformat(), "machine": machine, "argv": sys.argv[1:], "results": results},
            indent=1,
        )
    )
    try:
        import matplotlib  # noqa: F401 - only the plot needs it; the figures above are printed already
    except ImportError:
        print(f"\n# no plot: matplotlib is not installed (pip install matplotlib)\n# raw: {args.json_out}")
        return 0
    plot(results, args.out, header)
    print(f"\n# plot: {args.out}\n# raw: {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
