"""Findings of an adversarial sweep (after the first version of this suite), each kept as a test.

Money-losing ones first: inputs that passed every check, paid, then failed on every try; then
inputs that replaced a video the task did not write; then bare exceptions. Every case counts POSTs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo._internal.compat import AirflowNotFoundException
from airflow_provider_orvideo._internal.output_paths import output_target
from airflow_provider_orvideo._internal.submission import STATE_KEY
from airflow_provider_orvideo.decorators.openrouter_video import OpenRouterVideoDecoratedOperator
from airflow_provider_orvideo.exceptions import (
    InvalidConnectionError,
    InvalidOutputPathError,
    InvalidVideoRequestError,
    OutputPathCollisionError,
    VideoDownloadError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from tests.adversarial.conftest import is_mp4, run_tries, video_operator
from tests.helpers import (
    AIRFLOW_VERSION,
    InMemoryTaskStateStore,
    RecordingTaskInstance,
    TaskDeferred,
    context_with,
)
from tests.s3 import CONN_ID, S3

FOREIGN = b"a video someone else paid for"


def refused_before_paying(emulator: Any, tries: Any, error_class: type[Exception], fragment: str) -> None:
    assert isinstance(tries.last, error_class), repr(tries.last)
    assert fragment in str(tries.last)
    assert len(tries.results) == 1, "not retried"
    assert tries.posts == 0


# -- paid, then never kept: now refused before paying -----------------------------------------

PATHS: list[tuple[str, Any, str]] = [
    ("local:// under a file", lambda t: f"local://{t}/afile/clip.mp4", "afile is a file"),
    ("local:// relative", lambda t: "local://relative/clip.mp4", "names the host 'relative'"),
    ("local:// name too long", lambda t: f"local://{t}/{'n' * 250}.mp4", "has a name of 254 bytes"),
    ("longer than PATH_MAX", lambda t: f"{t}/" + ("a" * 200 + "/") * 22 + "clip.mp4", "bytes long; at most"),
    ("file:// with %00 in the name", lambda t: f"file://{t}/clip%00.mp4", "contains a NUL character (%00)"),
    ("file:// with %00 in a directory", lambda t: f"file://{t}/sub%00dir/clip.mp4", "NUL character"),
    ("a lone surrogate in the path", lambda t: f"{t}/c\ud800.mp4", "a lone surrogate"),
]


@pytest.mark.parametrize(("make_path", "fragment"), [pytest.param(p, f, id=i) for i, p, f in PATHS])
def test_output_paths_that_used_to_pay_and_fail(
    emulator: Any, tmp_path: Path, make_path: Any, fragment: str
) -> None:
    (tmp_path / "afile").write_bytes(b"a file")
    tries = run_tries(emulator, lambda _: video_operator(output_path=make_path(tmp_path)), tries=2)
    refused_before_paying(emulator, tries, InvalidOutputPathError, fragment)
    assert not (Path.cwd() / "relative").exists()


@pytest.mark.parametrize(
    ("make_path", "kwargs", "fragment"),
    [
        pytest.param(
            lambda s3: "s3:///clip.mp4", {"output_conn_id": CONN_ID}, "names no bucket", id="no bucket"
        ),
        pytest.param(lambda s3: f"s3://{CONN_ID}@/clip.mp4", {}, "names no bucket", id="conn but no bucket"),
        pytest.param(
            lambda s3: f"s3://{CONN_ID}@{s3.bucket}/videos/clip.mp4",
            {"overwrite": True},
            "names a directory (other objects are stored under it)",
            id="key that is a prefix, even with overwrite",
        ),
    ],
)
def test_object_storage_keys_that_used_to_pay_and_fail(
    emulator: Any, s3: S3, make_path: Any, kwargs: dict[str, Any], fragment: str
) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key="videos/clip.mp4/other.txt", Body=b"x")
    tries = run_tries(emulator, lambda _: video_operator(output_path=make_path(s3), **kwargs), tries=2)
    refused_before_paying(emulator, tries, InvalidOutputPathError, fragment)


def test_map_indexes_spelling_one_object_differently_collide(emulator: Any, s3: S3) -> None:
    """``s3://conn@b/k``, ``s3://b/k`` with ``output_conn_id`` and ``S3://conn@b/x/../k`` are one object."""
    spellings = [
        {"output_path": f"s3://{CONN_ID}@{s3.bucket}/m/clip.mp4"},
        {"output_path": f"s3://{s3.bucket}/m/clip.mp4", "output_conn_id": CONN_ID},
        {"output_path": f"S3://{CONN_ID}@{s3.bucket}/m/x/../clip.mp4"},
    ]
    identities = {
        output_target(k["output_path"], k.get("output_conn_id"), check=False).identity for k in spellings
    }
    assert identities == {f"s3://{s3.bucket}/m/clip.mp4"}
    # Map index 1 (the second spelling) claimed the object and is rendering; map index 0 must not pay.
    run_xcom: dict[Any, Any] = {
        ("render", 1, "openrouter_video_output_claim"): {"map_index": 1, "location": identities.pop()}
    }
    tries = run_tries(
        emulator,
        lambda _: video_operator(**spellings[0]),
        ti_factory=lambda: RecordingTaskInstance(map_index=0, run_xcom=run_xcom),
    )
    assert isinstance(tries.last, OutputPathCollisionError)
    assert tries.posts == 0
    normalised = run_tries(emulator, lambda _: video_operator(**spellings[2]))
    assert normalised.last == f"s3://{CONN_ID}@{s3.bucket}/m/clip.mp4", "the key is normalised once"
    assert "m/clip.mp4" in s3.keys()  # noqa: SIM118 - S3.keys() lists the bucket


