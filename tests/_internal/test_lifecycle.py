"""Every money rule, held against :class:`VideoJobLifecycle` with a fake hook and a dict store.

No Airflow, no HTTP: milliseconds each. The same rules are held end to end by the ``dag.test()``
suites (tests/operators, tests/adversarial) and the real stacks (tests/system, tests/distributed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.api import VideoJob
from airflow_provider_orvideo._internal.atomic_output import AtomicOutput
from airflow_provider_orvideo._internal.lifecycle import (
    Resumption,
    TaskIdentity,
    VideoJobLifecycle,
)
from airflow_provider_orvideo._internal.output_paths import output_target, record_writer
from airflow_provider_orvideo._internal.submission import Action, OrphanPolicy
from airflow_provider_orvideo.exceptions import (
    OpenRouterAuthError,
    OpenRouterBadRequestError,
    OpenRouterNotFoundError,
    OpenRouterServerError,
    OpenRouterTransportError,
    OutputExistsError,
    OutputPathCollisionError,
    ResubmissionRefusedError,
    SubmitOutcomeUnknownError,
    VideoOutputGoneError,
)

BODY = {"model": "google/veo-3.1", "prompt": "a red fox", "trace": {"span_name": "t"}}
OTHER = {**BODY, "prompt": "a blue fox"}
IDENTITY = TaskIdentity("dag", "run", "task")
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(200)


class DictStore:
    """Airflow's task state store as a dict: survives "tries" (lifecycles) that share it."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


@dataclass
class FakeHook:
    """OpenRouter as the lifecycle sees it. ``posts`` counts every submit that reached it."""

    jobs: dict[str, VideoJob] = field(default_factory=dict)
    submit_error: Exception | None = None
    get_error: Exception | None = None
    gone: set[int] = field(default_factory=set)
    outputs: int = 1
    posts: int = 0
    downloads: int = 0

    def submit(self, body: Mapping[str, Any]) -> VideoJob:
        self.posts += 1
        if self.submit_error is not None:
            raise self.submit_error
        job = VideoJob(id=f"job-{len(self.jobs) + 1}", status="pending")
        self.jobs[job.id] = job
        return job

    def get_job(self, job_id: str) -> VideoJob:
        if self.get_error is not None:
            raise self.get_error
        return self.jobs[job_id]

    def finish(self, job_id: str, status: str = "completed", cost: float | None = 0.5) -> VideoJob:
        urls = tuple(f"u{i}" for i in range(self.outputs))
        self.jobs[job_id] = VideoJob(id=job_id, status=status, cost=cost, unsigned_urls=urls)
        return self.jobs[job_id]

    def save_output(self, job_id: str, index: int, output: AtomicOutput) -> int:
        if index in self.gone:
            raise VideoOutputGoneError(f"Output {index} of job {job_id} is gone.")
        self.downloads += 1
        output.open()
        output.write(MP4)
        output.commit()
        return output.bytes_written


def lifecycle(
    hook: FakeHook, store: DictStore | None, identity: TaskIdentity = IDENTITY, **options: Any
) -> VideoJobLifecycle:
    return VideoJobLifecycle(hook, store, identity, **options)


def try_once(hook: FakeHook, store: DictStore, body: Mapping[str, Any] = BODY, **options: Any) -> Resumption:
    """One try up to the POST: resume, and submit when the decision says so."""
    life = lifecycle(hook, store, **options)
    resumption = life.resume(body)
    if resumption.submits:
        life.submit(resumption, body)
    return resumption


# -- never pay twice ------------------------------------------------------------------------------


def test_a_retry_reattaches_to_the_job_it_submitted() -> None:
    hook, store = FakeHook(), DictStore()
    assert try_once(hook, store).submits
    again = try_once(hook, store)
    assert again.decision.action is Action.REATTACH
    assert again.job_id == "job-1"
    assert hook.posts == 1


