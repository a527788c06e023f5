"""The gallery's spend chart and "Paid, not kept" read the spend ledger (issue 25, items 2 and 5).

Jobs are booked through the real :class:`~airflow_provider_orvideo._internal.ledger.Ledger` API
(reserve, submitted, ended, kept, not kept, superseded), in the test's own ledger file
(``tests/conftest.py``'s ``_own_spend_ledger``), with no XCom at all: a job counts because the
ledger booked it, whatever became of its task's XComs. The pages are the plugin's own app, driven
in-process by ``tests/plugins/spend_pages_app.py`` inside a migrated Airflow home, with Airflow's
simple auth manager, real JWTs and real DAG rows: ``alice`` (viewer) may not read the ``secret``
DAG (``tests/system/deny_auth_manager.py``), ``admin`` reads everything.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import AIRFLOW_VERSION

if AIRFLOW_VERSION < (3, 1):
    pytest.skip("the video pages exist on Airflow 3.1+", allow_module_level=True)

from airflow_provider_orvideo._internal.ledger import Entry, Ledger, SpendRow, configured_ledger, utc_day
from airflow_provider_orvideo.plugins import _video_viewer as video_viewer
from airflow_provider_orvideo.plugins._video_html import money
from airflow_provider_orvideo.plugins._video_viewer import LedgerUnreadable, load_spend, load_unkept
from airflow_provider_orvideo.plugins._video_views import UNKEPT_SHOWN
from tests.adversarial.conftest import airflow_env, airflow_home  # noqa: F401 - a fixture

REPO_ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>"'
DAGS = ["daily", "weekly", "secret", HOSTILE]
NOW = time.time()
DAY = 86_400.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    text: str
    logged: list[dict[str, str]]

    def elements(self, tag: str, css_class: str) -> list[dict[str, str]]:
        """The attributes of every ``<tag class="css_class">`` (values unescaped)."""
        found: list[dict[str, str]] = []

        class Parser(HTMLParser):
            def handle_starttag(self, name: str, attrs: list[tuple[str, str | None]]) -> None:
                values = {key: value or "" for key, value in attrs}
                if name == tag and css_class in values.get("class", "").split():
                    found.append(values)

        Parser().feed(self.text)
        return found

    def cells(self) -> dict[tuple[str, str], float]:
        """The spend chart's bars: dollars per (day, DAG)."""
        return {
            (bar["data-day"], bar["data-dag-id"]): float(bar["data-usd"])
            for bar in self.elements("rect", "bar")
        }

    def pending(self) -> dict[str, float]:
        return {rect["data-day"]: float(rect["data-usd"]) for rect in self.elements("rect", "pending")}


Request = tuple[str | None, str] | tuple[str | None, str, dict[str, str]]


