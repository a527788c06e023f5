"""Benchmark 4: what the operator costs a DAG file at parse time.

    python benchmarks/dag_parse_cost.py              # 20 import runs per case, 5 parse runs per case
    python benchmarks/dag_parse_cost.py --import-reps 40 --parse-reps 9

Part A, import cost (fresh interpreters, cases interleaved so drift hits all alike):

* ``python -c "import airflow.sdk"`` vs ``python -c "import airflow.sdk; import
  airflow_provider_orvideo.operators.openrouter_video"`` -- whole-process wall time, median of N;
* the same two imports timed *inside* one fresh interpreter with ``time.perf_counter`` (the
  operator import timed on its own, after ``import airflow.sdk``) -- less noise than process wall
  time, no interpreter start-up;
* the same against the baseline a real DAG file pays anyway, ``from airflow.sdk import DAG,
  BaseOperator`` (``airflow.sdk`` resolves its names lazily, so ``import airflow.sdk`` alone does not
  load ``BaseOperator``);
* ``python -X importtime``: the modules the operator module pulls in beyond the baseline, heaviest
  first.

Part B, a DAG file with 1,000 ``OpenRouterVideoOperator`` tasks (written to a temp dir), parsed
in fresh interpreters with

* every outgoing connection made impossible and recorded: ``socket.socket.connect``/``connect_ex``,
  ``socket.create_connection`` and ``socket.getaddrinfo`` are replaced by functions that log the
  attempt and raise, and ``AIRFLOW_CONN_OPENROUTER_DEFAULT`` points at a closed local port;
* timings: executing the DAG file with the imports already warm (= building the DAG and the 1,000
  operators), Airflow's ``DagBag`` parse of the file (what ``airflow dags report`` shows; imports
  warm), and, for information, ``DagSerialization.to_dict`` (what the dag-processor does next);
* the same DAG file with 1,000 ``EmptyOperator`` tasks as a reference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import PYTHON, REPO, machine_line, median, table, wait_quiet

OPERATOR_MODULE = "airflow_provider_orvideo.operators.openrouter_video"

IMPORT_CASES = {
    "import airflow.sdk": "import airflow.sdk",
    "from airflow.sdk import DAG, BaseOperator": "from airflow.sdk import DAG, BaseOperator",
    f"import airflow.sdk; import {OPERATOR_MODULE}": f"import airflow.sdk; import {OPERATOR_MODULE}",
}

INPROC_TEMPLATE = """
import time, json
t0 = time.perf_counter()
{baseline}
t1 = time.perf_counter()
import {module}
t2 = time.perf_counter()
print(json.dumps({{"baseline": t1 - t0, "operator": t2 - t1}}))
"""

DAG_TEMPLATE = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG

{import_line}

with DAG(
    dag_id="{dag_id}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    for i in range({count}):
        {constructor}
"""

OPERATOR_DAG = DAG_TEMPLATE.format(
    import_line=f"from {OPERATOR_MODULE} import OpenRouterVideoOperator",
    dag_id="orvideo_parse_cost",
    count=1000,
    constructor=(
        'OpenRouterVideoOperator(task_id=f"render_{i}", prompt=f"A red kite over a valley, take {i}", '
        'model="google/veo-3.1", duration=4, resolution="720p", '
        'output_path=f"/tmp/orvideo-parse-cost/{i}.mp4", poll_interval=15)'
    ),
)
EMPTY_DAG = DAG_TEMPLATE.format(
    import_line="from airflow.providers.standard.operators.empty import EmptyOperator",
    dag_id="empty_parse_cost",
    count=1000,
    constructor='EmptyOperator(task_id=f"render_{i}")',
)

PARSE_CHILD = r"""
import json, os, socket, sys, time

attempts = []

def _refuse(kind):
    def refuse(*args, **kwargs):
        attempts.append(f"{kind}{args[1:] if kind.startswith('socket.connect') else args[:2]}")
        raise OSError(f"benchmark: network disabled ({kind})")
    return refuse

socket.socket.connect = _refuse("socket.connect")
socket.socket.connect_ex = _refuse("socket.connect_ex")
socket.create_connection = _refuse("socket.create_connection")
socket.getaddrinfo = _refuse("socket.getaddrinfo")

path, warm_import = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
import airflow.sdk
from airflow.sdk import DAG, BaseOperator
exec(warm_import)
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
imports = time.perf_counter() - t0

import runpy
t1 = time.perf_counter()
namespace = runpy.run_path(path, run_name="bench_dag_module")
module_exec = time.perf_counter() - t1
dags = [v for v in namespace.values() if isinstance(v, DAG)]
tasks = sum(len(d.tasks) for d in dags) if dags else None

t2 = time.perf_counter()
bag = DagBag(dag_folder=path, safe_mode=False)
dagbag = time.perf_counter() - t2
(dag,) = bag.dags.values()

t3 = time.perf_counter()
DagSerialization.to_dict(dag)
serialize = time.perf_counter() - t3

# Positive control: the guard does see a real attempt (the hook's first API call), so "0 attempts"
# above means none was made, not that the guard missed it.
during_parse = list(attempts)
guard_saw_hook_call = None
if "openrouter" in warm_import:
    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
    try:
        OpenRouterVideoHook().list_models(max_age=0)
    except Exception:
        pass
    guard_saw_hook_call = len(attempts) > len(during_parse)
attempts = during_parse

print(json.dumps({
    "guard_saw_hook_call": guard_saw_hook_call,
    "imports": imports, "module_exec": module_exec, "dagbag": dagbag, "serialize": serialize,
    "tasks": len(dag.tasks), "module_tasks": tasks, "import_errors": bag.import_errors,
    "network_attempts": attempts,
}))
"""


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when this returns


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(home / "dags")
    env["AIRFLOW_CONN_OPENROUTER_DEFAULT"] = json.dumps(
        {
            "conn_type": "openrouter",
            "host": f"http://127.0.0.1:{_closed_port()}/api/v1",
            "password": "parse-cost",
        }
    )
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{args} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out


