"""Benchmark 3: worker slot time of a 60 s job, deferrable=True vs deferrable=False, on a real stack.

    python benchmarks/worker_slot_time.py               # 3 runs of each mode, alternating
    python benchmarks/worker_slot_time.py --reps 1 --keep

Set-up: the emulator in its own process, with job defaults pending 10 s + in_progress 50 s (a job
completes 60 s after it is submitted; output = the bundled sample MP4, so the download is small and
timed separately). A real Airflow 3.3 stack from ``tests/system/stack.py`` (api-server, scheduler
with LocalExecutor, dag-processor, triggerer; SQLite) parses one DAG file with two DAGs, identical
except for ``deferrable``. Each run triggers one DAG over REST and waits for success; runs of the
two modes alternate. The operator's default poll schedule is used in both modes.

How busy time is measured (two independent ways):

1. **Operator time** (instrumented): the DAG file subclasses ``OpenRouterVideoOperator`` and writes
   one JSON line per event to a file -- ``time.time()`` and ``time.process_time()`` at the start
   and end of ``execute`` (the end is taken in a ``finally``, so it includes raising
   ``TaskDeferred``) and of ``execute_complete``, plus the time spent in ``_download``. Busy time
   = sum over the worker segments of (end - start).
2. **Task-process time** (from the task log file under ``AIRFLOW_HOME/logs/dag_id=.../attempt=1.log``,
   which both segments of a deferred try append to): the log's lines are split into segments at
   gaps longer than 5 s (the deferral); busy time = sum over segments of (last line - first line).
   This includes what the task runner does around the operator (startup messages, DAG-file parse,
   XCom/state API calls) but not the process fork before its first log line.

The figure that matters for the target is deferrable busy time minus the download time, <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import Emulator, machine_line, median, table, wait_quiet
from tests.system.stack import AirflowStack

DAG_IDS = {True: "slot_time_deferrable", False: "slot_time_blocking"}

DAG_SOURCE = '''
"""Benchmark DAGs (airflow dag): one task each, deferrable vs not, instrumented for timing."""
from __future__ import annotations

import json
import os
import time

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

TIMING_FILE = os.environ["ORVIDEO_TIMING_FILE"]


def _note(context, event, **extra):
    import psutil

    ti = context["ti"]
    record = {
        "event": event,
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "try_number": ti.try_number,
        "pid": os.getpid(),
        "wall": time.time(),
        "cpu": time.process_time(),
        "process_created": psutil.Process().create_time(),
        **extra,
    }
    with open(TIMING_FILE, "a") as out:
        out.write(json.dumps(record) + "\\n")


class TimedOpenRouterVideoOperator(OpenRouterVideoOperator):
    def execute(self, context):
        _note(context, "execute_start")
        outcome = "returned"
        try:
            return super().execute(context)
        except BaseException as error:
            outcome = type(error).__name__
            raise
        finally:
            _note(context, "execute_end", outcome=outcome)

    def execute_complete(self, context, event=None):
        _note(context, "execute_complete_start")
        outcome = "returned"
        try:
            return super().execute_complete(context, event)
        except BaseException as error:
            outcome = type(error).__name__
            raise
        finally:
            _note(context, "execute_complete_end", outcome=outcome)

    def _download(self, context, job_id, *args, **kwargs):
        t0, c0 = time.time(), time.process_time()
        try:
            return super()._download(context, job_id, *args, **kwargs)
        finally:
            _note(context, "download", seconds=time.time() - t0, cpu_seconds=time.process_time() - c0)


for dag_id, deferrable in (("slot_time_deferrable", True), ("slot_time_blocking", False)):
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
        TimedOpenRouterVideoOperator(
            task_id="render",
            prompt="A red kite over a green valley, {{ run_id }}",
            model="google/veo-3.1",
            duration=4,
            output_path=os.environ["ORVIDEO_OUTPUT_DIR"] + "/{{ dag.dag_id }}-{{ dag_run.run_after | ts_nodash }}.mp4",
            deferrable=deferrable,
        )
'''


def _log_segments(path: Path) -> list[tuple[float, float, int]]:
    """Worker segments of a task log file: [(first line, last line, lines), ...] in epoch seconds.

    Every run of the task process starts its part of the log with a ``::group::Pre Execute`` line
    (both segments of a deferred try append to the same ``attempt=N.log``), so a new segment starts
    at each such line.
    """
    segments: list[tuple[float, float, int]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        stamp = record.get("timestamp") if isinstance(record, dict) else None
        if not isinstance(stamp, str):
            continue
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        if record.get("event") == "::group::Pre Execute" or not segments:
            segments.append((when, when, 1))
        else:
            first, _, n = segments[-1]
            segments[-1] = (first, when, n + 1)
    return segments


def _operator_busy(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Busy wall and CPU time per worker segment from the instrumented events of one run."""
    by_event: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_event.setdefault(event["event"], []).append(event)
    segments = []
    for start_name, end_name in (
        ("execute_start", "execute_end"),
        ("execute_complete_start", "execute_complete_end"),
    ):
        for start, end in zip(by_event.get(start_name, []), by_event.get(end_name, []), strict=False):
            segments.append(
                {
                    "what": start_name.removesuffix("_start"),
                    "wall": end["wall"] - start["wall"],
                    "cpu": end["cpu"] - start["cpu"],
                    "outcome": end.get("outcome"),
                    "start": start["wall"],
                    "end": end["wall"],
                }
            )
    download = sum(e["seconds"] for e in by_event.get("download", []))
    first = min((s["start"] for s in segments), default=0.0)
    last = max((s["end"] for s in segments), default=0.0)
    return {
        "segments": segments,
        "busy": sum(s["wall"] for s in segments),
        "cpu": sum(s["cpu"] for s in segments),
        "download": download,
        "span": last - first,
    }