def serve(home: Path, *requests: Request) -> list[Answer]:
    """Answer ``(user, path[, env])`` requests with the plugin's app, in a migrated Airflow home
    that reads this test's spend ledger (unless a request's ``env`` says otherwise)."""
    spec = home / f"spec-{secrets.token_hex(4)}.json"
    answers = spec.with_suffix(".answers.json")
    asked = [{"user": ask[0], "path": ask[1], "env": ask[2] if len(ask) > 2 else {}} for ask in requests]
    spec.write_text(json.dumps({"dags": DAGS, "requests": asked}))
    env = airflow_env(
        home,
        {
            "AIRFLOW__OPENROUTER__LEDGER_PATH": os.environ["AIRFLOW__OPENROUTER__LEDGER_PATH"],
            "AIRFLOW__CORE__AUTH_MANAGER": "tests.system.deny_auth_manager.DagDenyingAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,alice:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            "ORVIDEO_TEST_DENY": "alice:secret",
        },
    )
    run = subprocess.run(
        [sys.executable, "-m", "tests.plugins.spend_pages_app", str(spec), str(answers)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    return [Answer(**answer) for answer in json.loads(answers.read_text())]


# ------------------------------------------------------------------------------------ booking


def book(
    ledger: Ledger,
    dag_id: str,
    *,
    days_ago: float,
    ending: str | None = "completed",
    cost: float | None = None,
    estimate: float | None = 1.0,
    kept: bool = True,
    superseded_by: str | None = None,
    unkept_reason: str | None = None,
    conn_id: str = "openrouter_default",
    run_id: str = "scheduled__2026-01-01T00:00:00+00:00",
    task_id: str = "render",
    map_index: int = -1,
    job_id: str | None = None,
) -> str:
    """One job as the operator books it: reserved before its POST, submitted after it, ended
    (``ending=None``: still rendering), then kept, not kept, or superseded."""
    at = NOW - days_ago * DAY
    job_id = job_id or f"gen-vid-{secrets.token_hex(6)}"
    entry = Entry(conn_id, dag_id, run_id, task_id, map_index, 1, "google/veo-3.1", None, estimate)
    entry_id = ledger.reserve(entry, [], now=at - 120)
    ledger.submitted(entry_id, job_id, now=at - 110)
    if superseded_by is not None:
        ledger.superseded(job_id, superseded_by, now=at - 5)
    if ending is not None:
        ledger.ended(job_id, ending, cost_usd=cost, generation_id=f"gen-{job_id}", now=at)
        if ending == "completed" and kept and superseded_by is None:
            ledger.kept(job_id, [f"/videos/{job_id}.mp4"], now=at + 1)
        elif unkept_reason is not None:
            ledger.not_kept(job_id, unkept_reason, now=at + 1)
    return job_id


def ledger_rows(ledger: Ledger) -> list[SpendRow]:
    """The ledger's own report over the chart's window."""
    today = datetime.now(timezone.utc).date()
    return ledger.spend(since_day=(today - timedelta(days=29)).isoformat(), until_day=today.isoformat())


def expected_cells(ledger: Ledger, dag_ids: set[str]) -> dict[tuple[str, str], float]:
    """What the ledger's own report says per (day, DAG) over the chart's window, for these DAGs."""
    cells: dict[tuple[str, str], float] = defaultdict(float)
    for row in ledger_rows(ledger):
        if row.dag_id in dag_ids and row.spent_usd > 0:
            cells[(row.day, row.dag_id)] += row.spent_usd
    return dict(cells)


def assert_same_cells(shown: dict[tuple[str, str], float], expected: dict[tuple[str, str], float]) -> None:
    assert shown.keys() == expected.keys()
    for key, amount in expected.items():
        assert math.isclose(shown[key], amount, abs_tol=1e-6), key


# ------------------------------------------------------------------------------------ the chart


def test_the_chart_counts_every_job_the_ledger_booked_per_dag_per_day(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
) -> None:
    ledger = configured_ledger()
    today = utc_day(NOW)
    book(ledger, "daily", days_ago=0, cost=1.25)
    book(ledger, "daily", days_ago=0, cost=0.25, conn_id="openrouter_team_b")  # same cell, other key
    book(ledger, "daily", days_ago=0, cost=0.5, superseded_by="gen-vid-next")  # replaced, still paid
    book(ledger, "daily", days_ago=2, cost=2.0, kept=False, unkept_reason="the task was cleared")
    book(ledger, "daily", days_ago=3, ending="failed", cost=None)  # holds nothing, still a job
    book(ledger, "weekly", days_ago=5, cost=3.0)
    book(ledger, "weekly", days_ago=0, ending=None, estimate=0.8)  # still rendering: pending
    book(ledger, "weekly", days_ago=1, cost=None, estimate=0.6)  # ended unpriced: pending
    book(ledger, "secret", days_ago=0, cost=9.0)
    book(ledger, "daily", days_ago=40, cost=100.0)  # before the chart's window
    released = ledger.reserve(Entry("openrouter_default", "daily", "r", "t", -1, 1, None, None, 5.0), [])
    ledger.released(released)  # the POST created nothing: no job

    alice, admin, tab = serve(
        airflow_home,
        ("alice", "/orvideo/gallery"),
        ("admin", "/orvideo/gallery"),
        ("alice", "/orvideo/gallery/dag/daily"),
    )
    assert (alice.status, admin.status, tab.status) == (200, 200, 200)

    # Per DAG per day, what the ledger's rows say, superseded and unkept jobs included.
    assert_same_cells(alice.cells(), expected_cells(ledger, {"daily", "weekly"}))
    assert math.isclose(alice.cells()[(today, "daily")], 2.0)
    assert math.isclose(alice.cells()[(utc_day(NOW - 2 * DAY), "daily")], 2.0)
    assert alice.pending() == pytest.approx({today: 0.8, utc_day(NOW - DAY): 0.6})
    assert (
        f'<span class="cost spent-total">{money(1.25 + 0.25 + 0.5 + 2.0 + 3.0)}</span> spent on 8 jobs'
        in alice.text
    )
    assert f'<span class="pending-total">{money(1.4)} pending</span>' in alice.text
    # The counts are the ledger's (what "without a cost figure" counts is its decision).
    unpriced = sum(row.unpriced for row in ledger_rows(ledger) if row.dag_id in {"daily", "weekly"})
    assert unpriced >= 1  # the completed job OpenRouter gave no cost for
    assert (
        f'<span class="unpriced">{unpriced} job{"" if unpriced == 1 else "s"} without a cost figure</span>'
        in alice.text
    )
    # The superseded job and the cleared one were paid and not kept.
    assert '<a class="unkept" href="/orvideo/unkept">2 paid, not kept</a>' in alice.text

    # The DAG alice may not read is nowhere on her page; the admin sees it.
    assert "secret" not in alice.text
    assert_same_cells(admin.cells(), expected_cells(ledger, {"daily", "weekly", "secret"}))
    assert f"{money(1.25 + 0.25 + 0.5 + 2.0 + 3.0 + 9.0)}</span> spent on 9 jobs" in admin.text

    # The DAG's own tab: that DAG only.
    assert_same_cells(tab.cells(), expected_cells(ledger, {"daily"}))
    assert '<a class="unkept" href="/orvideo/unkept?dag_id=daily">' in tab.text
    for answer in (alice, admin, tab):
        assert answer.logged == []


# ------------------------------------------------------------------------------------ paid, not kept


def test_paid_not_kept_lists_the_readable_jobs_newest_first_escaped_and_bounded(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
) -> None:
    ledger = configured_ledger()
    hostile = book(
        ledger,
        HOSTILE,
        days_ago=0.01,
        cost=0.42,
        kept=False,
        unkept_reason=HOSTILE,
        run_id=HOSTILE,
        task_id=HOSTILE,
        map_index=3,
        job_id="gen-vid-<b>1</b>; rm -rf ~",
    )
    superseded = book(ledger, "daily", days_ago=0.02, cost=0.3, superseded_by="gen-vid-newer")
    # More jobs alice may not read than one query returns, then hers: the page reads on.
    for number in range(UNKEPT_SHOWN + 10):
        book(ledger, "secret", days_ago=0.03 + number / 10_000, cost=1.0, kept=False)
    older = [book(ledger, "daily", days_ago=2 + number, cost=0.5, kept=False) for number in range(2)]
    book(ledger, "daily", days_ago=1, cost=0.5)  # kept: not listed
    book(ledger, "weekly", days_ago=1, ending="failed")  # not paid: not listed

    alice, admin, forbidden = serve(
        airflow_home,
        ("alice", "/orvideo/unkept"),
        ("admin", "/orvideo/unkept"),
        ("alice", "/orvideo/unkept?dag_id=secret"),
    )
    assert (alice.status, admin.status, forbidden.status) == (200, 200, 403)

    rows = alice.elements("tr", "unkept-job")
    assert [row["data-job-id"] for row in rows] == [hostile, superseded, *older]
    assert rows[0]["data-dag-id"] == HOSTILE
    assert "<script" not in alice.text
    assert "<img" not in alice.text
    assert "<b>1</b>" not in alice.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in alice.text
    assert (
        "orvideo download &#39;gen-vid-&lt;b&gt;1&lt;/b&gt;; rm -rf ~&#39; ./gen-vid-_b_1_b_rm_-rf.mp4"
        in alice.text
    )
    assert "superseded by gen-vid-newer" in alice.text
    assert "$0.4200" in alice.text
    assert "secret" not in alice.text

    # Bounded: the newest UNKEPT_SHOWN, the admin's include the secret DAG's.
    assert len(admin.elements("tr", "unkept-job")) == UNKEPT_SHOWN
    assert f"The newest {UNKEPT_SHOWN} are listed." in admin.text
    assert admin.elements("tr", "unkept-job")[2]["data-dag-id"] == "secret"


def test_one_query_for_many_dags_and_one_per_dag_for_few_count_the_same() -> None:
    """A user who reads many DAGs gets every DAG's groups filtered; one who reads few, a query per
    DAG (``SPEND_QUERIES_PER_DAG``): the same rows either way, and never an unreadable DAG's."""
    ledger = configured_ledger()
    many = {f"dag_{number:02d}" for number in range(video_viewer.SPEND_QUERIES_PER_DAG + 3)}
    for number, dag_id in enumerate(sorted(many | {"secret"})):
        book(ledger, dag_id, days_ago=number % 4, cost=0.5 + number, conn_id=f"conn_{number % 2}")
        book(ledger, dag_id, days_ago=number % 3, ending=None, estimate=0.25)
    today = datetime.now(timezone.utc).date()
    window = ((today - timedelta(days=29)).isoformat(), today.isoformat())

    def rows(report: Any) -> list[tuple[Any, ...]]:
        return sorted(
            (row.day, row.dag_id, row.conn_id, row.jobs, row.spent_usd, row.pending_usd)
            for row in report.rows
        )

    everything = load_spend(many, None, *window)  # one query
    assert {row.dag_id for row in everything.rows} == many
    few = set(sorted(many)[:3])
    assert rows(load_spend(few, None, *window)) == [row for row in rows(everything) if row[1] in few]
    assert rows(load_spend(many, "dag_01", *window)) == [
        row for row in rows(everything) if row[1] == "dag_01"
    ]
    assert everything.complete


def test_the_unkept_search_reads_past_other_dags_jobs_and_past_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    """More unreadable unkept jobs than one query returns, all ended at the same instant (the
    ledger pages by end time alone): the search reads on to the user's."""
    ledger = configured_ledger()
    for _ in range(UNKEPT_SHOWN + 20):
        book(ledger, "secret", days_ago=0.5, cost=1.0, kept=False)  # one and the same ended_at
    mine = [book(ledger, "daily", days_ago=1 + number / 100, cost=0.5, kept=False) for number in range(3)]
    book(ledger, "weekly", days_ago=2, cost=0.5, kept=False)

    found = load_unkept({"daily", "weekly"}, "daily")
    assert ([job.job_id for job in found.jobs], found.searched_all) == (mine, True)
    everyone = load_unkept({"daily", "weekly", "secret"}, None)
    assert len(everyone.jobs) == UNKEPT_SHOWN
    assert {job.task.dag_id for job in everyone.jobs} == {"secret"}
    assert everyone.searched_all

    # More tied jobs than a query holds: stepped past (some never looked at), and said so.
    monkeypatch.setattr(video_viewer, "UNKEPT_SHOWN", 5)
    monkeypatch.setattr(video_viewer, "UNKEPT_SCANNED", 20)
    found = load_unkept({"daily", "weekly"}, "daily")
    assert ([job.job_id for job in found.jobs], found.searched_all) == (mine, False)


# ------------------------------------------------------------------------------------ no ledger


def test_a_ledger_that_cannot_be_opened_costs_the_chart_not_the_page(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    garbage = tmp_path / "ledger.sqlite"
    garbage.write_bytes(b"this is not a SQLite database" * 100)
    brokens = {
        "not a database": {"AIRFLOW__OPENROUTER__LEDGER_PATH": str(garbage)},
        "a missing connection": {"AIRFLOW__OPENROUTER__LEDGER_CONN_ID": "no_such_ledger_connection"},
    }
    paths = [
        ("alice", "/orvideo/gallery"),
        ("alice", "/orvideo/gallery/dag/daily"),
        ("alice", "/orvideo/unkept"),
        (None, "/orvideo/unkept"),
        ("alice", "/orvideo/gallery?dag_id=secret"),
        ("alice", "/orvideo/unkept?dag_id=%00"),
    ]
    answers = serve(airflow_home, *((user, path, env) for env in brokens.values() for user, path in paths))
    for number, broken in enumerate(brokens):
        gallery, tab, unkept, signed_out, other_dag, nul = answers[
            number * len(paths) : (number + 1) * len(paths)
        ]
        for page in (gallery, tab):
            assert page.status == 200, broken
            assert 'class="note spend-unavailable"' in page.text
            assert "Spend unavailable: the spend ledger could not be read" in page.text
            assert "spend-chart" not in page.text
            assert [record["level"] for record in page.logged] == ["WARNING"], broken
            assert "could not show spend" in page.logged[0]["message"]
        assert unkept.status == 503, broken
        assert "Spend unavailable" in unkept.text
        assert unkept.headers["retry-after"] == "30"
        assert [record["level"] for record in unkept.logged] == ["WARNING"]
        # Refused before the ledger is asked anything: nothing logged.
        assert signed_out.status in (303, 401)
        assert (other_dag.status, nul.status) == (403, 400)
        assert signed_out.logged == other_dag.logged == nul.logged == [], broken


def test_a_ledger_file_per_machine_is_not_read_as_if_it_held_every_machine_s_spend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tasks on other machines than the api-server (a remote executor) book their jobs in their
    own machines' files: the api-server's own file would show a fraction, or nothing, as if true."""
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    with pytest.raises(LedgerUnreadable, match="ledger_conn_id"):
        load_spend({"daily"}, None, "2026-01-01", "2026-01-30")
    assert not Path(os.environ["AIRFLOW__OPENROUTER__LEDGER_PATH"]).exists()  # not even created


async def test_a_ledger_too_slow_to_answer_gives_way_to_a_note(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The query runs in the pages' own ledger threads; past its deadline the page goes on."""
    monkeypatch.setattr(video_viewer, "LEDGER_TIMEOUT_SECONDS", 0.2)
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(LedgerUnreadable, match=r"did not answer within 0\.2 s"),
    ):
        await video_viewer.ledger_io(time.sleep, 2)
    assert [record.levelname for record in caplog.records] == ["WARNING"]