def import_costs(env: dict[str, str], reps: int) -> tuple[list[list[str]], dict[str, Any]]:
    wall: dict[str, list[float]] = {name: [] for name in IMPORT_CASES}
    inproc: dict[str, dict[str, list[float]]] = {
        base: {"baseline": [], "operator": []}
        for base in ("import airflow.sdk", "from airflow.sdk import DAG, BaseOperator")
    }
    for code in IMPORT_CASES.values():  # warm the .pyc files and the page cache
        _run([PYTHON, "-c", code], env)
    for _ in range(reps):
        for name, code in IMPORT_CASES.items():
            t = time.perf_counter()
            _run([PYTHON, "-c", code], env)
            wall[name].append(time.perf_counter() - t)
        for base in inproc:
            out = _run([PYTHON, "-c", INPROC_TEMPLATE.format(baseline=base, module=OPERATOR_MODULE)], env)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            for key in ("baseline", "operator"):
                inproc[base][key].append(result[key])
    ms = 1000.0
    sdk = median(wall["import airflow.sdk"]) * ms
    both = median(wall[f"import airflow.sdk; import {OPERATOR_MODULE}"]) * ms
    dagbase = median(wall["from airflow.sdk import DAG, BaseOperator"]) * ms
    rows = [
        ["process wall", "python -c 'import airflow.sdk'", f"{sdk:.0f}", ""],
        ["process wall", "python -c 'from airflow.sdk import DAG, BaseOperator'", f"{dagbase:.0f}", ""],
        ["process wall", "python -c 'import airflow.sdk; import <operator module>'", f"{both:.0f}", ""],
        ["process wall", "difference vs `import airflow.sdk`", f"{both - sdk:+.0f}", "<= 30"],
        [
            "process wall",
            "difference vs `from airflow.sdk import DAG, BaseOperator`",
            f"{both - dagbase:+.0f}",
            "",
        ],
    ]
    for base, label in (
        ("import airflow.sdk", "after `import airflow.sdk`"),
        ("from airflow.sdk import DAG, BaseOperator", "after `from airflow.sdk import DAG, BaseOperator`"),
    ):
        b = median(inproc[base]["baseline"]) * ms
        o = median(inproc[base]["operator"]) * ms
        rows.append(["in-process", f"`{base}` itself", f"{b:.0f}", ""])
        rows.append(
            [
                "in-process",
                f"`import <operator module>` {label}",
                f"{o:.0f}",
                "<= 30" if base == "import airflow.sdk" else "",
            ]
        )
    raw = {"wall": wall, "inproc": inproc}
    return rows, raw


_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def importtime_beyond(
    env: dict[str, str], baseline: str, reps: int = 5
) -> list[tuple[str, float, float, int]]:
    """Modules imported by the operator module beyond ``baseline``: (name, self ms, cumulative ms, depth),
    medians over ``reps`` runs."""
    per_module: dict[str, dict[str, list[float]]] = {}
    depth_of: dict[str, int] = {}
    for _ in range(reps):
        out = _run([PYTHON, "-X", "importtime", "-c", f"{baseline}; import {OPERATOR_MODULE}"], env)
        lines = out.stderr.splitlines()
        # -X importtime prints a module when its import finishes: everything after the last line
        # at depth 0 that belongs to the baseline was imported by the operator module.
        base_top = baseline.split()[1].split(";")[0]  # "airflow.sdk"
        start = 0
        for i, line in enumerate(lines):
            m = _IMPORTTIME.search(line)
            if m and len(m[3]) == 1 and m[4].strip() == base_top:
                start = i + 1
        if baseline.startswith("from"):
            # `from airflow.sdk import DAG, BaseOperator` loads its names after the package line;
            # run the baseline alone and drop every module it loads.
            alone = _run([PYTHON, "-X", "importtime", "-c", baseline], env).stderr
            known = {m[4] for m in map(_IMPORTTIME.search, alone.splitlines()) if m}
            start = 0
        else:
            known = set()
        for line in lines[start:]:
            m = _IMPORTTIME.search(line)
            if not m or m[4] in known:
                continue
            name = m[4]
            entry = per_module.setdefault(name, {"self": [], "cum": []})
            entry["self"].append(int(m[1]) / 1000)
            entry["cum"].append(int(m[2]) / 1000)
            depth_of[name] = (len(m[3]) - 1) // 2
    return [(n, median(v["self"]), median(v["cum"]), depth_of[n]) for n, v in per_module.items()]


