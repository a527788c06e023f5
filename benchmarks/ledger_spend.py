"""The spend ledger's reports behind the video pages (issue 25): the gallery's spend chart and
"Paid, not kept", with 100,000 jobs booked.

    python benchmarks/ledger_spend.py                    # SQLite, and PostgreSQL when initdb is here
    python benchmarks/ledger_spend.py --rows 100000 --runs 20 --no-postgres --no-pages --no-wait

Set-up: a ledger (``airflow_provider_orvideo/_internal/ledger.py``) filled with ``--rows`` jobs
over the last 30 UTC days and 50 DAGs on two connections, written straight into its table the way
the ledger's own methods leave them (bulk inserts: booking 100,000 jobs one transaction at a time
measures the disk, not the reports): 2 % released (no job), 5 % still rendering (submitted: their
estimate pending), 5 % failed without a cost, 3 % completed without a cost yet (pending), the rest
completed with a cost ($0.40-$3.20), of which 5 % not kept (a reason recorded) and 2 % superseded.
Once in a SQLite file (the default ledger: WAL, as ``Ledger.at`` opens it, checkpointed after the
fill; no ``ANALYZE``, as deployed), and once in a private PostgreSQL cluster (``tests/distributed/services.py``; ``ANALYZE``
after the fill, as autovacuum would do) when its binaries are on this machine.

Timed, ``--runs`` times each after one warm-up, median and p95 (milliseconds):

* ``Ledger.spend`` over the chart's 30-day window, every DAG (the gallery), and one DAG (a DAG's
  Videos tab; the query's ``dag_id``);
* ``Ledger.unkept(limit=100)`` (the "Paid, not kept" page of a user who may read every DAG);
* unless ``--no-pages``: the pages' whole answer, in-process (the plugin's app under Starlette's
  test client, in a migrated Airflow home with the 50 DAGs registered, Airflow's simple auth
  manager and real JWTs): ``GET /orvideo/gallery`` and ``GET /orvideo/unkept`` as an admin (one
  spend query for every DAG), and as a viewer who may read 5 of the 50 DAGs
  (``tests/system/deny_auth_manager.py``: one spend query per DAG; their unkept jobs searched for
  among the ledger's newest 1,000, in two queries). The gallery's own XCom query runs on an empty
  table (no saved videos): the figures are the ledger's share of the page plus auth and HTML.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine_line, table, wait_quiet

DAYS = 30
DAGS = 50
CONNECTIONS = ("openrouter_default", "openrouter_team_b")
MODELS = ("google/veo-3.1", "openai/sora-2", "bytedance/seedance-1-pro")
VIEWER_DAGS = 5
"""DAGs the benchmark's viewer may read (the other 45 are denied to them)."""


def dag_ids() -> list[str]:
    return [f"bench_dag_{number:02d}" for number in range(DAGS)]


# ------------------------------------------------------------------------------------ filling