def test_a_retry_after_completion_downloads_without_paying() -> None:
    hook, store = FakeHook(), DictStore()
    try_once(hook, store)
    hook.finish("job-1")
    again = try_once(hook, store)
    assert again.downloads
    assert again.job_id == "job-1"
    assert hook.posts == 1


def test_a_lost_submit_answer_keeps_the_intent_and_the_next_try_refuses() -> None:
    hook, store = FakeHook(submit_error=SubmitOutcomeUnknownError("answer lost")), DictStore()
    with pytest.raises(SubmitOutcomeUnknownError):
        try_once(hook, store)
    hook.submit_error = None
    with pytest.raises(ResubmissionRefusedError, match="never learned the job id"):
        try_once(hook, store)
    assert hook.posts == 1


def test_a_lost_answer_resubmits_only_when_asked() -> None:
    hook, store = FakeHook(submit_error=OpenRouterServerError("502", http_status=502)), DictStore()
    with pytest.raises(OpenRouterServerError):
        try_once(hook, store)
    hook.submit_error = None
    assert try_once(hook, store, orphan_policy=OrphanPolicy.RESUBMIT).submits
    assert hook.posts == 2


@pytest.mark.parametrize(
    "error",
    [
        OpenRouterBadRequestError("bad", http_status=400),
        OpenRouterTransportError("connection refused"),
    ],
)
def test_a_submit_that_created_nothing_forgets_the_intent(error: Exception) -> None:
    hook, store = FakeHook(submit_error=error), DictStore()
    with pytest.raises(type(error)):
        try_once(hook, store)
    assert store.values == {}
    hook.submit_error = None
    assert try_once(hook, store).submits


def test_a_failed_job_is_not_paid_for_again_unless_asked() -> None:
    hook, store = FakeHook(), DictStore()
    try_once(hook, store)
    hook.finish("job-1", status="failed")
    with pytest.raises(ResubmissionRefusedError, match="ended failed"):
        try_once(hook, store)
    assert try_once(hook, store, resubmit_failed=True).submits
    assert hook.posts == 2


def test_without_a_store_every_try_submits_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    hook = FakeHook()
    life = lifecycle(hook, None)
    resumption = life.resume(BODY)
    assert resumption.submits
    assert life.submit(resumption, BODY) == "job-1"
    assert "cannot re-attach" in caplog.text


def test_the_callback_url_goes_into_the_post_not_the_fingerprint() -> None:
    hook, store = FakeHook(), DictStore()
    sent: list[Mapping[str, Any]] = []
    original = hook.submit

    def spy(body: Mapping[str, Any]) -> VideoJob:
        sent.append(body)
        return original(body)

    hook.submit = spy  # type: ignore[method-assign]
    life = lifecycle(hook, store)
    life.submit(life.resume(BODY), BODY, callback_url="https://air.example/orvideo/webhook?x=1")
    assert sent[0]["callback_url"].startswith("https://air.example/")
    assert try_once(hook, store).decision.action is Action.REATTACH  # same video: no second POST


# -- re-attach after drift ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error", [OpenRouterNotFoundError("404", http_status=404), OpenRouterServerError("503", http_status=503)]
)
def test_a_404_or_an_outage_on_the_first_look_reattaches(error: Exception) -> None:
    hook, store = FakeHook(), DictStore()
    try_once(hook, store)
    hook.get_error = error
    again = try_once(hook, store)
    assert again.decision.action is Action.REATTACH
    assert again.job_id == "job-1"
    assert hook.posts == 1


def test_a_404_resubmits_under_orphan_policy_resubmit_and_keeps_the_old_job_on_record() -> None:
    hook, store = FakeHook(), DictStore()
    try_once(hook, store)
    hook.get_error = OpenRouterNotFoundError("404", http_status=404)
    again = try_once(hook, store, orphan_policy=OrphanPolicy.RESUBMIT)
    assert again.submits
    assert again.decision.supersedes == "job-1"
    hook.get_error = None
    third = try_once(hook, store)
    assert [entry["job_id"] for entry in third.superseded] == ["job-1"]


