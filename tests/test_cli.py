"""The ``orvideo`` command line (``airflow orvideo`` on Airflow 3.2+): the spend ledger's reports,
``download`` against the emulator, ``reconcile``, and both registrations as real subprocesses.

Every test has a spend ledger of its own (``AIRFLOW__OPENROUTER__LEDGER_PATH``, set by
``tests/conftest.py``), filled through the ledger's own API the way tasks fill it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_orvideo import cli
from airflow_provider_orvideo._internal.ledger import Entry, Ledger, configured_ledger
from airflow_provider_orvideo.exceptions import OpenRouterNotFoundError, OpenRouterServerError
from airflow_provider_orvideo.get_provider_info import get_provider_info
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from tests.conftest import Emulator
from tests.helpers import AIRFLOW_VERSION

REPO = Path(__file__).resolve().parents[1]
NOON = 1_796_472_000.0  # 2026-12-05T12:00:00Z
DAY = "2026-12-05"
BODY = {"model": "google/veo-3.1", "prompt": "a lighthouse at dawn", "duration": 4}


def book(
    ledger: Ledger,
    job_id: str,
    *,
    now: float = NOON,
    dag_id: str = "promo",
    conn_id: str = "openrouter_default",
    task_id: str = "render",
    map_index: int = -1,
    status: str = "completed",
    cost: float | None = 1.25,
    estimate: float | None = 1.5,
    generation_id: str | None = None,
    kept: list[str] | None = None,
    unkept_reason: str | None = None,
) -> None:
    """One job booked as a task books it: reserved, submitted, ended, and kept (or not)."""
    entry = Entry(conn_id, dag_id, "manual__1", task_id, map_index, 1, "google/veo-3.1", "fp", estimate)
    entry_id = ledger.reserve(entry, [], now=now)
    ledger.submitted(entry_id, job_id, now=now + 1)
    if status != "submitted":
        ledger.ended(
            job_id,
            status,
            cost_usd=cost,
            generation_id=generation_id,
            unkept_reason=unkept_reason,
            now=now + 60,
        )
    if kept:
        ledger.kept(job_id, kept, now=now + 61)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what the test itself logged before (the hook's submit)
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- spend ------------------------------------------------------------------------------------------


def test_spend_reports_each_day_dag_and_connection_with_a_total(capsys: pytest.CaptureFixture[str]) -> None:
    ledger = configured_ledger()
    book(ledger, "job-a", cost=1.25)
    book(ledger, "job-b", cost=0.5, kept=["/videos/b.mp4"])
    book(ledger, "job-c", dag_id="news", conn_id="openrouter_prod", cost=None, estimate=0.75)
    book(ledger, "job-d", now=NOON - 86400, cost=2.0, kept=["/videos/d.mp4"])
    book(ledger, "job-e", now=NOON - 20 * 86400, cost=9.0)  # before --since

    code, out, err = run(capsys, "spend", "--since", "2026-12-01", "--until", DAY)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "DAY",
        "DAG",
        "CONNECTION",
        "JOBS",
        "SPENT_USD",
        "PENDING_USD",
        "UNPRICED",
        "UNKEPT",
    ]
    assert [line.split() for line in lines[1:4]] == [
        [DAY, "news", "openrouter_prod", "1", "0.0000", "0.7500", "1", "1"],
        [DAY, "promo", "openrouter_default", "2", "1.7500", "0.0000", "0", "1"],
        ["2026-12-04", "promo", "openrouter_default", "1", "2.0000", "0.0000", "0", "0"],
    ]
    assert set(lines[4]) == {"-"}
    assert lines[5].split() == ["TOTAL", "4", "3.7500", "0.7500", "1", "2"]
    assert lines[6] == f"UTC days 2026-12-01 to {DAY}; USD."

    code, out, _ = run(capsys, "spend", "--since", "2026-12-01", "--until", DAY, "--output", "json")
    assert code == 0
    assert json.loads(out) == [row.to_dict() for row in ledger.spend(since_day="2026-12-01", until_day=DAY)]
    assert len(json.loads(out)) == 3


def test_spend_filters_by_dag_and_connection(capsys: pytest.CaptureFixture[str]) -> None:
    ledger = configured_ledger()
    book(ledger, "job-a", cost=1.0)
    book(ledger, "job-b", dag_id="news", cost=2.0)
    book(ledger, "job-c", dag_id="news", conn_id="openrouter_prod", cost=4.0)
    since_until = ("--since", DAY, "--until", DAY, "-o", "json")

    _, out, _ = run(capsys, "spend", *since_until, "--dag-id", "news")
    assert [(r["dag_id"], r["conn_id"], r["spent_usd"]) for r in json.loads(out)] == [
        ("news", "openrouter_default", 2.0),
        ("news", "openrouter_prod", 4.0),
    ]
    _, out, _ = run(capsys, "spend", *since_until, "--dag-id", "news", "--conn-id", "openrouter_prod")
    assert [r["spent_usd"] for r in json.loads(out)] == [4.0]


def test_spend_defaults_to_the_last_seven_utc_days(capsys: pytest.CaptureFixture[str]) -> None:
    ledger = configured_ledger()
    now = time.time()
    book(ledger, "today", now=now - 120, cost=1.0)
    book(ledger, "six-days-ago", now=now - 6 * 86400, cost=2.0)
    book(ledger, "eight-days-ago", now=now - 8 * 86400, cost=4.0)
    _, out, _ = run(capsys, "spend", "-o", "json")
    assert sorted(r["spent_usd"] for r in json.loads(out)) == [1.0, 2.0]


def test_spend_with_nothing_booked_says_where_it_looked(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "spend", "--since", "yesterday", "--until", "today")
    assert code == 0
    assert "No jobs in the spend ledger (sqlite:///" in out
    assert os.environ["AIRFLOW__OPENROUTER__LEDGER_PATH"] in out
    assert run(capsys, "spend", "-o", "json")[1] == "[]\n"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["spend", "--since", "2026-02-30"], "is not a UTC day"),
        (["spend", "--output", "yaml"], "invalid choice"),
        (["unkept", "--limit", "0"], "not a positive whole number"),
        (["reconcile"], "--day"),
        (["download", "job-only"], "PATH"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_since_after_until_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "spend", "--since", DAY, "--until", "2026-12-01")
    assert (code, out) == (1, "")
    assert "--since 2026-12-05 is after --until 2026-12-01" in err


# -- unkept -----------------------------------------------------------------------------------------


def test_unkept_lists_paid_videos_no_task_kept_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    ledger = configured_ledger()
    now = time.time()
    book(ledger, "job-kept", now=now - 7200, kept=["/videos/k.mp4"])
    book(ledger, "job-failed", now=now - 7200, status="failed", cost=None)
    book(
        ledger,
        "job-disk-full",
        now=now - 7200,
        map_index=3,
        cost=0.8,
        unkept_reason="OutputWriteError: Writing /videos/x.mp4 failed: No space left on device (ENOSPC).",
    )
    book(ledger, "job-unpriced", now=now - 3 * 86400, task_id="teaser", cost=None, estimate=0.4)

    code, out, err = run(capsys, "unkept")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["JOB", "DAG", "TASK", "MAP", "COST_USD", "AGE", "WHY"]
    assert lines[1].split()[:7] == ["job-disk-full", "promo", "render", "3", "0.8000", "1h", "59m"]
    assert "No space left on device" in lines[1]
    assert lines[2].split()[:6] == ["job-unpriced", "promo", "teaser", "-1", "~0.4000", "2d"]
    assert "not recorded as kept" in lines[2]
    assert "2 paid video(s) not kept" in lines[3]

    code, out, _ = run(capsys, "unkept", "--output", "json", "--limit", "1")
    records = json.loads(out)
    assert [r["job_id"] for r in records] == ["job-disk-full"]
    assert records[0]["cost_usd"] == 0.8
    assert records[0]["map_index"] == 3
    assert records[0]["unkept_reason"].startswith("OutputWriteError")
    assert 7100 < records[0]["age_seconds"] < 7300
    assert records[0]["ended_at"].endswith("Z")


def test_unkept_with_every_video_kept(capsys: pytest.CaptureFixture[str]) -> None:
    book(configured_ledger(), "job-kept", kept=["/videos/k.mp4"])
    assert "No unkept videos" in run(capsys, "unkept")[1]
    assert run(capsys, "unkept", "-o", "json")[1] == "[]\n"


# -- download (the emulator) ------------------------------------------------------------------------


def completed_job(emulator: Emulator) -> Any:
    """A job submitted through the hook, as a task submits it, and waited for until completed."""
    emulator.control.set_job_defaults(render=False)  # the sample MP4: fast
    hook = OpenRouterVideoHook("openrouter_default")
    job = hook.submit(BODY)
    for _ in range(200):
        done = hook.get_job(job.id)
        if done.status == "completed":
            return done
        time.sleep(0.05)
    raise AssertionError("job never completed")


def book_unkept(job: Any, reason: str = "OutputWriteError: disk full") -> Ledger:
    """The job booked as its task booked it before failing to save it."""
    ledger = configured_ledger()
    book(
        ledger,
        job.id,
        now=time.time(),
        cost=job.cost,
        generation_id=job.generation_id,
        unkept_reason=reason,
    )
    return ledger


def no_secret_in(text: str, emulator: Emulator) -> None:
    assert emulator.api_key not in text
    for signed in ("sig=", "exp=", "Bearer"):
        assert signed not in text


def test_download_saves_a_paid_video_and_books_it_kept(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = completed_job(emulator)
    ledger = book_unkept(job)
    target = tmp_path / "videos" / "kept.mp4"

    code, out, err = run(capsys, "download", job.id, str(target))
    assert code == 0, err
    assert target.read_bytes()[4:8] == b"ftyp"
    size = target.stat().st_size
    assert f"Saved output 0 of job {job.id} to {target} ({size:,} bytes)." in out
    assert "Booked in the spend ledger as kept" in out
    entry = ledger.entry(job.id)
    assert entry is not None
    assert (entry["kept"], entry["unkept_reason"]) == ([str(target)], None)
    assert ledger.unkept() == []
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".part")]
    no_secret_in(out + err, emulator)

    # Again: this job's own earlier download may be replaced (the never-replace rule is for others' files).
    code, out, err = run(capsys, "download", job.id, str(target))
    assert code == 0, err
    assert f"to {target} " in out
    assert ledger.entry(job.id)["kept"] == [str(target)]  # type: ignore[index]


def test_download_never_replaces_a_file_it_did_not_write(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = completed_job(emulator)
    ledger = book_unkept(job)
    target = tmp_path / "theirs.mp4"
    target.write_bytes(b"someone else's video")
    downloads_before = emulator.control.count("content")

    code, out, err = run(capsys, "download", job.id, str(target))
    assert (code, out) == (1, "")
    assert f"{target} already exists and this job's video was not saved there before" in err
    assert "--overwrite" in err
    assert "Nothing was downloaded." in err
    assert target.read_bytes() == b"someone else's video"
    assert emulator.control.count("content") == downloads_before  # refused before downloading
    assert ledger.entry(job.id)["kept"] is None  # type: ignore[index]

    code, out, err = run(capsys, "download", job.id, str(target), "--overwrite")
    assert code == 0, err
    assert target.read_bytes()[4:8] == b"ftyp"
    assert ledger.entry(job.id)["kept"] == [str(target)]  # type: ignore[index]


def test_download_into_a_directory_and_of_a_job_not_in_the_ledger(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = completed_job(emulator)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    code, out, err = run(capsys, "download", job.id, "out")  # relative: against the working directory
    assert code == 0, err
    saved = tmp_path / "out" / f"{job.id}.mp4"
    assert saved.read_bytes()[4:8] == b"ftyp"
    assert f"to {saved} " in out
    assert f"Job {job.id} is not in the spend ledger" in out
    assert configured_ledger().entry(job.id) is None


@pytest.mark.parametrize("status", [410, 404])
def test_download_of_content_openrouter_no_longer_serves(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    job = completed_job(emulator)
    ledger = book_unkept(job)
    if status == 410:
        emulator.control.set_job_defaults(gone=True)  # jobs from now on: their content is gone
        job = completed_job(emulator)
        ledger = book_unkept(job)
    else:
        emulator.control.fail_requests("content", 404, times=10)
    target = tmp_path / "gone.mp4"

    code, out, err = run(capsys, "download", job.id, str(target))
    assert (code, out) == (1, "")
    assert f"OpenRouter no longer serves the video of job {job.id} (its content expired" in err
    assert f"HTTP {status}" in err
    assert "completed and was billed" in err
    assert not target.exists()
    assert not list(tmp_path.iterdir())  # no temporary file left either
    reason = ledger.entry(job.id)["unkept_reason"]  # type: ignore[index]
    assert reason.startswith(f"OpenRouter no longer serves the video of job {job.id}")
    no_secret_in(out + err, emulator)


def test_download_refuses_a_job_that_has_not_completed(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = OpenRouterVideoHook("openrouter_default")
    emulator.control.jobs_take(600)
    rendering = hook.submit(BODY)
    code, _, err = run(capsys, "download", rendering.id, str(tmp_path / "a.mp4"))
    assert code == 1
    assert f"Job {rendering.id} is pending, not completed: its video is not ready yet." in err

    emulator.control.jobs_take(0.05)
    emulator.control.jobs_end_as("failed", error="content policy")
    failed = hook.submit(BODY)
    book(configured_ledger(), failed.id, status="submitted")  # its task died before the ending
    time.sleep(0.3)
    code, _, err = run(capsys, "download", failed.id, str(tmp_path / "b.mp4"))
    assert code == 1
    assert f"Job {failed.id} is failed, not completed: it ended without a video (content policy)" in err
    assert configured_ledger().entry(failed.id)["status"] == "failed"  # type: ignore[index]
    assert list(tmp_path.iterdir()) == []


def test_download_of_an_unknown_job_or_with_a_refused_key_prints_no_secret(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "download", "no-such-job", str(tmp_path / "a.mp4"))
    assert code == 1
    assert "OpenRouter knows no job no-such-job for connection 'openrouter_default'" in err

    wrong_key = "sk-or-v1-wrong-0123456789abcdef0123456789abcdef"
    connection = {"conn_type": "openrouter", "host": emulator.base_url, "password": wrong_key}
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_DEFAULT", json.dumps(connection))
    code, out, err = run(capsys, "download", "some-job", str(tmp_path / "a.mp4"))
    assert code == 1
    assert "OpenRouterAuthError" in err
    assert wrong_key not in out + err
    assert wrong_key[-12:] not in out + err

    code, _, err = run(capsys, "download", "some-job", str(tmp_path / "a.mp4"), "--conn-id", "missing")
    assert code == 1
    assert "missing" in err
    assert "Traceback" not in err


def test_an_unreadable_ledger_never_stands_between_a_paid_video_and_its_download(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = completed_job(emulator)
    (tmp_path / "a-file").write_text("not a directory")
    unreadable = tmp_path / "a-file" / "ledger.sqlite"
    monkeypatch.setenv("AIRFLOW__OPENROUTER__LEDGER_PATH", str(unreadable))

    code, out, err = run(capsys, "download", job.id, str(tmp_path / "v.mp4"))
    assert code == 0, err
    assert (tmp_path / "v.mp4").read_bytes()[4:8] == b"ftyp"
    assert f"The spend ledger cannot be read (LedgerUnavailableError at sqlite:///{unreadable}" in err
    assert "downloading without booking" in err
    assert "Booked" not in out

    code, out, err = run(capsys, "spend")
    assert (code, out) == (1, "")
    assert "orvideo spend: The spend ledger could not be read: OperationalError (unable to open" in err
    assert f"(the ledger at sqlite:///{unreadable})" in err
    assert "Traceback" not in err


# -- reconcile --------------------------------------------------------------------------------------


class Generations:
    """OpenRouter's generation records by id (a stand-in for the hook's ``get_generation``)."""

    def __init__(self, costs: Mapping[str, float | None], failing: frozenset[str] = frozenset()) -> None:
        self.costs = costs
        self.failing = failing
        self.asked: list[str] = []

    def get_generation(self, generation_id: str) -> Any:
        self.asked.append(generation_id)
        if generation_id in self.failing:
            raise OpenRouterServerError("HTTP 502 from OpenRouter, still after 4 attempts", http_status=502)
        if generation_id not in self.costs:
            raise OpenRouterNotFoundError("HTTP 404: Generation not found", http_status=404)
        return SimpleNamespace(
            id=generation_id, total_cost=self.costs[generation_id], model="google/veo-3.1", created_at=NOON
        )


def test_reconcile_fills_missing_costs_and_compares_each_job(capsys: pytest.CaptureFixture[str]) -> None:
    ledger = configured_ledger()
    book(ledger, "job-match", cost=1.25, generation_id="gen-match")
    book(ledger, "job-unpriced", cost=None, generation_id="gen-unpriced")
    book(ledger, "job-penny", cost=0.40, generation_id="gen-penny")
    book(ledger, "job-no-gen", status="failed", cost=None)
    book(ledger, "job-other-day", now=NOON - 86400, cost=3.0, generation_id="gen-other-day")
    generations = Generations({"gen-match": 1.25, "gen-unpriced": 0.75, "gen-penny": 0.398})

    report = cli.reconcile_day(ledger, DAY, lambda conn_id: generations)
    assert sorted(generations.asked) == ["gen-match", "gen-penny", "gen-unpriced"]
    results = {
        job["job_id"]: (job["ledger_usd"], job["openrouter_usd"], job["result"]) for job in report.jobs
    }
    assert results == {
        "job-match": (1.25, 1.25, "matches"),
        "job-unpriced": (None, 0.75, "priced from OpenRouter"),
        "job-penny": (0.40, 0.398, "differs"),
        "job-no-gen": (None, None, "not checked: no generation id (failed)"),
    }
    assert ledger.entry("job-unpriced")["cost_usd"] == 0.75  # type: ignore[index]
    assert (report.ledger_usd, report.openrouter_usd, report.difference_usd) == (2.4, 2.398, 0.002)
    assert report.agrees  # within half a cent
    assert (report.priced, report.unchecked, report.failed) == (1, 1, 0)


def test_reconcile_exit_code_says_whether_the_totals_agree(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = configured_ledger()
    book(ledger, "job-a", cost=1.25, generation_id="gen-a")
    book(ledger, "job-b", now=NOON + 1, cost=0.5, generation_id="gen-b")
    generations = Generations({"gen-a": 1.25, "gen-b": 0.5})
    monkeypatch.setattr(cli, "_hook", lambda conn_id: generations)

    code, out, err = run(capsys, "reconcile", "--day", DAY)
    assert (code, err) == (0, "")
    assert f"{DAY}: ledger $1.7500, OpenRouter $1.7500, difference $0.0000: they agree" in out

    generations.costs = {"gen-a": 1.25, "gen-b": 0.494}  # 0.6 cents apart
    code, out, _ = run(capsys, "reconcile", "--day", DAY, "-o", "json")
    assert code == cli.EXIT_DIFFERS == 3
    report = json.loads(out)
    assert (report["ledger_usd"], report["openrouter_usd"], report["difference_usd"]) == (1.75, 1.744, 0.006)
    assert report["agrees"] is False
    assert [job["result"] for job in report["jobs"]] == ["matches", "differs"]

    generations.costs = {"gen-a": 1.25}  # OpenRouter has no record of job-b: spend it does not show
    code, out, _ = run(capsys, "reconcile", "--day", DAY, "-o", "json")
    assert code == 3
    assert json.loads(out)["jobs"][1]["result"] == "OpenRouter has no generation record"

    generations.failing = frozenset({"gen-b"})
    code, out, err = run(capsys, "reconcile", "--day", DAY)
    assert code == 1
    assert "could not ask OpenRouter: OpenRouterServerError" in out
    assert "1 job(s) of 2026-12-05 could not be checked" in err

    code, out, _ = run(capsys, "reconcile", "--day", DAY, "--conn-id", "openrouter_prod")
    assert (code, out.strip()) == (
        0,
        f"No jobs in the spend ledger ({cli._where(ledger)}) billed on {DAY} (UTC).",
    )


def test_reconcile_against_the_emulators_generation_records(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Jobs rendered and booked as tasks book them; OpenRouter's generation records (the emulator's
    ``GET /generation``) price the one whose job object said ``usage.cost: null``."""
    emulator.control.jobs_cost(0.5)
    priced = completed_job(emulator)
    emulator.control.jobs_without_cost()
    unpriced = completed_job(emulator)
    assert (priced.cost, unpriced.cost) == (0.5, None)
    ledger = configured_ledger()
    now = time.time()
    for job, at in ((priced, now), (unpriced, now + 1)):
        book(ledger, job.id, now=at, cost=job.cost, generation_id=job.generation_id, kept=["/v.mp4"])
    day = datetime.fromtimestamp(now + 60, tz=timezone.utc).strftime("%Y-%m-%d")

    code, out, err = run(capsys, "reconcile", "--day", day, "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert [(j["job_id"], j["ledger_usd"], j["openrouter_usd"], j["result"]) for j in report["jobs"]] == [
        (priced.id, 0.5, 0.5, "matches"),
        (unpriced.id, None, 0.5, "priced from OpenRouter"),
    ]
    assert (report["ledger_usd"], report["openrouter_usd"], report["difference_usd"]) == (1.0, 1.0, 0.0)
    assert ledger.entry(unpriced.id)["cost_usd"] == 0.5  # type: ignore[index]
    no_secret_in(out + err, emulator)

    ledger.priced(priced.id, 0.6)  # the ledger books a dime more than OpenRouter billed
    code, out, _ = run(capsys, "reconcile", "--day", day)
    assert code == 3
    assert f"{day}: ledger $1.1000, OpenRouter $1.0000, difference $0.1000: they DIFFER" in out
    assert "Costs filled in from OpenRouter: 0" in out

    ledger.priced(priced.id, 0.5)
    book(ledger, "job-unknown", now=now + 2, cost=0.25, generation_id="gen-nobody-made")
    code, out, _ = run(capsys, "reconcile", "--day", day, "-o", "json")
    assert code == 3  # a cost the ledger books and OpenRouter has no record of
    report = json.loads(out)
    assert report["jobs"][2]["result"] == "OpenRouter has no generation record"
    assert (report["ledger_usd"], report["openrouter_usd"]) == (1.25, 1.0)


