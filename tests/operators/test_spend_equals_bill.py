"""Spend equals the bill (issue 25, item 2): what the spend ledger says was spent, per UTC day and
DAG, is what OpenRouter (the emulator's own billing) charged, to the cent, whatever the tasks went
through.

Real Airflow runs (``dag.test()`` of a DAG file, in a migrated Airflow home) against the emulator,
booking into this test's own ledger (``[openrouter] ledger_path``, shared with the DAG process),
drive every way a job can end up billed:

* ``spend_endings``: a plain completed job (deferred, polled by the trigger); a failed job that
  is billed (some upstream providers bill failed renders); a failed job that is not;
* ``spend_retries``: a job superseded by a changed prompt (try 1's poll is refused after its
  submit, the job completes meanwhile, try 2 renders another prompt: both are billed); a job
  re-attached to (try 1's poll is refused, try 2 finds the same job still rendering and waits
  for it: billed once); a completed job whose video is never saved (every download fails and no
  retry is left).

Setup tasks in the DAGs script the emulator right before the task they are for (the tasks run
one after another), so each scenario's faults reach that task only.
"""

from __future__ import annotations

import os
import re
import sqlite3
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from airflow_provider_orvideo._internal.ledger import configured_ledger, utc_day
from tests.adversarial.conftest import airflow_home, run_dag_file  # noqa: F401 - a fixture
from tests.helpers import plain_text

DAG = textwrap.dedent(
    """
    import datetime, os
    from airflow.sdk import DAG, task
    from orvideo_emulator import EmulatorControl
    from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

    OUT = os.environ["OUT"]
    START = datetime.datetime(2025, 1, 1)
    FAST = {"poll_interval": 0.2, "initial_poll_delays": [0.2], "model": "google/veo-3.1", "duration": 4}


    def control():
        return EmulatorControl(os.environ["EMULATOR"])


    def render(task_id, **kwargs):
        arguments = {"prompt": f"a lighthouse for {task_id}", "output_path": f"{OUT}/{task_id}.mp4", **FAST}
        return OpenRouterVideoOperator(task_id=task_id, trigger_rule="all_done", **{**arguments, **kwargs})


    with DAG("spend_endings", schedule=None, start_date=START) as endings:

        @task(trigger_rule="all_done")
        def bill_failures():
            control().jobs_end_as("failed", cost=0.2, error="Upstream provider failed (billed)")

        @task(trigger_rule="all_done")
        def free_failures():
            control().jobs_end_as("failed")

        @task(trigger_rule="all_done")
        def complete_again():
            control().jobs_end_as("completed")

        (
            render("plain")
            >> bill_failures()
            >> render("failed_billed", retries=0)
            >> free_failures()
            >> render("failed_free", retries=0)
            >> complete_again()
        )


    with DAG("spend_retries", schedule=None, start_date=START) as retries:

        @task(trigger_rule="all_done")
        def refuse_the_first_poll():
            # Try 1 submits, then its first poll is refused (a final error ends the try); the job
            # renders on and completes before try 2 looks at it.
            control().fail_requests("poll", 400, times=1, message="Refused for this test")

        @task(trigger_rule="all_done")
        def refuse_a_poll_of_a_slow_job():
            # As above, but the job renders on while try 2 looks: try 2 waits for it. 8 s: try 2
            # starts within a few seconds even on a loaded two-core machine.
            control().jobs_take(8.0, pending_share=0.1)
            control().fail_requests("poll", 400, times=1, message="Refused for this test")

        @task(trigger_rule="all_done")
        def fail_every_download():
            # The hook's 5 attempts, each answered at once; no retry of the task is left.
            control().jobs_take(0.8, pending_share=0.25)
            control().add_fault("content", "status", status=503, retry_after="0", times=5)

        (
            refuse_the_first_poll()
            >> render(
                "superseded",
                prompt="a fox at dusk, take {{ ti.try_number }}",
                retries=1,
                retry_delay=datetime.timedelta(seconds=2),
            )
            >> refuse_a_poll_of_a_slow_job()
            >> render("reattached", retries=1, retry_delay=datetime.timedelta(seconds=0))
            >> fail_every_download()
            >> render("unsaved", retries=0, deferrable=False)
        )

    if __name__ == "__main__":
        for dag in (endings, retries):
            dag.test()
    """
)


RENDERS = ("plain", "failed_billed", "failed_free", "superseded", "reattached", "unsaved")


def cents(usd: float) -> int:
    return round(usd * 100)