def test_a_refusal_to_look_is_raised_not_guessed() -> None:
    hook, store = FakeHook(), DictStore()
    try_once(hook, store)
    hook.get_error = OpenRouterAuthError("401", http_status=401)
    with pytest.raises(OpenRouterAuthError):
        try_once(hook, store)
    assert hook.posts == 1


# -- supersede, never forget ---------------------------------------------------------------------------


def test_a_changed_request_supersedes_the_earlier_job_and_reports_it_on_every_try() -> None:
    hook, store = FakeHook(), DictStore()
    try_once(hook, store)
    hook.finish("job-1", cost=1.25)
    published: list[tuple[dict[str, Any], ...]] = []
    life = lifecycle(hook, store)
    changed = life.resume(OTHER, on_superseded=published.append)
    assert changed.submits
    assert changed.decision.supersedes == "job-1"
    assert published[0][0] == {"job_id": "job-1", "status": "completed", "cost": 1.25, "outputs": []}
    life.submit(changed, OTHER)
    later = try_once(hook, store, body=OTHER)
    assert later.decision.action is Action.REATTACH
    assert [entry["job_id"] for entry in later.superseded] == ["job-1"]


def test_a_label_change_is_the_same_video() -> None:
    hook, store = FakeHook(), DictStore()
    try_once(hook, store)
    relabelled = {**BODY, "trace": {"span_name": "other"}, "user": "u", "session_id": "s"}
    assert try_once(hook, store, body=relabelled).decision.action is Action.REATTACH


def test_a_superseded_jobs_video_is_never_replaced_by_the_new_request(tmp_path: Path) -> None:
    hook, store = FakeHook(), DictStore()
    target = output_target(str(tmp_path / "clip.mp4"), None)
    try_once(hook, store)
    hook.finish("job-1")
    life = lifecycle(hook, store)
    life.save_outputs(hook.jobs["job-1"], target.location, None, overwrite=False, host="h")
    changed = life.resume(OTHER)
    with pytest.raises(OutputExistsError, match="job-1, which an earlier try of this task instance paid for"):
        life.check_output_free(changed, target, overwrite=False)


# -- paid means kept ----------------------------------------------------------------------------------


def test_outputs_are_saved_recorded_and_kept_by_a_retry(tmp_path: Path) -> None:
    hook, store = FakeHook(outputs=2), DictStore()
    target = output_target(str(tmp_path / "clip.mp4"), None)
    try_once(hook, store)
    job = hook.finish("job-1")
    saved = lifecycle(hook, store).save_outputs(job, target.location, None, overwrite=False, host="h")
    assert saved.paths == (str(tmp_path / "clip.mp4"), str(tmp_path / "clip_1.mp4"))
    assert saved.sizes == (len(MP4), len(MP4))
    again = lifecycle(hook, store).save_outputs(job, target.location, None, overwrite=False, host="h")
    assert again.paths == saved.paths
    assert hook.downloads == 2  # the retry downloaded nothing


def test_a_file_another_writer_made_meanwhile_is_kept_and_the_video_goes_beside_it(tmp_path: Path) -> None:
    hook, store = FakeHook(), DictStore()
    target = output_target(str(tmp_path / "clip.mp4"), None)
    try_once(hook, store)
    job = hook.finish("job-1")
    (tmp_path / "clip.mp4").write_bytes(b"someone else's video")
    saved = lifecycle(hook, store).save_outputs(job, target.location, None, overwrite=False, host="h")
    assert saved.paths == (str(tmp_path / "clip.job-1.mp4"),)
    assert (tmp_path / "clip.mp4").read_bytes() == b"someone else's video"


