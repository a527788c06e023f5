"""No paid video is ever silently replaced.

A file at ``output_path`` that this task instance did not write stops the task before it pays
(unless ``overwrite=True``); two map indexes rendering one path are caught before the second
pays; a file that appears while the job renders is kept, and the paid video goes beside it.
Every case counts the POSTs.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.exceptions import OutputExistsError, OutputPathCollisionError
from tests.adversarial.conftest import is_mp4, run_dag_file, run_tries, video_operator
from tests.helpers import (
    InMemoryTaskStateStore,
    RecordingTaskInstance,
    TaskDeferred,
    context_with,
    plain_text,
)

FOREIGN = b"a video someone else paid for"


def test_a_file_the_task_did_not_write_stops_it_before_paying(emulator: Any, tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(FOREIGN)
    tries = run_tries(emulator, lambda _: video_operator(output_path=str(target)), tries=3)
    assert len(tries.results) == 1, "not retried: the same file would stop every try"
    assert isinstance(tries.last, OutputExistsError)
    message = str(tries.last)
    assert f"output_path {str(target)!r} already exists" in message
    assert "this task instance did not write it" in message
    assert "overwrite=True" in message
    assert "{{ run_id }}" in message
    assert target.read_bytes() == FOREIGN
    assert tries.posts == 0


def test_the_refusal_names_the_task_instance_that_wrote_the_file(emulator: Any, tmp_path: Path) -> None:
    target = str(tmp_path / "2026-11-30" / "clip.mp4")
    first = run_tries(
        emulator,
        lambda _: video_operator(output_path=target),
        ti_factory=lambda: RecordingTaskInstance(run_id="scheduled__2026-11-30T06:00"),
    )
    assert first.last == target
    second = run_tries(
        emulator,
        lambda _: video_operator(output_path=target),
        ti_factory=lambda: RecordingTaskInstance(run_id="manual__2026-11-30T15:00"),
    )
    assert isinstance(second.last, OutputExistsError)
    message = str(second.last)
    assert "it was written by dag_id=pipeline" in message
    assert "run_id=scheduled__2026-11-30T06:00" in message
    assert f"job_id={first.ti.xcom['job_id']}" in message  # type: ignore[union-attr]
    assert second.posts == 1, "the second run of the day paid nothing"


def test_overwrite_true_replaces_the_file(emulator: Any, tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(FOREIGN)
    tries = run_tries(emulator, lambda _: video_operator(output_path=str(target), overwrite=True))
    assert tries.last == str(target)
    assert is_mp4(target)
    assert tries.posts == 1


def test_a_cleared_task_instance_re_attaches_and_keeps_its_own_file(emulator: Any, tmp_path: Path) -> None:
    target = str(tmp_path / "clip.mp4")
    store = InMemoryTaskStateStore()
    first = run_tries(emulator, lambda _: video_operator(output_path=target), store=store)
    rerun = run_tries(emulator, lambda _: video_operator(output_path=target), store=store)
    assert first.last == rerun.last == target
    assert is_mp4(target)
    assert rerun.posts == 1, "the re-run re-attached to the completed job"
    assert emulator.control.count("content") == 1, "its own complete file was kept, not fetched again"


def test_a_file_that_appears_while_the_job_renders_is_kept_and_the_video_goes_beside_it(
    emulator: Any, tmp_path: Path
) -> None:
    target = tmp_path / "clip.mp4"
    operator = video_operator(output_path=str(target))
    ti = RecordingTaskInstance()
    context = context_with(ti, InMemoryTaskStateStore())
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    target.write_bytes(FOREIGN)  # another run wrote the same path meanwhile

    async def first_event() -> Any:
        async for event in deferred.value.trigger.run():
            return event.payload

    path = operator.execute_complete(context, event=asyncio.run(first_event()))
    job_id = ti.xcom["job_id"]
    assert target.read_bytes() == FOREIGN, "never replaced"
    assert path == str(tmp_path / f"clip.{job_id}.mp4")
    assert is_mp4(path)
    assert ti.xcom["output_paths"] == [path]
    assert emulator.control.count("submit", "POST") == 1


def test_map_indexes_rendering_one_path_fail_before_the_second_pays(emulator: Any, tmp_path: Path) -> None:
    target = str(tmp_path / "clip.mp4")
    run_xcom: dict[Any, Any] = {}
    results = [
        run_tries(
            emulator,
            lambda _: video_operator(output_path=target),
            ti_factory=lambda index=index: RecordingTaskInstance(map_index=index, run_xcom=run_xcom),
        ).last
        for index in range(3)
    ]
    assert results[0] == target
    assert is_mp4(target)
    for index, error in enumerate(results[1:], start=1):
        assert isinstance(error, OutputPathCollisionError)
        assert f"for map index {index} and for map index(es) 0" in str(error)
        assert "{{ ti.map_index }}" in str(error)
    assert emulator.control.count("submit", "POST") == 1


def test_a_map_index_still_in_flight_is_seen_too(emulator: Any, tmp_path: Path) -> None:
    """Map index 1 claimed the path (it is rendering); map index 0, starting later, must not pay."""
    target = str(tmp_path / "clip.mp4")
    run_xcom: dict[Any, Any] = {
        ("render", 1, "openrouter_video_output_claim"): {"map_index": 1, "location": target}
    }
    tries = run_tries(
        emulator,
        lambda _: video_operator(output_path=target),
        ti_factory=lambda: RecordingTaskInstance(map_index=0, run_xcom=run_xcom),
    )
    assert isinstance(tries.last, OutputPathCollisionError)
    assert tries.posts == 0


def test_map_indexes_with_their_own_paths_all_pay_and_keep(emulator: Any, tmp_path: Path) -> None:
    run_xcom: dict[Any, Any] = {}
    paths = [
        run_tries(
            emulator,
            lambda _, index=index: video_operator(output_path=str(tmp_path / f"clip_{index}.mp4")),
            ti_factory=lambda index=index: RecordingTaskInstance(map_index=index, run_xcom=run_xcom),
        ).last
        for index in range(3)
    ]
    assert paths == [str(tmp_path / f"clip_{i}.mp4") for i in range(3)]
    assert all(is_mp4(p) for p in paths)
    assert emulator.control.count("submit", "POST") == 3


MAPPED_DAG = """
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    OpenRouterVideoOperator.partial(
        task_id="render",
        model="google/veo-3.1",
        duration=4,
        output_path="{output_path}",
        poll_interval=0.2,
        initial_poll_delays=(0.2,),
    ).expand(prompt=["a red kite", "a blue kite", "a green kite"])