# -- a video the task did not write is never replaced ------------------------------------------


def test_clearing_a_task_instance_never_replaces_another_runs_video(emulator: Any, tmp_path: Path) -> None:
    target = str(tmp_path / "clip.mp4")
    store_a = InMemoryTaskStateStore()
    first = run_tries(
        emulator,
        lambda _: video_operator(output_path=target),
        store=store_a,
        ti_factory=lambda: RecordingTaskInstance(run_id="run_A"),
    )
    assert first.last == target
    emulator.control.set_job_defaults(output_size=30_000)
    other = run_tries(
        emulator,
        lambda _: video_operator(output_path=target, prompt="another shot", overwrite=True),
        ti_factory=lambda: RecordingTaskInstance(run_id="run_B"),
    )
    assert other.last == target
    b_video = Path(target).read_bytes()
    again = run_tries(  # run A's task instance is cleared: it re-attaches to its own job
        emulator,
        lambda _: video_operator(output_path=target),
        store=store_a,
        ti_factory=lambda: RecordingTaskInstance(run_id="run_A"),
    )
    assert Path(target).read_bytes() == b_video, "run B's paid video is still where B returned it"
    job_a = first.ti.xcom["job_id"]  # type: ignore[union-attr]
    assert again.last == str(tmp_path / f"clip.{job_a}.mp4")
    assert is_mp4(again.last)
    assert again.posts == 2, "no new job for the cleared run"


