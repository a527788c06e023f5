"""The task record (``_internal/task_record.py``): what a video task publishes is what the link,
the player page and the gallery read back, and no value a DAG author can push breaks a reader.

The round trip runs a real task (``dag.test()`` in a migrated Airflow home, against the emulator)
and reads its XComs back from the metadata database, and its job from the spend ledger, with the
pages' own queries.
"""

from __future__ import annotations

import ast
import json
import socket
import textwrap
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import airflow_provider_orvideo
from airflow_provider_orvideo._internal.request_fields import request_facts
from airflow_provider_orvideo._internal.task_record import (
    GENERATION_ID,
    JOB_ID,
    OUTPUT_CONN_ID,
    OUTPUT_HOST,
    OUTPUT_PATHS,
    OUTPUT_SIZES,
    RECORDED_KEYS,
    UNAVAILABLE_OUTPUTS,
    USAGE,
    VIDEO_REQUEST,
    SavedVideo,
    recorded_request,
    saved_paths,
    xcom_value,
)
from airflow_provider_orvideo._internal.versions import HAS_UI_PLUGINS
from airflow_provider_orvideo.links.openrouter_video import watch_path
from airflow_provider_orvideo.plugins._video_views import RecordedVideo, VideoTask
from tests.adversarial.conftest import airflow_env, airflow_home, run_dag_file  # noqa: F401 - a fixture

TASK = VideoTask("product_videos", "manual__2026-01-01T00:00:00+00:00", "render", -1)
REQUEST = {"model": "google/veo-3.1", "prompt": "A kite", "duration": 4, "resolution": "720p"}

# ------------------------------------------------------------------------------------ writer side


def test_a_download_publishes_today_s_keys_in_today_s_order() -> None:
    """The operator pushes these one by one; output_conn_id and unavailable_outputs only when set."""
    local = SavedVideo("job-1", "gen-1", 0.42, False, ("/v/a.mp4",), (1234,), "worker-3")
    assert local.xcoms() == [
        (GENERATION_ID, "gen-1"),
        (USAGE, {"cost": 0.42, "is_byok": False}),
        (OUTPUT_PATHS, ["/v/a.mp4"]),
        (OUTPUT_SIZES, [1234]),
        (OUTPUT_HOST, "worker-3"),
    ]
    stored = SavedVideo(
        "job-1", None, None, None, ("s3://b/a.mp4", "s3://b/a_1.mp4"), (5,), "worker-3", "aws_media", (1,)
    )
    assert [key for key, _ in stored.xcoms()] == [
        GENERATION_ID,
        USAGE,
        OUTPUT_PATHS,
        OUTPUT_SIZES,
        OUTPUT_HOST,
        OUTPUT_CONN_ID,
        UNAVAILABLE_OUTPUTS,
    ]
    assert dict(stored.xcoms())[UNAVAILABLE_OUTPUTS] == [1]
    assert dict(stored.xcoms())[USAGE] == {"cost": None, "is_byok": None}


def _reads_as_json_text(text: str) -> bool:
    try:
        return json.loads(text) is None or isinstance(json.loads(text), str)
    except ValueError:
        return False


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30).filter(
    lambda text: not _reads_as_json_text(text)
)
"""A string value pushed as such. One string is read as another value: the JSON text of a string
or of null (``'"x"'``, ``'null'``), which is how an XCom backend hands such values over."""
SAVED = st.builds(
    SavedVideo,
    job_id=TEXT.filter(bool),
    generation_id=st.none() | TEXT,
    cost=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    is_byok=st.none() | st.booleans(),
    paths=st.lists(TEXT, min_size=1, max_size=4).map(tuple),
    sizes=st.lists(st.integers(min_value=0, max_value=2**40), max_size=4).map(tuple),
    host=TEXT,
    conn_id=st.none() | TEXT.filter(bool),
    unavailable=st.lists(st.integers(min_value=1, max_value=9), unique=True, max_size=3).map(tuple),
)


def published(saved: SavedVideo) -> dict[str, Any]:
    """The XComs of a task instance that saved ``saved``: the job id ``execute`` pushed before
    paying, then what the download pushed."""
    return {JOB_ID: saved.job_id, **dict(saved.xcoms())}


@settings(max_examples=300)
@given(saved=SAVED)
def test_what_is_published_reads_back_as_it_was(saved: SavedVideo) -> None:
    assert SavedVideo.from_xcoms(published(saved)) == saved
    # An XCom backend or an older release hands the values over as JSON text.
    as_text = {key: json.dumps(value) for key, value in published(saved).items()}
    assert SavedVideo.from_xcoms(as_text) == saved