def parse_costs(env: dict[str, str], workdir: Path, reps: int) -> tuple[list[list[str]], dict[str, Any]]:
    cases = {
        "1,000 x OpenRouterVideoOperator": (OPERATOR_DAG, f"import {OPERATOR_MODULE}"),
        "1,000 x EmptyOperator (reference)": (
            EMPTY_DAG,
            "import airflow.providers.standard.operators.empty",
        ),
    }
    raw: dict[str, list[dict[str, Any]]] = {}
    for name, (source, _warm) in cases.items():
        path = workdir / f"{re.sub(r'[^a-z]+', '_', name.lower()).strip('_')}.py"
        path.write_text(source)
        raw[name] = []
    for _ in range(reps):
        for name, (_source, warm) in cases.items():
            path = workdir / f"{re.sub(r'[^a-z]+', '_', name.lower()).strip('_')}.py"
            out = _run([PYTHON, "-c", PARSE_CHILD, str(path), warm], env)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if result["import_errors"]:
                raise RuntimeError(f"{name}: import errors {result['import_errors']}")
            if result["tasks"] != 1000 or result["module_tasks"] != 1000:
                raise RuntimeError(f"{name}: {result['tasks']} tasks parsed, expected 1000")
            raw[name].append(result)
    rows = []
    for name, runs in raw.items():
        attempts = sorted({a for r in runs for a in r["network_attempts"]})
        rows.append(
            [
                name,
                f"{median([r['module_exec'] for r in runs]):.3f}",
                f"{median([r['dagbag'] for r in runs]):.3f}",
                f"{median([r['serialize'] for r in runs]):.3f}",
                f"{median([r['imports'] for r in runs]):.3f}",
                str(len(attempts)) + (f" {attempts[:3]}" if attempts else ""),
                {None: "n/a", True: "yes", False: "NO"}[runs[0]["guard_saw_hook_call"]],
            ]
        )
    return rows, raw


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--import-reps", type=int, default=20)
    parser.add_argument("--parse-reps", type=int, default=5)
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    args = parser.parse_args()

    quiet, waited = (True, 0.0) if args.no_wait else wait_quiet()
    print(f"# DAG parse cost -- {machine_line()}")
    print(f"# quiet machine: {quiet} (waited {waited:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="orvideo-parse-cost-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        env = _env(home)
        rows, import_raw = import_costs(env, args.import_reps)
        print(f"\n## A. Import cost (ms, median of {args.import_reps} fresh interpreters)\n")
        print(table(["how", "what", "ms (median)", "target"], rows))

        for baseline in ("import airflow.sdk", "from airflow.sdk import DAG, BaseOperator"):
            modules = importtime_beyond(env, baseline)
            total = sum(s for _, s, _, _ in modules)
            top_cum = sorted((m for m in modules if m[3] == 0), key=lambda m: -m[2])[:12]
            top_self = sorted(modules, key=lambda m: -m[1])[:12]
            print(
                f"\n### -X importtime: modules the operator module imports beyond `{baseline}` "
                f"({len(modules)} modules, {total:.0f} ms of self time, median of 5 runs)\n"
            )
            print("Top-level imports (depth 0 under the operator import), by cumulative time:\n")
            print(
                table(
                    ["module", "cumulative ms", "self ms"],
                    [[m, f"{c:.1f}", f"{s:.1f}"] for m, s, c, _ in top_cum],
                )
            )
            print("\nHeaviest single modules, by self time:\n")
            print(
                table(
                    ["module", "self ms", "cumulative ms"],
                    [[m, f"{s:.1f}", f"{c:.1f}"] for m, s, c, _ in top_self],
                )
            )

        prow, parse_raw = parse_costs(env, home / "dags", args.parse_reps)
        print(
            f"\n## B. One DAG file with 1,000 tasks (seconds, median of {args.parse_reps} fresh interpreters)\n"
        )
        print(
            table(
                [
                    "DAG file",
                    "module exec, imports warm (s)",
                    "DagBag parse, imports warm (s)",
                    "DagSerialization.to_dict (s)",
                    "imports (s)",
                    "network attempts during parse",
                    "guard caught a real hook call (control)",
                ],
                prow,
            )
        )
        print("\n# raw: " + json.dumps({"imports": import_raw, "parse": parse_raw}))


if __name__ == "__main__":
    main()