def test_reconcile_books_how_a_job_no_task_saw_end_ended(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A superseded job still rendering when it was replaced (or one whose task timed out) stays
    ``submitted`` in the ledger: reconcile asks OpenRouter how it ended and books it."""
    from airflow_provider_orvideo._internal.ledger import Entry

    emulator.control.jobs_cost(0.5)
    job = completed_job(emulator)
    ledger = configured_ledger()
    entry_id = ledger.reserve(
        Entry("openrouter_default", "d", "r", "t", -1, 1, "google/veo-3.1", None, 0.4), []
    )
    ledger.submitted(entry_id, job.id)
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    code, out, err = run(capsys, "reconcile", "--day", day, "-o", "json")
    assert code == 0, err
    (row,) = json.loads(out)["jobs"]
    assert (row["job_id"], row["status"], row["ledger_usd"], row["openrouter_usd"], row["result"]) == (
        job.id,
        "completed",
        0.5,
        0.5,
        "matches",
    )
    booked = ledger.entry(job.id)
    assert booked is not None
    assert (booked["status"], booked["cost_usd"], booked["generation_id"]) == (
        "completed",
        0.5,
        job.generation_id,
    )


# -- registration: the console script, `airflow orvideo`, provider info ----------------------------


def subprocess_env(tmp_path: Path, emulator: Emulator | None = None) -> dict[str, str]:
    """A clean environment (no AIRFLOW_* of this process) with this test's ledger and home."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("AIRFLOW", "_AIRFLOW"))}
    home = tmp_path / "airflow_home"
    home.mkdir(exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__OPENROUTER__LEDGER_PATH": os.environ["AIRFLOW__OPENROUTER__LEDGER_PATH"],
        }
    )
    if emulator is not None:
        env["AIRFLOW_CONN_OPENROUTER_DEFAULT"] = os.environ["AIRFLOW_CONN_OPENROUTER_DEFAULT"]
    return env


