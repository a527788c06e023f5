from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.api import VideoJob, parse_job
from airflow_provider_orvideo._internal.submission import (
    NOTHING_CREATED_STATUSES,
    Action,
    OrphanPolicy,
    RemoteUnknown,
    SubmissionLedger,
    SubmissionRecord,
    decide,
    fingerprint,
    needs_remote_check,
    submit_created_nothing,
)
from airflow_provider_orvideo.exceptions import (
    InvalidConnectionError,
    OpenRouterApiError,
    OpenRouterAuthError,
    OpenRouterBadRequestError,
    OpenRouterConflictError,
    OpenRouterPaymentRequiredError,
    OpenRouterRateLimitError,
    OpenRouterServerError,
    OpenRouterTransportError,
    SubmitOutcomeUnknownError,
)
from airflow_provider_orvideo.retry import RetryPolicy
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
        # A 404 or an outage is no proof the paid job is gone: re-attach (the wait polls it until its
        # deadline); only orphan_policy="resubmit" pays again after a 404, keeping the old id.
        (SUBMITTED, RemoteUnknown("HTTP 404", not_found=True), OrphanPolicy.FAIL, True, Action.REATTACH),
        (SUBMITTED, RemoteUnknown("HTTP 503"), OrphanPolicy.FAIL, True, Action.REATTACH),
        (SUBMITTED, RemoteUnknown("HTTP 503"), OrphanPolicy.RESUBMIT, True, Action.REATTACH),
        (SUBMITTED, RemoteUnknown("HTTP 404", not_found=True), OrphanPolicy.RESUBMIT, True, Action.SUBMIT),
    ],
)
def test_decision_table(
    record: SubmissionRecord | None,
    remote: VideoJob | RemoteUnknown | None,
    policy: OrphanPolicy,
    resubmit: bool,
    action: Action,
) -> None:
    decision = decide(record, BODY, remote=remote, orphan_policy=policy, resubmit_failed=resubmit)
    assert decision.action is action
    if action in (Action.REATTACH, Action.DOWNLOAD):
        assert decision.job_id == "gen-vid-1"
    if isinstance(remote, RemoteUnknown) and action is Action.SUBMIT:
        assert decision.supersedes == "gen-vid-1"  # the old id stays on record


_REMOTES = st.one_of(
    st.builds(RemoteUnknown, st.text(max_size=20), st.booleans()),
    st.builds(
        lambda status: parse_job({"id": "gen-vid-1", "status": status}),
        st.sampled_from(["pending", "in_progress", "paused", "completed", "failed", "cancelled", "expired"]),
    ),
)


@given(
    remote=_REMOTES,
    policy=st.sampled_from(list(OrphanPolicy)),
    resubmit=st.booleans(),
)
def test_a_recorded_job_is_never_paid_again_without_proof_or_consent(
    remote: VideoJob | RemoteUnknown, policy: OrphanPolicy, resubmit: bool
) -> None:
    """Whatever OpenRouter answers about the job an earlier try was given, this try pays again only
    for a job OpenRouter says ended without a video (with resubmit_failed_jobs), or after a 404
    with orphan_policy='resubmit'; and then the old job stays on record."""
    decision = decide(SUBMITTED, BODY, remote=remote, orphan_policy=policy, resubmit_failed=resubmit)
    if decision.action is not Action.SUBMIT:
        return
    if isinstance(remote, RemoteUnknown):
        assert remote.not_found
        assert policy is OrphanPolicy.RESUBMIT
        assert decision.supersedes == "gen-vid-1"
    else:
        assert remote.status in ("failed", "cancelled", "expired")
        assert resubmit


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


@pytest.mark.parametrize(
    ("error", "created_nothing"),
    [
        (OpenRouterBadRequestError("x", http_status=400), True),
        (OpenRouterAuthError("x", http_status=401), True),
        (OpenRouterPaymentRequiredError("x", http_status=402), True),
        (OpenRouterRateLimitError("x", http_status=429), True),
        (OpenRouterApiError("x", http_status=408), False),  # a proxy's timeout after the POST left
        (OpenRouterConflictError("x", http_status=409), False),
        (OpenRouterServerError("x", http_status=502), False),
        (OpenRouterTransportError("connection refused"), True),
        (InvalidConnectionError("unusable key"), True),
        (SubmitOutcomeUnknownError("answer lost"), False),
        (RuntimeError("anything else"), False),
    ],
)
def test_only_proof_that_no_job_exists_frees_the_next_try(
    error: BaseException, created_nothing: bool
) -> None:
    assert submit_created_nothing(error) is created_nothing
    if isinstance(error, OpenRouterApiError):
        assert (error.http_status in NOTHING_CREATED_STATUSES) is created_nothing


def test_a_lost_submit_answer_frees_nothing_wherever_its_class_sits() -> None:
    """Money safety rests on ``request_left``, not on the hierarchy: a SubmitOutcomeUnknownError
    that were also an OpenRouterTransportError (as it could well be) still frees nothing."""
    as_subclass = type("SubmitOutcomeUnknownError", (OpenRouterTransportError,), {"request_left": True})
    as_mixin = type("LostAnswer", (SubmitOutcomeUnknownError, OpenRouterTransportError), {})
    for cls in (as_subclass, as_mixin):
        error = cls("The submit request (POST /videos) was sent but no answer came back.")
        assert isinstance(error, OpenRouterTransportError)
        assert submit_created_nothing(error) is False
    sent = OpenRouterTransportError("No answer from OpenRouter for POST /videos (reset).")
    sent.request_left = True  # the retry engine's mark on an exchange broken after sending
    assert submit_created_nothing(sent) is False


@pytest.mark.parametrize("request_left", [None, True])
def test_an_error_that_does_not_prove_the_request_stayed_frees_nothing(request_left: bool | None) -> None:
    error = InvalidConnectionError("unusable key")
    error.request_left = request_left
    assert submit_created_nothing(error) is False


def test_a_submit_is_retried_only_on_an_answer_that_proves_nothing_was_created() -> None:
    policy = RetryPolicy()
    for status in (400, 402, 408, 409, 500, 502, 503):
        assert (
            policy.delay_after_status(idempotent=False, attempt=1, status_code=status, retry_after=0) is None
        )
    assert policy.delay_after_status(idempotent=False, attempt=1, status_code=429, retry_after=0) == 0
