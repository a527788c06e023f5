from __future__ import annotations

import pytest

from airflow_provider_orvideo.api import VideoJob
from airflow_provider_orvideo.resume import (
    Action,
    OrphanPolicy,
    SubmissionLedger,
    SubmissionRecord,
    decide,
    fingerprint,
    needs_remote_check,
)
from tests.helpers import InMemoryTaskStateStore

BODY = {"model": "google/veo-3.1", "prompt": "p", "trace": {"airflow_run_id": "r1", "airflow_map_index": 2}}
DIGEST = fingerprint(BODY)
SUBMITTED = SubmissionRecord.intent(BODY).submitted("gen-vid-1")
OTHER_BODY = {**BODY, "prompt": "q"}


def job(status: str, error: str | None = None) -> VideoJob:
    return VideoJob(id="gen-vid-1", status=status, error=error)


def test_fingerprint_ignores_key_order_and_sees_any_change_of_the_video() -> None:
    assert fingerprint({"b": 1, "a": {"y": 2, "x": 1}}) == fingerprint({"a": {"x": 1, "y": 2}, "b": 1})
    assert fingerprint(OTHER_BODY) != DIGEST


@pytest.mark.parametrize(
    "labels",
    [
        {"trace": {"attempt": "2"}},
        {"user": "someone-else"},
        {"session_id": "2026-11-30T10:00:00"},
        {"trace": {"airflow_run_id": "r1", "ts": 1.5}, "user": "u", "session_id": "s"},
    ],
)
def test_labels_never_change_the_fingerprint(labels: dict[str, object]) -> None:
    assert fingerprint({**BODY, **labels}) == DIGEST
    assert SUBMITTED.matches({**BODY, **labels})


def test_a_version_1_record_compares_the_whole_body() -> None:
    legacy = SubmissionRecord(
        fingerprint=fingerprint(BODY, version=1), phase="submitted", job_id="j", version=1
    )
    assert legacy.matches(BODY)
    assert not legacy.matches({**BODY, "user": "u"})
    assert SubmissionRecord.from_json(legacy.to_json()) == legacy


@pytest.mark.parametrize(
    ("record", "remote", "policy", "resubmit", "action"),
    [
        (None, None, OrphanPolicy.FAIL, True, Action.SUBMIT),
        (SubmissionRecord.intent(OTHER_BODY), None, OrphanPolicy.FAIL, True, Action.SUBMIT),
        (SubmissionRecord.intent(BODY), None, OrphanPolicy.FAIL, True, Action.REFUSE),
        (SubmissionRecord.intent(BODY), None, OrphanPolicy.RESUBMIT, True, Action.SUBMIT),
        (SUBMITTED, job("pending"), OrphanPolicy.FAIL, True, Action.REATTACH),
        (SUBMITTED, job("in_progress"), OrphanPolicy.FAIL, True, Action.REATTACH),
        (SUBMITTED, job("paused"), OrphanPolicy.FAIL, True, Action.REATTACH),
        (SUBMITTED, job("completed"), OrphanPolicy.FAIL, True, Action.DOWNLOAD),
        (SUBMITTED, job("failed", "Content policy violation"), OrphanPolicy.FAIL, True, Action.SUBMIT),
        (SUBMITTED, job("cancelled"), OrphanPolicy.FAIL, True, Action.SUBMIT),
        (SUBMITTED, job("expired"), OrphanPolicy.FAIL, True, Action.SUBMIT),
        (SUBMITTED, job("failed"), OrphanPolicy.FAIL, False, Action.REFUSE),
        (SUBMITTED, None, OrphanPolicy.FAIL, True, Action.SUBMIT),  # vanished: nothing to re-attach to
    ],
)
def test_decision_table(
    record: SubmissionRecord | None,
    remote: VideoJob | None,
    policy: OrphanPolicy,
    resubmit: bool,
    action: Action,
) -> None:
    decision = decide(record, BODY, remote=remote, orphan_policy=policy, resubmit_failed=resubmit)
    assert decision.action is action
    if action in (Action.REATTACH, Action.DOWNLOAD):
        assert decision.job_id == "gen-vid-1"


def test_remote_check_for_every_recorded_job() -> None:
    assert needs_remote_check(SUBMITTED)
    assert not needs_remote_check(SubmissionRecord.intent(BODY))
    assert not needs_remote_check(None)


@pytest.mark.parametrize("remote", [job("completed"), job("in_progress"), None])
def test_a_changed_request_supersedes_the_earlier_job(remote: VideoJob | None) -> None:
    decision = decide(
        SUBMITTED, OTHER_BODY, remote=remote, orphan_policy=OrphanPolicy.FAIL, resubmit_failed=True
    )
    assert decision.action is Action.SUBMIT
    assert decision.supersedes == "gen-vid-1"
    assert "kept on record" in decision.reason


def test_record_round_trips_through_a_store_as_json() -> None:
    store = InMemoryTaskStateStore()
    ledger = SubmissionLedger(store)
    record = SUBMITTED.with_output("/v/out.mp4", 1234)
    ledger.save(record)
    assert store.values["openrouter_video"] == {
        "version": 2,
        "fingerprint": DIGEST,
        "phase": "submitted",
        "job_id": "gen-vid-1",
        "outputs": {"/v/out.mp4": 1234},
        "superseded": [],
    }
    assert ledger.load() == record
    ledger.clear()
    assert ledger.load() is None


@pytest.mark.parametrize(
    "stored", [None, "garbage", {"version": 99, "fingerprint": "x", "phase": "intent"}, {"version": 1}]
)
def test_unreadable_records_count_as_absent(stored: object) -> None:
    assert SubmissionRecord.from_json(stored) is None


def test_without_a_store_nothing_is_remembered() -> None:
    ledger = SubmissionLedger(None)
    ledger.save(SUBMITTED)
    assert ledger.load() is None
    assert not ledger.durable