def run_once(stack: AirflowStack, timing_file: Path, deferrable: bool) -> dict[str, Any]:
    dag_id = DAG_IDS[deferrable]
    t0 = time.time()
    run_id = stack.trigger(dag_id)
    states = stack.wait_for_task_state(dag_id, run_id, "render", {"success"}, timeout=300, interval=0.5)
    return collect(stack, timing_file, deferrable, run_id, states, time.time() - t0)


def collect(
    stack: AirflowStack, timing_file: Path, deferrable: bool, run_id: str, states: list[str], elapsed: float
) -> dict[str, Any]:
    dag_id = DAG_IDS[deferrable]
    ti = stack.task_instance(dag_id, run_id, "render") or {}
    events = [
        e
        for e in (json.loads(line) for line in timing_file.read_text().splitlines() if line.strip())
        if e["dag_id"] == dag_id and e["run_id"] == run_id
    ]
    op = _operator_busy(events)
    logs = sorted(
        path
        for path in stack.airflow_home.glob(
            f"logs/dag_id={dag_id}/run_id={run_id}/task_id=render/attempt=*.log"
        )
        if re.fullmatch(r"attempt=\d+\.log", path.name)  # not the trigger's attempt=1.log.trigger.N.log
    )
    segs = [seg for path in logs for seg in _log_segments(path)]
    log_busy = sum(last - first for first, last, _ in segs)
    # Task process created (fork) -> last log line of its segment: adds the process start-up that
    # happens before the first log line. Segments and processes are matched in order.
    created = sorted({e["process_created"] for e in events if e["event"].endswith("_start")})
    proc_busy = (
        sum(last - born for born, (_, last, _) in zip(created, segs, strict=True))
        if len(created) == len(segs)
        else None
    )
    ti_start = ti.get("start_date")
    ti_end = ti.get("end_date")
    ti_seconds = (
        datetime.fromisoformat(ti_end.replace("Z", "+00:00")).timestamp()
        - datetime.fromisoformat(ti_start.replace("Z", "+00:00")).timestamp()
        if ti_start and ti_end
        else None
    )
    return {
        "deferrable": deferrable,
        "run_id": run_id,
        "states": states,
        "trigger_to_success": elapsed,
        "operator": op,
        "log_files": [str(p) for p in logs],
        "log_segments": [{"seconds": last - first, "lines": n} for first, last, n in segs],
        "log_busy": log_busy,
        "process_busy": proc_busy,
        "ti_last_segment": ti_seconds,
        "ti_try_number": ti.get("try_number"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3, help="runs of each mode")
    parser.add_argument("--pending", type=float, default=10.0)
    parser.add_argument("--in-progress", type=float, default=50.0)
    parser.add_argument("--keep", action="store_true", help="keep the stack's home directory")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    args = parser.parse_args()

    quiet, waited = (True, 0.0) if args.no_wait else wait_quiet()
    print(f"# worker slot time -- {machine_line()}")
    print(f"# quiet machine: {quiet} (waited {waited:.0f} s)")
    base = Path(tempfile.mkdtemp(prefix="orvideo-slot-bench-"))
    home, dags, videos = base / "stack", base / "dags", base / "videos"
    dags.mkdir()
    videos.mkdir()
    timing_file = base / "timing.jsonl"
    timing_file.touch()
    (dags / "slot_time_dags.py").write_text(DAG_SOURCE, encoding="utf-8")
    results: list[dict[str, Any]] = []
    warmups: list[dict[str, Any]] = []
    try:
        with Emulator() as emulator:
            emulator.set_job_defaults(pending_seconds=args.pending, in_progress_seconds=args.in_progress)
            connection = {"conn_type": "openrouter", "host": emulator.base_url, "password": emulator.api_key}
            env = {
                "AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(connection),
                "ORVIDEO_OUTPUT_DIR": str(videos),
                "ORVIDEO_TIMING_FILE": str(timing_file),
            }
            stack = AirflowStack(home=home, dags_folder=dags, env=env)
            with stack:
                for dag_id in DAG_IDS.values():
                    stack.wait_for_dag(dag_id, timeout=120)
                # Warm-up, not counted: one run of each DAG at once, with a job that completes at once.
                # The first task process of a fresh stack pays a few seconds of one-off start-up
                # (imports, bundle set-up) that later ones do not.
                emulator.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
                t0 = time.time()
                warm_runs = {deferrable: stack.trigger(DAG_IDS[deferrable]) for deferrable in (True, False)}
                for deferrable, run_id in warm_runs.items():
                    states = stack.wait_for_task_state(
                        DAG_IDS[deferrable], run_id, "render", {"success"}, timeout=300
                    )
                    warm = collect(stack, timing_file, deferrable, run_id, states, time.time() - t0)
                    print(
                        f"  warm-up deferrable={deferrable!s:<5} (not counted): operator busy "
                        f"{warm['operator']['busy']:.2f} s, task-log busy {warm['log_busy']:.2f} s, "
                        f"process busy {warm['process_busy']}",
                        file=sys.stderr,
                        flush=True,
                    )
                    warmups.append(warm)
                emulator.set_job_defaults(pending_seconds=args.pending, in_progress_seconds=args.in_progress)
                for rep in range(args.reps):
                    for deferrable in (True, False):
                        result = run_once(stack, timing_file, deferrable)
                        results.append(result)
                        op = result["operator"]
                        print(
                            f"  rep {rep + 1} deferrable={deferrable!s:<5} states={result['states']} "
                            f"operator busy {op['busy']:.2f} s (cpu {op['cpu']:.2f}, download {op['download']:.2f}) "
                            f"log busy {result['log_busy']:.2f} s process busy {result['process_busy']} "
                            f"segments {result['log_segments']} "
                            f"trigger->success {result['trigger_to_success']:.1f} s",
                            file=sys.stderr,
                            flush=True,
                        )
    finally:
        if args.keep:
            print(f"# kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)

    rows = []
    summary: dict[bool, dict[str, float]] = {}
    for deferrable in (True, False):
        runs = [r for r in results if r["deferrable"] is deferrable]
        op_busy = [r["operator"]["busy"] for r in runs]
        op_cpu = [r["operator"]["cpu"] for r in runs]
        download = [r["operator"]["download"] for r in runs]
        log_busy = [r["log_busy"] for r in runs]
        proc_busy = [r["process_busy"] for r in runs if r["process_busy"] is not None]
        segs = [len(r["log_segments"]) for r in runs]
        per_segment = " + ".join(f"{s['wall']:.2f}" for s in runs[len(runs) // 2]["operator"]["segments"])
        summary[deferrable] = {
            "op": median(op_busy),
            "log": median(log_busy),
            "proc": median(proc_busy) if proc_busy else float("nan"),
            "download": median(download),
        }
        rows.append(
            [
                "True" if deferrable else "False",
                f"{median(op_busy):.2f} ({', '.join(f'{x:.2f}' for x in op_busy)})",
                per_segment,
                f"{median(op_cpu):.2f}",
                f"{median(download):.3f}",
                f"{median([b - d for b, d in zip(op_busy, download, strict=True)]):.2f}",
                f"{median(log_busy):.2f} ({', '.join(f'{x:.2f}' for x in log_busy)})",
                f"{summary[deferrable]['proc']:.2f} ({', '.join(f'{x:.2f}' for x in proc_busy)})",
                f"{median(segs):.0f}",
                f"{median([r['trigger_to_success'] for r in runs]):.1f}",
            ]
        )
    print()
    print(
        table(
            [
                "deferrable",
                "operator busy s: median (each run)",
                "per segment s (median run)",
                "operator CPU s",
                "download s",
                "operator busy - download s",
                "task-log busy s: median (each run)",
                "task-process busy s (fork to last line)",
                "worker segments",
                "trigger->success s",
            ],
            rows,
        )
    )
    d, b = summary[True], summary[False]
    print()
    print(
        table(
            ["ratio deferrable / blocking", "value"],
            [
                ["operator busy time", f"{d['op'] / b['op']:.3f} ({d['op']:.2f} s / {b['op']:.2f} s)"],
                ["task-log busy time", f"{d['log'] / b['log']:.3f} ({d['log']:.2f} s / {b['log']:.2f} s)"],
                [
                    "task-process busy time",
                    f"{d['proc'] / b['proc']:.3f} ({d['proc']:.2f} s / {b['proc']:.2f} s)",
                ],
            ],
        )
    )
    print(
        f"\n# {args.reps} runs per mode; job = pending {args.pending:g} s + in_progress {args.in_progress:g} s"
    )
    print("# raw: " + json.dumps({"runs": results, "warmups": warmups}))


if __name__ == "__main__":
    main()