def entries(count: int, now: float, seed: int = 25) -> Iterator[dict[str, Any]]:
    """``count`` ledger rows over the last :data:`DAYS` UTC days, as the ledger's methods leave them."""
    from airflow_provider_orvideo._internal.ledger import utc_day

    rng = random.Random(seed)
    midnight = datetime.fromtimestamp(now, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    dags = dag_ids()
    for number in range(count):
        day_start = (midnight - timedelta(days=rng.randrange(DAYS))).timestamp()
        ended = day_start + rng.uniform(0, min(86_399.0, now - day_start))  # today: before now
        reserved = ended - rng.uniform(60, 540)
        estimate = rng.choice((0.4, 0.8, 1.6, 3.2))
        roll = rng.random()
        row: dict[str, Any] = {
            "entry_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "job_id": f"gen-vid-bench-{number}",
            "generation_id": None,
            "conn_id": CONNECTIONS[number % 2],
            "dag_id": dags[rng.randrange(DAGS)],
            "run_id": f"scheduled__{utc_day(day_start)}T00:00:00+00:00",
            "task_id": "render",
            "map_index": number % 20,
            "try_number": 1,
            "model": MODELS[number % 3],
            "fingerprint": None,
            "estimate_usd": estimate,
            "cost_usd": None,
            "held_usd": 0.0,
            "status": "completed",
            "reserved_at": reserved,
            "lease_until": None,
            "ended_at": ended,
            "billed_day": utc_day(ended),
            "kept": None,
            "unkept_reason": None,
            "superseded_by": None,
            "updated_at": ended,
        }
        if roll < 0.02:
            row.update(status="released", job_id=None, ended_at=None, billed_day=utc_day(reserved))
        elif roll < 0.07:
            row.update(status="submitted", held_usd=estimate, ended_at=None, billed_day=utc_day(reserved))
        elif roll < 0.12:
            row.update(status="failed", generation_id=f"gen-{number}")
        elif roll < 0.15:
            row.update(
                held_usd=estimate, generation_id=f"gen-{number}", kept=json.dumps([f"/v/{number}.mp4"])
            )
        else:
            cost = round(estimate * rng.uniform(0.9, 1.1), 4)
            row.update(cost_usd=cost, held_usd=cost, generation_id=f"gen-{number}")
            kept_roll = rng.random()
            if kept_roll < 0.05:
                row["unkept_reason"] = "the task failed after the job ended (disk full)"
            elif kept_roll < 0.07:
                row["superseded_by"] = f"gen-vid-bench-{number}-next"
            else:
                row["kept"] = json.dumps([f"/v/{number}.mp4"])
        yield row


def fill(url: str, count: int, now: float) -> float:
    """Create the ledger at ``url`` and insert ``count`` rows; seconds taken."""
    import sqlalchemy as sa

    from airflow_provider_orvideo._internal.ledger import Ledger
    from airflow_provider_orvideo._internal.ledger import entries as table_

    ledger = Ledger.at(url)
    ledger.ensure_schema()
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    with ledger.engine.begin() as connection:
        for row in entries(count, now):
            batch.append(row)
            if len(batch) == 5_000:
                connection.execute(sa.insert(table_), batch)
                batch = []
        if batch:
            connection.execute(sa.insert(table_), batch)
    if ledger.engine.dialect.name == "postgresql":
        with ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE orvideo_ledger_entries")
    else:  # one big transaction left it all in the WAL; bookings one by one keep it checkpointed
        raw = ledger.engine.raw_connection()  # outside a transaction (the engine's begins are IMMEDIATE)
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    ledger.engine.dispose()
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------ timing


def timed(function: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """Median and p95 in milliseconds of ``runs`` calls after one warm-up, and the last result."""
    result = function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[18] if len(samples) > 1 else samples[0]
    return statistics.median(samples), p95, result


def time_queries(url: str, runs: int, now: float) -> list[list[Any]]:
    from airflow_provider_orvideo._internal.ledger import Ledger
    from airflow_provider_orvideo.plugins._video_views import SPEND_MAX_GROUPS, spend_window

    ledger = Ledger.at(url)
    since, until = spend_window(datetime.fromtimestamp(now, timezone.utc).date())
    rows = []
    for name, call in (
        (
            "spend, 30 days, every DAG",
            lambda: ledger.spend(since_day=since, until_day=until, limit=SPEND_MAX_GROUPS),
        ),
        (
            "spend, 30 days, one DAG",
            lambda: ledger.spend(
                since_day=since, until_day=until, dag_id="bench_dag_07", limit=SPEND_MAX_GROUPS
            ),
        ),
        ("unkept(limit=100)", lambda: ledger.unkept(limit=100)),
    ):
        p50, p95, result = timed(call, runs)
        rows.append([name, f"{len(result):,}", f"{p50:.1f}", f"{p95:.1f}"])
    ledger.engine.dispose()
    return rows


# ------------------------------------------------------------------------------------ pages


def serve_pages(spec_path: str) -> None:
    """In a migrated Airflow home (``--serve-pages``): time the pages' answers, print JSON."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    from airflow_provider_orvideo.plugins.openrouter_video import URL_PREFIX, build_plugin_app
    from tests.plugins.spend_pages_app import register_dags, token_of

    spec = json.loads(Path(spec_path).read_text())
    register_dags(dag_ids())
    app = Starlette(routes=[Mount(URL_PREFIX, app=build_plugin_app())])
    results = []
    with TestClient(app) as client:
        for user in ("admin", "viewer"):
            headers = {"Authorization": f"Bearer {token_of(user)}"}
            for path in ("/orvideo/gallery", "/orvideo/unkept"):

                def get(path: str = path, headers: dict[str, str] = headers) -> Any:
                    response = client.get(path, headers=headers)
                    assert response.status_code == 200, (response.status_code, response.text[:2000])
                    assert "Spend unavailable" not in response.text, response.text[:4000]
                    return response

                p50, p95, response = timed(get, spec["runs"])
                rows = response.text.count('class="unkept-job"') if "unkept" in path else None
                bars = response.text.count('class="bar"') if "gallery" in path else None
                results.append(
                    {"user": user, "path": path, "p50": p50, "p95": p95, "rows": rows, "bars": bars}
                )
    Path(spec["out"]).write_text(json.dumps(results))


def time_pages(ledger_env: dict[str, str], runs: int, work: Path) -> list[list[Any]]:
    from tests.adversarial.conftest import airflow_env, migrated_airflow_home

    home = work / f"airflow-{uuid.uuid4().hex[:6]}"
    home.mkdir()
    migrated_airflow_home(home)
    spec = home / "spec.json"
    out = home / "pages.json"
    spec.write_text(json.dumps({"runs": runs, "out": str(out)}))
    denied = ",".join(f"viewer:{dag}" for dag in dag_ids()[VIEWER_DAGS:])
    env = airflow_env(
        home,
        {
            **ledger_env,
            "AIRFLOW__CORE__AUTH_MANAGER": "tests.system.deny_auth_manager.DagDenyingAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
            "ORVIDEO_TEST_DENY": denied,
        },
    )
    run = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--serve-pages", str(spec)],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError((run.stdout + run.stderr)[-6000:])
    return [
        [
            f"GET {result['path']} as {result['user']}",
            f"{result['rows']} rows" if result["rows"] is not None else f"{result['bars']} bars",
            f"{result['p50']:.1f}",
            f"{result['p95']:.1f}",
        ]
        for result in json.loads(out.read_text())
    ]


# ------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-pages", action="store_true")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    parser.add_argument("--serve-pages", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_pages:
        serve_pages(args.serve_pages)
        return

    quiet, waited = (True, 0.0) if args.no_wait else wait_quiet(max_wait=600)
    print(f"machine: {machine_line()} (quiet={quiet}, waited {waited:.0f} s)", flush=True)
    now = time.time()
    headers = ["ledger", "what", "result", "median ms", "p95 ms"]
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="orvideo-ledger-bench-") as folder:
        work = Path(folder)
        path = work / "orvideo_ledger.sqlite"
        seconds = fill(f"sqlite:///{path}", args.rows, now)
        print(f"SQLite: {args.rows:,} rows in {seconds:.1f} s ({path.stat().st_size / 2**20:.1f} MiB)")
        rows += [["SQLite", *row] for row in time_queries(f"sqlite:///{path}", args.runs, now)]
        if not args.no_pages:
            ledger_env = {"AIRFLOW__OPENROUTER__LEDGER_PATH": str(path)}
            rows += [["SQLite", *row] for row in time_pages(ledger_env, args.runs, work)]

        from tests.distributed.services import PrivatePostgres, ServiceError, postgres_bin_dir

        if not args.no_postgres and postgres_bin_dir() is not None:
            try:
                with PrivatePostgres(work / "pg-logs", database="ledger") as postgres:
                    url = postgres.url()
                    seconds = fill(url, args.rows, now)
                    print(f"PostgreSQL: {args.rows:,} rows in {seconds:.1f} s")
                    rows += [["PostgreSQL", *row] for row in time_queries(url, args.runs, now)]
                    if not args.no_pages:
                        ledger_env = {
                            "AIRFLOW__OPENROUTER__LEDGER_CONN_ID": "bench_ledger",
                            "AIRFLOW_CONN_BENCH_LEDGER": f"postgresql://airflow@127.0.0.1:{postgres.port}/ledger",
                        }
                        rows += [["PostgreSQL", *row] for row in time_pages(ledger_env, args.runs, work)]
            except ServiceError as error:
                print(f"PostgreSQL skipped: {error}")
        elif not args.no_postgres:
            print("PostgreSQL skipped: no initdb/postgres on this machine")
    print(table(headers, rows))


if __name__ == "__main__":
    main()