def test_a_replaced_output_is_downloaded_again_not_trusted(tmp_path: Path) -> None:
    hook, store = FakeHook(), DictStore()
    target = output_target(str(tmp_path / "clip.mp4"), None)
    try_once(hook, store)
    job = hook.finish("job-1")
    lifecycle(hook, store).save_outputs(job, target.location, None, overwrite=False, host="h")
    os.remove(tmp_path / "clip.mp4")
    (tmp_path / "clip.mp4").write_bytes(MP4)  # same size and signature, but another writer's
    record_writer(str(tmp_path / "clip.mp4"), {**IDENTITY.writer("job-1"), "run_id": "another run"})
    saved = lifecycle(hook, store).save_outputs(job, target.location, None, overwrite=False, host="h")
    assert saved.paths == (str(tmp_path / "clip.job-1.mp4"),)
    assert hook.downloads == 2


def test_a_missing_later_output_is_reported_and_the_first_kept(tmp_path: Path) -> None:
    hook, store = FakeHook(outputs=3, gone={1}), DictStore()
    target = output_target(str(tmp_path / "clip.mp4"), None)
    try_once(hook, store)
    saved = lifecycle(hook, store).save_outputs(
        hook.finish("job-1"), target.location, None, overwrite=False, host="h"
    )
    assert saved.unavailable == (1,)
    assert len(saved.paths) == 2


def test_a_missing_first_output_fails_the_download(tmp_path: Path) -> None:
    hook, store = FakeHook(gone={0}), DictStore()
    target = output_target(str(tmp_path / "clip.mp4"), None)
    try_once(hook, store)
    with pytest.raises(VideoOutputGoneError):
        lifecycle(hook, store).save_outputs(
            hook.finish("job-1"), target.location, None, overwrite=False, host="h"
        )
    assert not (tmp_path / "clip.mp4").exists()


def test_a_file_this_task_did_not_write_is_refused_before_paying(tmp_path: Path) -> None:
    hook, store = FakeHook(), DictStore()
    (tmp_path / "clip.mp4").write_bytes(MP4)
    record_writer(str(tmp_path / "clip.mp4"), {**IDENTITY.writer("job-9"), "dag_id": "other_dag"})
    life = lifecycle(hook, store)
    target = output_target(str(tmp_path / "clip.mp4"), None)
    with pytest.raises(OutputExistsError, match="Nothing was submitted"):
        life.check_output_free(life.resume(BODY), target, overwrite=False)
    life.check_output_free(life.resume(BODY), target, overwrite=True)  # asked for: no refusal
    assert hook.posts == 0


class Board:
    def __init__(self, claims: dict[int, str]) -> None:
        self.claims = claims

    def claim(self, location: str) -> list[int]:
        return sorted(index for index, claimed in self.claims.items() if claimed == location)


def test_two_map_indexes_rendering_one_path_are_refused_before_paying(tmp_path: Path) -> None:
    target = output_target(str(tmp_path / "clip.mp4"), None)
    mapped = TaskIdentity("dag", "run", "task", map_index=4)
    life = lifecycle(FakeHook(), DictStore(), identity=mapped)
    with pytest.raises(OutputPathCollisionError, match="map index 4 and for map index\\(es\\) 1, 2"):
        life.check_output_free(
            life.resume(BODY), target, overwrite=False, claims=Board({1: target.identity, 2: target.identity})
        )
    life.check_output_free(life.resume(BODY), target, overwrite=False, claims=Board({1: "elsewhere"}))


def test_the_decorators_fields_ride_in_the_store() -> None:
    store = DictStore()
    lifecycle(FakeHook(), store).carry_fields(
        {"prompt": "p", "output_path": Path("/data/a.mp4"), "seed": (1,)}
    )
    assert lifecycle(FakeHook(), store).carried_fields() == {
        "prompt": "p",
        "output_path": "/data/a.mp4",
        "seed": [1],
    }
    assert lifecycle(FakeHook(), None).carried_fields() == {}


# -- property: whatever happens between tries, one task instance creates at most one job ----------------

