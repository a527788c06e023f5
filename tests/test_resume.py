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
SUBMITTED = SubmissionRecord.intent(DIGEST).submitted("gen-vid-1")


def job(status: str, error: str | None = None) -> VideoJob:
    return VideoJob(id="gen-vid-1", status=status, error=error)


def test_fingerprint_ignores_key_order_and_sees_any_change() -> None:
    assert fingerprint({"b": 1, "a": {"y": 2, "x": 1}}) == fingerprint({"a": {"x": 1, "y": 2}, "b": 1})
    assert fingerprint({**BODY, "prompt": "q"}) != DIGEST


@pytest.mark.parametrize(
    ("record", "remote", "policy", "resubmit", "action"),
    [
        (None, None, OrphanPolicy.FAIL, True, Action.SUBMIT),
        (SubmissionRecord.intent("other"), None, OrphanPolicy.FAIL, True, Action.SUBMIT),
        (SubmissionRecord.intent(DIGEST), None, OrphanPolicy.FAIL, True, Action.REFUSE),
        (SubmissionRecord.intent(DIGEST), None, OrphanPolicy.RESUBMIT, True, Action.SUBMIT),
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
    decision = decide(record, DIGEST, remote=remote, orphan_policy=policy, resubmit_failed=resubmit)
    assert decision.action is action
    if action in (Action.REATTACH, Action.DOWNLOAD):
        assert decision.job_id == "gen-vid-1"


def test_remote_check_only_for_a_recorded_job_of_the_same_request() -> None:
    assert needs_remote_check(SUBMITTED, DIGEST)
    assert not needs_remote_check(SUBMITTED, "other")
    assert not needs_remote_check(SubmissionRecord.intent(DIGEST), DIGEST)
    assert not needs_remote_check(None, DIGEST)


def test_record_round_trips_through_a_store_as_json() -> None:
    store = InMemoryTaskStateStore()
    ledger = SubmissionLedger(store)
    record = SUBMITTED.with_output("/v/out.mp4", 1234)
    ledger.save(record)
    assert store.values["openrouter_video"] == {
        "version": 1,
        "fingerprint": DIGEST,
        "phase": "submitted",
        "job_id": "gen-vid-1",
        "outputs": {"/v/out.mp4": 1234},
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