def test_a_taken_side_name_is_not_replaced_either(emulator: Any, tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    operator = video_operator(output_path=str(target))
    ti = RecordingTaskInstance()
    context = context_with(ti, InMemoryTaskStateStore())
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    job_id = ti.xcom["job_id"]
    target.write_bytes(FOREIGN)
    aside = tmp_path / f"clip.{job_id}.mp4"
    aside.write_bytes(b"also someone else's")

    async def first_event() -> Any:
        async for event in deferred.value.trigger.run():
            return event.payload

    path = operator.execute_complete(context, event=asyncio.run(first_event()))
    assert target.read_bytes() == FOREIGN
    assert aside.read_bytes() == b"also someone else's"
    assert Path(path).name.startswith(f"clip.{job_id}.")
    assert is_mp4(path)
    assert emulator.control.count("submit", "POST") == 1


def test_a_second_output_that_is_gone_keeps_the_first(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(outputs=2)
    emulator.control.add_fault("content", "delay", seconds=0)  # consumed by output 0
    emulator.control.add_fault("content", "vanish", times=20)  # output 1 is gone for good
    target = str(tmp_path / "clip.mp4")
    tries = run_tries(emulator, lambda _: video_operator(output_path=target), tries=2)
    assert tries.last == target
    assert is_mp4(target)
    assert tries.ti is not None
    assert tries.ti.xcom["output_paths"] == [target]
    assert tries.ti.xcom["unavailable_outputs"] == [1]
    assert tries.posts == 1


# -- after paying, every failure is retryable and keeps the job id -----------------------------


def test_a_resume_that_cannot_tell_where_to_save_is_retryable(emulator: Any, tmp_path: Path) -> None:
    """A decorated task resumed on a new instance without a state store has lost its returned
    ``output_path``: the failure must not end the task for good after paying."""

    def make() -> OpenRouterVideoDecoratedOperator:
        return OpenRouterVideoDecoratedOperator(
            task_id="render",
            python_callable=lambda: {"prompt": "a kite", "output_path": str(tmp_path / "clip.mp4")},
            model="google/veo-3.1",
            duration=4,
            poll_interval=0.05,
            initial_poll_delays=(0.05,),
        )

    context = context_with(RecordingTaskInstance())
    with pytest.raises(TaskDeferred) as deferred:
        make().execute(context)

    async def first_event() -> Any:
        async for event in deferred.value.trigger.run():
            return event.payload

    with pytest.raises(VideoDownloadError) as failure:
        make().execute_complete(context, event=asyncio.run(first_event()))
    assert not isinstance(failure.value, InvalidVideoRequestError), "retryable"
    assert "is complete and paid" in str(failure.value)
    assert emulator.control.count("submit", "POST") == 1


class StoreFailingOnce(InMemoryTaskStateStore):
    """The api-server goes away right when the job id is to be recorded."""

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        if key == STATE_KEY and value.get("phase") == "submitted" and not getattr(self, "failed", False):
            self.failed = True
            raise ConnectionError("api-server unavailable")
        super().set(key, value)


def test_a_job_id_that_cannot_be_recorded_is_logged(
    emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tries = run_tries(
        emulator,
        lambda _: video_operator(output_path=str(tmp_path / "c.mp4")),
        store=StoreFailingOnce(),
        tries=2,
    )
    job_id = emulator.control.jobs()[0]["id"]
    assert f"OpenRouter video job {job_id} was created (it renders and bills) but could not be recorded" in (
        capsys.readouterr().out
    )
    assert tries.posts == 1, "the next try does not pay blindly (orphan_policy='fail')"


# -- bare exceptions before paying --------------------------------------------------------------

REQUESTS: list[tuple[str, dict[str, Any]]] = [
    (
        "provider option with keys of mixed types",
        {"provider_options": {"google-vertex": {"negativePrompt": {1: "a", "b": 2}}}},
    ),
    (
        "provider option with a lone surrogate",
        {"provider_options": {"google-vertex": {"negativePrompt": "blur\ud800"}}},
    ),
    (
        "https reference with a lone surrogate",
        {"input_references": [{"kind": "image", "source": "https://cdn.example/a\ud800.png"}]},
    ),
    (
        "https frame with a lone surrogate",
        {"frame_images": {"first_frame": "https://cdn.example/a\ud800.png"}},
    ),
]


@pytest.mark.parametrize("kwargs", [pytest.param(k, id=i) for i, k in REQUESTS])
def test_requests_that_raised_bare_exceptions(emulator: Any, tmp_path: Path, kwargs: dict[str, Any]) -> None:
    tries = run_tries(emulator, lambda _: video_operator(output_path=str(tmp_path / "c.mp4"), **kwargs))
    assert isinstance(tries.last, InvalidVideoRequestError), repr(tries.last)
    assert tries.posts == 0


CONNECTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("unclosed IPv6 host", {"host": "http://[::1/api/v1"}, "do not make a URL"),
    ("port out of range", {"host": "http://127.0.0.1:99999/api/v1", "port": 5}, "Port out of range"),
    ("extra is a list", {"extra": [1, 2]}, "its extra is a list"),
    ("timeout overflows the clock", {"extra": {"timeout": 1e12}}, "at most 86,400"),
]


@pytest.mark.parametrize(("fields", "fragment"), [pytest.param(f, m, id=i) for i, f, m in CONNECTIONS])
def test_connections_that_raised_bare_exceptions(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], fragment: str
) -> None:
    connection = {
        "conn_type": "openrouter",
        "host": emulator.base_url,
        "password": emulator.api_key,
        **fields,
    }
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_DEFAULT", json.dumps(connection))
    if AIRFLOW_VERSION < (3, 2) and isinstance(fields.get("extra"), list):
        # Airflow 3.0 and 3.1 cannot build a connection whose extra is a list: they report it as missing.
        with pytest.raises(AirflowNotFoundException) as missing:
            OpenRouterVideoHook().list_models(max_age=0)
        assert emulator.api_key not in str(missing.value)
        assert emulator.control.requests() == []
        return
    with pytest.raises(InvalidConnectionError) as failure:
        OpenRouterVideoHook().list_models(max_age=0)
    assert fragment in str(failure.value)
    assert emulator.api_key not in str(failure.value)
    assert emulator.control.requests() == []


@pytest.mark.parametrize(
    "entry",
    [
        {"job_id": "gen-vid-x", "cost": "1.0", "outputs": [1, 2]},
        {"job_id": "gen-vid-x", "outputs": 5},
        {"job_id": "gen-vid-x", "outputs": "abc", "status": None},
        {"cost": 1.0},
        "not an entry",
    ],
)
def test_hand_edited_superseded_entries_are_read_safely(emulator: Any, tmp_path: Path, entry: Any) -> None:
    store = InMemoryTaskStateStore()
    store.values[STATE_KEY] = {
        "version": 2,
        "fingerprint": "other",
        "phase": "submitted",
        "job_id": None,
        "outputs": {},
        "superseded": [entry],
    }
    tries = run_tries(emulator, lambda _: video_operator(output_path=str(tmp_path / "c.mp4")), store=store)
    assert tries.last == str(tmp_path / "c.mp4"), repr(tries.last)
    assert tries.posts == 1


def test_a_decorator_returning_path_objects_and_tuples_is_stored_as_json(
    emulator: Any, tmp_path: Path
) -> None:
    class JsonOnlyStore(InMemoryTaskStateStore):
        def set(self, key: str, value: Any, *, retention: Any = None) -> None:
            json.dumps(value)  # Airflow's store model takes JSON values only
            super().set(key, value)

    operator = OpenRouterVideoDecoratedOperator(
        task_id="render",
        python_callable=lambda: {
            "prompt": "a kite",
            "output_path": tmp_path / "clip.mp4",
            "trace": {"tags": ("a", "b")},
        },
        model="google/veo-3.1",
        duration=4,
        poll_interval=0.05,
        initial_poll_delays=(0.05,),
    )
    tries = run_tries(emulator, lambda _: operator, store=JsonOnlyStore())
    assert tries.last == str(tmp_path / "clip.mp4"), repr(tries.last)
    assert tries.posts == 1