if __name__ == "__main__":
    run = dag.test()
    for ti in sorted(run.get_task_instances(), key=lambda t: t.map_index):
        print("STATE", ti.map_index, ti.state)
"""


@pytest.mark.parametrize(
    ("dag_id", "file_name", "expected_states", "posts"),
    [
        pytest.param(
            "mapped_one_path",
            "clip.mp4",
            ["failed", "failed", "success"],
            1,
            id="one path for every map index",
        ),
        pytest.param(
            "mapped_own_paths",
            "clip_{{ ti.map_index }}.mp4",
            ["success", "success", "success"],
            3,
            id="a path per map index",
        ),
    ],
)
def test_mapped_task_in_real_airflow(
    emulator: Any,
    airflow_home: Path,
    tmp_path: Path,
    dag_id: str,
    file_name: str,
    expected_states: list[str],
    posts: int,
) -> None:
    source = textwrap.dedent(MAPPED_DAG).format(dag_id=dag_id, output_path=f"{tmp_path}/{file_name}")
    run = run_dag_file(airflow_home, emulator, source, dag_id)
    # dag.test() runs the map indexes in no fixed order: whichever claims the path first pays.
    states = sorted(line.split()[2] for line in run.stdout.splitlines() if line.startswith("STATE "))
    assert states == expected_states, run.stdout[-3000:] + run.stderr[-3000:]
    assert emulator.control.count("submit", "POST") == posts
    videos = sorted(p.name for p in tmp_path.iterdir())
    assert len(videos) == posts
    assert all(is_mp4(tmp_path / name) for name in videos)
    if posts == 1:
        assert "OutputPathCollisionError" in run.stdout + run.stderr
        assert "{{ ti.map_index }}" in plain_text(run.stdout + run.stderr)