@given(saved=SAVED)
def test_the_pages_read_every_published_field(saved: SavedVideo) -> None:
    video = RecordedVideo.from_xcoms(TASK, {**published(saved), VIDEO_REQUEST: REQUEST})
    assert video is not None
    assert (video.locations, video.sizes, video.host, video.conn_id, video.cost, video.job_id) == (
        saved.paths,
        saved.sizes,
        saved.host,
        saved.conn_id,
        saved.cost,
        saved.job_id,
    )
    assert (video.missing_outputs, video.request) == (saved.unavailable, REQUEST)


def test_a_string_that_reads_as_json_keeps_its_value() -> None:
    """A host named 1234 is a host, not a number; JSON text of a string is decoded."""
    values = {OUTPUT_PATHS: ["/v/a.mp4"], OUTPUT_HOST: "1234", OUTPUT_CONN_ID: '"aws"', GENERATION_ID: "null"}
    saved = SavedVideo.from_xcoms(values)
    assert saved is not None
    assert (saved.host, saved.conn_id, saved.generation_id) == ("1234", "aws", None)


# ------------------------------------------------------------------------------------ hostile values

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10)
    | st.sampled_from(['["/v/a.mp4"]', "[1, 2]", '{"cost": "NaN"}', "null", '"x"', "{", "1e999"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
"""Anything a task can push under a key, as native values or the text an XCom backend returns."""


@settings(max_examples=500)
@given(values=st.dictionaries(st.sampled_from(RECORDED_KEYS), JSONISH))
def test_no_pushed_value_breaks_a_reader(values: dict[str, Any]) -> None:
    saved = SavedVideo.from_xcoms(values)
    if saved is not None:
        assert saved.paths
        assert all(isinstance(path, str) for path in saved.paths)
        assert all(size is None or (type(size) is int and size >= 0) for size in saved.sizes)
        assert all(type(index) is int and index >= 0 for index in saved.unavailable)
        assert saved.cost is None or isinstance(saved.cost, float)
        assert saved.is_byok is None or isinstance(saved.is_byok, bool)
        for text in (saved.job_id, saved.generation_id, saved.host, saved.conn_id):
            assert text is None or isinstance(text, str)
        assert saved.conn_id != ""
    video = RecordedVideo.from_xcoms(TASK, values)
    assert (video is None) == (saved is None or recorded_request(values) is None)
    assert isinstance(saved_paths(values.get(OUTPUT_PATHS)), tuple)


@pytest.mark.parametrize(
    "values",
    [
        {},
        {OUTPUT_PATHS: []},
        {OUTPUT_PATHS: "/v/a.mp4"},  # a path, not a list of them
        {OUTPUT_PATHS: "[]"},
        {OUTPUT_PATHS: {"0": "/v/a.mp4"}},
        {OUTPUT_PATHS: None, USAGE: {"cost": 1.0}},
    ],
)
def test_without_a_list_of_paths_nothing_was_saved(values: dict[str, Any]) -> None:
    assert SavedVideo.from_xcoms(values) is None


def test_values_of_another_shape_read_as_not_recorded() -> None:
    saved = SavedVideo.from_xcoms(
        {
            OUTPUT_PATHS: ["/v/a.mp4", 7],
            OUTPUT_SIZES: [10, -1, True, "12", 2**70],
            UNAVAILABLE_OUTPUTS: [True, -1, "1", 2],
            USAGE: {"cost": "0.5", "is_byok": "no"},
            OUTPUT_HOST: ["worker"],
            OUTPUT_CONN_ID: "",
            JOB_ID: 12,
        }
    )
    assert saved == SavedVideo(
        job_id=None,
        generation_id=None,
        cost=None,
        is_byok=None,
        paths=("/v/a.mp4", "7"),
        sizes=(10, None, None, None, 2**70),
        host=None,
        conn_id=None,
        unavailable=(2,),
    )


# ------------------------------------------------------------------------------------ one definition

READERS = (
    "links/openrouter_video.py",
    "plugins/_video_views.py",
    "plugins/_video_viewer.py",
    "plugins/_video_html.py",
    "plugins/_video_sources.py",
)
RECORD_KEY_VALUES = {*RECORDED_KEYS, "superseded_jobs", "openrouter_video_output_claim"}


@pytest.mark.parametrize("reader", READERS)
def test_readers_name_the_keys_through_the_task_record(reader: str) -> None:
    """A key spelled out in a reader is a second definition that can drift from the writer's."""
    tree = ast.parse((Path(airflow_provider_orvideo.__file__).parent / reader).read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    spelled = [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in RECORD_KEY_VALUES and id(node) not in docstrings
    ]
    assert spelled == []


def test_the_record_imports_nothing_of_airflow() -> None:
    """The dag-processor and the api-server import it: no Airflow, database or web stack."""
    import subprocess
    import sys

    code = (
        "import sys, airflow_provider_orvideo._internal.task_record; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'sqlalchemy', 'starlette'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ round trip

DAG_ID = "task_record_round_trip"
DAG = textwrap.dedent(
    f"""
    import datetime, os
    from airflow.sdk import DAG
    from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

    with DAG({DAG_ID!r}, schedule=None, start_date=datetime.datetime(2025, 1, 1)) as dag:
        OpenRouterVideoOperator(
            task_id="render",
            prompt="a kite over the dunes",
            model="google/veo-3.1",
            duration=4,
            resolution="720p",
            output_path=os.environ["OUT"] + "/clip.mp4",
            poll_interval=0.2,
            initial_poll_delays=[0.2],
        )

    if __name__ == "__main__":
        dag.test()
    """
)

READ_BACK = textwrap.dedent(
    """
    import json, sys
    from dataclasses import asdict
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from airflow_provider_orvideo._internal.task_record import RECORDED_KEYS, SavedVideo
    from airflow_provider_orvideo.links.openrouter_video import WatchVideoLink
    from airflow_provider_orvideo.plugins._video_viewer import load_gallery, load_spend, load_video
    from airflow_provider_orvideo.plugins._video_views import GalleryFilter, VideoTask

    dag_id = sys.argv[1]
    with create_session() as session:
        rows = dict(session.execute(
            select(XComModel.key, XComModel.value).where(XComModel.dag_id == dag_id, XComModel.task_id == "render")
        ).all())
    run_id = session_run_id = None
    with create_session() as session:
        run_id = session.scalar(select(XComModel.run_id).where(XComModel.dag_id == dag_id))

    def card(video):
        return None if video is None else {
            "task": asdict(video.task), "locations": video.locations, "sizes": video.sizes,
            "host": video.host, "conn_id": video.conn_id, "cost": video.cost, "job_id": video.job_id,
            "request": dict(video.request), "missing": video.missing_outputs, "try": video.try_number,
            "recorded": video.recorded_at is not None,
        }

    page = load_gallery({dag_id}, GalleryFilter())
    spend = load_spend({dag_id}, None, "2000-01-01", "9999-12-31")
    saved = SavedVideo.from_xcoms({key: rows.get(key) for key in RECORDED_KEYS})
    print(json.dumps({
        "run_id": run_id,
        "saved": None if saved is None else asdict(saved),
        "page": card(load_video(VideoTask(dag_id, run_id, "render", -1))),
        "gallery": [card(video) for video in page.videos],
        "spend": [row.to_dict() for row in spend.rows],
        "link": rows.get(WatchVideoLink().xcom_key),
    }))
    """
)


def test_what_a_real_task_publishes_is_what_the_link_and_the_pages_read(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
    emulator: Any,
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

    emulator.control.set_job_defaults(pending_seconds=0.2, in_progress_seconds=0.3, outputs=2, cost=0.42)
    out = tmp_path / "out"
    run = run_dag_file(airflow_home, emulator, DAG, DAG_ID, {"OUT": str(out)})
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    read = subprocess.run(
        [sys.executable, "-c", READ_BACK, DAG_ID],
        env=airflow_env(airflow_home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert read.returncode == 0, read.stderr[-6000:]
    back = json.loads(read.stdout.strip().splitlines()[-1])

    (job,) = emulator.control.jobs()
    paid = OpenRouterVideoHook().get_job(job["id"])
    paths = [str(out / "clip.mp4"), str(out / "clip_1.mp4")]
    expected = SavedVideo(
        job_id=paid.id,
        generation_id=paid.generation_id,
        cost=0.42,
        is_byok=False,
        paths=tuple(paths),
        sizes=tuple(Path(path).stat().st_size for path in paths),
        host=socket.gethostname(),
    )
    assert back["saved"] == json.loads(json.dumps(asdict(expected)))
    request = request_facts(emulator.control.requests("submit")[0]["body"])
    assert request["prompt"] == "a kite over the dunes"
    page = {
        "task": {"dag_id": DAG_ID, "run_id": back["run_id"], "task_id": "render", "map_index": -1},
        "locations": paths,
        "sizes": list(expected.sizes),
        "host": expected.host,
        "conn_id": None,
        "cost": 0.42,
        "job_id": paid.id,
        "request": request,
        "missing": [],
        "try": 1,
        "recorded": True,
    }
    assert back["page"] == page
    assert back["gallery"] == [{**page, "sizes": [], "job_id": None, "try": None}]  # a card reads less
    # The gallery's spend chart reads the spend ledger the task booked its job in (kept: not unkept).
    assert [
        (row["dag_id"], row["jobs"], row["spent_usd"], row["pending_usd"], row["unkept"])
        for row in back["spend"]
    ] == [(DAG_ID, 1, 0.42, 0.0, 0)]
    link = watch_path(DAG_ID, back["run_id"], "render", -1) if HAS_UI_PLUGINS else ""
    assert xcom_value(back["link"]) == link