def test_the_ledgers_spend_is_the_emulators_bill_per_day_and_dag(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
    emulator: Any,
    tmp_path: Path,
) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.2, in_progress_seconds=0.6)
    first_day = utc_day(time.time())
    environment = {
        "OUT": str(tmp_path),
        "EMULATOR": emulator.server.origin,
        # The DAG process books into this test's ledger, which configured_ledger() below reads.
        "AIRFLOW__OPENROUTER__LEDGER_PATH": os.environ["AIRFLOW__OPENROUTER__LEDGER_PATH"],
    }
    run = run_dag_file(airflow_home, emulator, DAG, "spend_equals_bill", environment)
    output = plain_text(run.stdout + run.stderr)
    assert run.returncode == 0, output[-8000:]
    last_day = utc_day(time.time())
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        states = {
            task_id: (state, try_number)
            for task_id, state, try_number in db.execute(
                "SELECT task_id, state, try_number FROM task_instance "
                "WHERE dag_id IN ('spend_endings', 'spend_retries')"
            )
            if task_id in RENDERS
        }
    assert states == {
        "plain": ("success", 1),
        "failed_billed": ("failed", 1),
        "failed_free": ("failed", 1),
        "superseded": ("success", 2),
        "reattached": ("success", 2),
        "unsaved": ("failed", 1),
    }, output[-8000:]

    jobs = emulator.control.jobs()
    charges = emulator.control.charges()
    ledger = configured_ledger()
    rows = ledger.jobs(since_day=first_day, until_day=last_day)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_task[row["task_id"]].append(row)
    submitted = {task: len(task_rows) for task, task_rows in by_task.items()}
    assert submitted == {
        "plain": 1,
        "failed_billed": 1,
        "failed_free": 1,
        "superseded": 2,
        "reattached": 1,
        "unsaved": 1,
    }, output[-8000:]

    # One created ledger row per job the emulator has, and no other.
    assert sorted(row["job_id"] for row in rows) == sorted(job["id"] for job in jobs)
    assert len(charges) == 6  # every job but the free failure

    # The money: per (UTC day, DAG), to the cent. A run that crossed midnight UTC may date a job's
    # end on either side of it (the ledger when the task saw it, the emulator when it happened).
    same_day = first_day == last_day

    def key(day: str, dag_id: str | None) -> tuple[str, str | None]:
        return (day if same_day else "", dag_id)

    billed: dict[tuple[str, str | None], int] = defaultdict(int)
    for charge in charges:
        billed[key(charge["day"], charge["dag_id"])] += cents(charge["usd"])
    spent: dict[tuple[str, str | None], int] = defaultdict(int)
    for spend_row in ledger.spend(since_day=first_day, until_day=last_day):
        spent[key(spend_row.day, spend_row.dag_id)] += cents(spend_row.spent_usd)
        assert spend_row.pending_usd == 0, spend_row  # every job ended and was priced
    assert dict(spent) == dict(billed), output[-8000:]
    assert {dag_id for _, dag_id in billed} == {"spend_endings", "spend_retries"}

    # Each job's own row, against its charge.
    charged = {charge["job_id"]: charge for charge in charges}
    for row in rows:
        charge = charged.get(row["job_id"])
        assert row["cost_usd"] == (None if charge is None else charge["usd"]), row
        assert row["generation_id"], row  # for the ledger to ask GET /generation what it cost
        assert charge is None or row["generation_id"] == charge["generation_id"], row
    (failed_billed,) = by_task["failed_billed"]
    assert (failed_billed["status"], failed_billed["cost_usd"]) == ("failed", 0.2)
    (failed_free,) = by_task["failed_free"]
    assert (failed_free["status"], failed_free["cost_usd"], failed_free["held_usd"]) == ("failed", None, 0.0)
    first, second = sorted(by_task["superseded"], key=lambda row: row["reserved_at"])
    assert (first["status"], first["superseded_by"], first["kept"]) == ("completed", second["job_id"], None)
    assert second["kept"] == [str(tmp_path / "superseded.mp4")]
    assert "Earlier try found: the video fields of the request changed" in output, output[-8000:]
    (reattached,) = by_task["reattached"]
    still = rf"Earlier try found: job {reattached['job_id']} from an earlier try is still (pending|in_progress); re-attaching"
    assert re.search(still, output), output[-8000:]
    assert reattached["kept"] == [str(tmp_path / "reattached.mp4")]
    assert reattached["try_number"] == 1  # booked by the try that paid; try 2 only re-attached

    # The paid videos nobody kept: the one whose downloads all failed, and the superseded one.
    (unsaved,) = by_task["unsaved"]
    unkept = {row["job_id"]: row for row in ledger.unkept()}
    assert set(unkept) == {unsaved["job_id"], first["job_id"]}
    assert "HTTP 503" in (unkept[unsaved["job_id"]]["unkept_reason"] or "")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "plain.mp4",
        "reattached.mp4",
        "superseded.mp4",
    ]
    assert emulator.control.count("submit", "POST") == 7