SUBMIT_OUTCOMES = st.sampled_from(["ok", "refused", "lost", "never_sent", "server_error"])
REMOTE = st.sampled_from(
    ["pending", "in_progress", "completed", "failed", "expired", "404", "outage", "weird"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tries=st.lists(st.tuples(SUBMIT_OUTCOMES, REMOTE, st.booleans()), min_size=1, max_size=8))
def test_default_policies_never_create_a_second_job(tries: list[tuple[str, str, bool]]) -> None:
    """Default policies (orphan_policy='fail', resubmit_failed_jobs=False), one request: across
    any sequence of tries, submit outcomes and remote states, at most one POST may have created a
    job; labels changing between tries (the trace) never count as a new request."""
    hook, store = FakeHook(), DictStore()
    created = 0
    errors = {
        "refused": OpenRouterBadRequestError("400", http_status=400),
        "lost": SubmitOutcomeUnknownError("lost"),
        "never_sent": OpenRouterTransportError("connection refused"),
        "server_error": OpenRouterServerError("502", http_status=502),
    }
    for number, (outcome, remote, relabel) in enumerate(tries):
        for job_id in list(hook.jobs):
            if remote in ("404", "outage"):
                continue
            hook.jobs[job_id] = VideoJob(id=job_id, status=remote)
        hook.get_error = {
            "404": OpenRouterNotFoundError("404", http_status=404),
            "outage": OpenRouterServerError("503", http_status=503),
        }.get(remote)
        hook.submit_error = errors.get(outcome)
        body = {**BODY, "trace": {"span_name": f"try {number}"}} if relabel else BODY
        posts = hook.posts
        try:
            try_once(hook, store, body=body)
        except (ResubmissionRefusedError, OpenRouterBadRequestError, OpenRouterTransportError):
            pass
        except (SubmitOutcomeUnknownError, OpenRouterServerError):
            pass
        if hook.posts > posts and outcome in ("ok", "lost", "server_error"):
            created += 1
        assert created <= 1


# -- the spend ledger -----------------------------------------------------------------------------


def booked(tmp_path: Path) -> Any:
    from airflow_provider_orvideo._internal.ledger import Ledger

    return Ledger.at(f"sqlite:///{tmp_path / 'ledger.sqlite'}")


def spend(estimate: float | None = 0.8, *budgets: Any) -> Any:
    from airflow_provider_orvideo._internal.lifecycle import Spend

    return Spend("google/veo-3.1", estimate, tuple(budgets))


def test_every_job_is_booked_from_reservation_to_kept(tmp_path: Path) -> None:
    hook, store, ledger = FakeHook(), DictStore(), booked(tmp_path)
    life = lifecycle(hook, store, ledger=ledger, conn_id="openrouter_default", try_number=1)
    job_id = life.submit(life.resume(BODY), BODY, spend=spend(0.8))
    row = ledger.entry(job_id)
    assert (row["status"], row["estimate_usd"], row["conn_id"], row["try_number"]) == (
        "submitted",
        0.8,
        "openrouter_default",
        1,
    )
    saved = life.save_outputs(
        hook.finish(job_id, cost=0.75), str(tmp_path / "v.mp4"), None, overwrite=False, host="h"
    )
    row = ledger.entry(job_id)
    assert (row["status"], row["cost_usd"], row["kept"]) == ("completed", 0.75, list(saved.paths))


def test_a_budget_refusal_comes_before_the_intent_and_the_post(tmp_path: Path) -> None:
    from airflow_provider_orvideo._internal.budgets import Budget, Window
    from airflow_provider_orvideo.exceptions import SpendBudgetExceededError

    hook, store, ledger = FakeHook(), DictStore(), booked(tmp_path)
    budget = Budget("DAG dag", 1.0, Window(), dag_ids=frozenset({"dag"}))
    life = lifecycle(hook, store, ledger=ledger, conn_id="c")
    life.submit(life.resume(BODY), BODY, spend=spend(0.6, budget))
    other = lifecycle(hook, DictStore(), TaskIdentity("dag", "run", "task", 1), ledger=ledger, conn_id="c")
    with pytest.raises(SpendBudgetExceededError, match="DAG dag"):
        other.submit(other.resume(BODY), BODY, spend=spend(0.6, budget))
    assert hook.posts == 1


def test_a_submit_that_created_nothing_releases_its_reservation(tmp_path: Path) -> None:
    from airflow_provider_orvideo._internal.budgets import Budget, Window

    ledger = booked(tmp_path)
    hook = FakeHook(submit_error=OpenRouterBadRequestError("bad", http_status=400))
    budget = Budget("b", 1.0, Window())
    life = lifecycle(hook, DictStore(), ledger=ledger, conn_id="c")
    with pytest.raises(OpenRouterBadRequestError):
        life.submit(life.resume(BODY), BODY, spend=spend(0.9, budget))
    hook.submit_error = None
    life = lifecycle(hook, DictStore(), ledger=ledger, conn_id="c")
    life.submit(life.resume(BODY), BODY, spend=spend(0.9, budget))  # the released 0.9 is free again


def test_a_superseded_job_names_its_successor_and_a_failed_save_is_unkept(tmp_path: Path) -> None:
    hook, store, ledger = FakeHook(), DictStore(), booked(tmp_path)
    life = lifecycle(hook, store, ledger=ledger, conn_id="c")
    life.submit(life.resume(BODY), BODY, spend=spend())
    hook.finish("job-1", cost=0.5)
    life = lifecycle(hook, store, ledger=ledger, conn_id="c")
    second = life.submit(life.resume(OTHER), OTHER, spend=spend())
    assert ledger.entry("job-1")["superseded_by"] == second
    hook.gone = {0}
    with pytest.raises(VideoOutputGoneError):
        life.save_outputs(
            hook.finish(second, cost=0.5), str(tmp_path / "v.mp4"), None, overwrite=False, host="h"
        )
    (unkept,) = [row for row in ledger.unkept() if row["job_id"] == second]
    assert "VideoOutputGoneError" in unkept["unkept_reason"]


def test_a_ledger_failure_after_paying_never_costs_the_video(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook, store, ledger = FakeHook(), DictStore(), booked(tmp_path)
    life = lifecycle(hook, store, ledger=ledger, conn_id="c")
    job_id = life.submit(life.resume(BODY), BODY, spend=spend())
    ledger.engine.dispose()
    (tmp_path / "ledger.sqlite").unlink()
    (tmp_path / "ledger.sqlite").mkdir()  # the database cannot be opened any more
    saved = life.save_outputs(hook.finish(job_id), str(tmp_path / "v.mp4"), None, overwrite=False, host="h")
    assert Path(saved.paths[0]).read_bytes() == MP4
    assert "spend ledger could not" in caplog.text


def test_the_spend_xcom_counts_every_job_of_the_task_instance(tmp_path: Path) -> None:
    """``spend`` reads the ledger: the superseded job of try 1 and try 2's job, with their costs."""
    from airflow_provider_orvideo._internal.task_record import SPEND

    class TI:
        def __init__(self) -> None:
            self.xcom: dict[str, Any] = {}

        def xcom_push(self, key: str, value: Any) -> None:
            self.xcom[key] = value

    hook, store, ledger = FakeHook(), DictStore(), booked(tmp_path)
    life = lifecycle(hook, store, ledger=ledger, conn_id="c", try_number=1)
    first = life.submit(life.resume(BODY), BODY, spend=spend(0.8))
    hook.finish(first, cost=0.5)
    life = lifecycle(hook, store, ledger=ledger, conn_id="c", try_number=2)
    second = life.submit(life.resume(OTHER), OTHER, spend=spend(0.8))
    life.save_outputs(
        hook.finish(second, cost=0.75), str(tmp_path / "v.mp4"), None, overwrite=False, host="h"
    )
    ti = TI()
    life.publish_spend(ti)
    record = ti.xcom[SPEND]
    assert [(j["job_id"], j["status"], j["cost_usd"], j["try_number"]) for j in record["jobs"]] == [
        (first, "completed", 0.5, 1),
        (second, "completed", 0.75, 2),
    ]
    assert record["jobs"][0]["superseded_by"] == second
    assert (record["spent_usd"], record["pending_usd"]) == (1.25, 0.0)