def console_script() -> list[str]:
    """The installed ``orvideo`` script; the module where this venv predates it (an older Airflow's
    venv installed before the script was declared: ``scripts/airflow_versions.py`` rebuilds it)."""
    script = Path(sys.executable).parent / "orvideo"
    return [str(script)] if script.exists() else [sys.executable, "-m", "airflow_provider_orvideo.cli"]


def test_pyproject_declares_the_console_script() -> None:
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"orvideo": "airflow_provider_orvideo.cli:main"}


def test_the_console_script_downloads_and_reports_in_a_subprocess(emulator: Emulator, tmp_path: Path) -> None:
    if AIRFLOW_VERSION >= (3, 3):
        assert (Path(sys.executable).parent / "orvideo").exists(), "reinstall the package: make install"
    job = completed_job(emulator)
    book_unkept(job)
    env = subprocess_env(tmp_path, emulator)
    target = tmp_path / "script.mp4"
    done = subprocess.run(
        [*console_script(), "download", job.id, str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert target.read_bytes()[4:8] == b"ftyp"
    assert f"Saved output 0 of job {job.id} to {target}" in done.stdout
    no_secret_in(done.stdout + done.stderr, emulator)

    spend = subprocess.run(
        [*console_script(), "spend", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert spend.returncode == 0, spend.stderr
    rows = json.loads(spend.stdout)  # stdout holds the JSON only; logs go to stderr
    assert [(r["jobs"], r["unkept"], r["spent_usd"]) for r in rows] == [(1, 0, round(job.cost, 6))]


@pytest.mark.skipif(
    AIRFLOW_VERSION < (3, 2), reason="provider CLI commands are read from provider info on 3.2+"
)
def test_airflow_orvideo_spend_in_a_subprocess(tmp_path: Path) -> None:
    ledger = configured_ledger()
    book(ledger, "job-a", now=time.time() - 60, cost=1.25)
    book(ledger, "job-b", now=time.time() - 60, dag_id="news", cost=None, estimate=0.5)
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run(
        [str(airflow), "orvideo", "spend", "--output", "json"],
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert json.loads(done.stdout) == [
        {
            "day": today,
            "dag_id": "news",
            "conn_id": "openrouter_default",
            "jobs": 1,
            "spent_usd": 0.0,
            "pending_usd": 0.5,
            "unpriced": 1,
            "unkept": 1,
        },
        {
            "day": today,
            "dag_id": "promo",
            "conn_id": "openrouter_default",
            "jobs": 1,
            "spent_usd": 1.25,
            "pending_usd": 0.0,
            "unpriced": 0,
            "unkept": 1,
        },
    ]


def test_provider_info_names_the_cli_and_the_running_airflow_accepts_it() -> None:
    """``cli`` is in the schema of Airflow 3.2+; 3.0 and 3.1's schema allows other keys (no
    top-level ``additionalProperties: false``) and their providers manager never validates."""
    import jsonschema
    from airflow import providers_manager

    info = get_provider_info()
    assert info["cli"] == ["airflow_provider_orvideo.cli.get_cli_commands"]
    schema = providers_manager._read_schema_from_resources_or_local_file("provider_info.schema.json")
    jsonschema.validate(info, schema)


def test_get_cli_commands_is_one_group_with_the_four_commands() -> None:
    from airflow.cli.cli_config import ActionCommand, GroupCommand

    (group,) = cli.get_cli_commands()
    assert isinstance(group, GroupCommand)
    assert group.name == "orvideo"
    commands = {command.name: command for command in group.subcommands}
    assert sorted(commands) == ["download", "reconcile", "spend", "unkept"]
    assert all(isinstance(command, ActionCommand) for command in commands.values())
    assert [arg.flags for arg in commands["download"].args] == [
        ("job_id",),
        ("path",),
        ("--conn-id",),
        ("--overwrite",),
    ]


def test_spend_through_airflows_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """The group as Airflow's parser builds it (``_add_command``), and its action run on the args."""
    from airflow.cli import cli_parser

    book(configured_ledger(), "job-a", cost=1.25)
    parser = cli_parser.DefaultHelpParser(prog="airflow")
    subparsers = parser.add_subparsers(dest="subcommand")
    cli_parser._add_command(subparsers, cli.get_cli_commands()[0])
    args = parser.parse_args(["orvideo", "spend", "--since", DAY, "--until", DAY, "-o", "json"])
    args.func(args)
    assert json.loads(capsys.readouterr().out)[0]["spent_usd"] == 1.25

    args = parser.parse_args(["orvideo", "spend", "--since", DAY, "--until", "2026-12-01"])
    with pytest.raises(SystemExit) as exited:
        args.func(args)
    assert exited.value.code == 1


def test_days_are_utc_days_or_words() -> None:
    today = datetime.now(timezone.utc)
    assert cli.utc_day("today") == today.strftime("%Y-%m-%d")
    assert cli.utc_day("Yesterday") == (today - timedelta(days=1)).strftime("%Y-%m-%d")
    assert cli.utc_day("2026-1-5") == "2026-01-05"
