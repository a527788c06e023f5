"""OpenLineage datasets of a render, and the operator's facets with the OpenLineage provider."""

from __future__ import annotations

import socket
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from airflow_provider_orvideo._internal.lineage import dataset_of, media_sources
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from tests.helpers import RecordingTaskInstance, context_with, png_bytes, run_task


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/data/clip.mp4", ("file://w1", "/data/clip.mp4")),
        (PurePosixPath("/data/a.png"), ("file://w1", "/data/a.png")),
        ("file:///data/clip.mp4", ("file://w1", "/data/clip.mp4")),
        ("s3://media/clips/a.mp4", ("s3://media", "clips/a.mp4")),
        ("s3://aws_media@media/clips/a.mp4", ("s3://media", "clips/a.mp4")),
        ("gs://bucket/x.png", ("gs://bucket", "x.png")),
        ("https://example.com/a.png", None),
        ("data:image/png;base64,AAAA", None),
        (b"\x89PNG", None),
        ("relative/a.png", None),
    ],
)
def test_dataset_names_follow_openlineage(location: Any, expected: tuple[str, str] | None) -> None:
    assert dataset_of(location, "w1") == expected


def test_media_sources_come_from_frames_and_references() -> None:
    sources = list(
        media_sources(
            {"first_frame": "/a.png", "last_frame": "s3://b/c.png"},
            ["/d.mp3", {"kind": "image", "source": "/e.png"}],
        )
    )
    assert sources == ["/a.png", "s3://b/c.png", "/d.mp3", "/e.png"]


def test_the_operator_reports_media_in_and_videos_out(emulator: Any, tmp_path: Path) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    first = tmp_path / "first.png"
    first.write_bytes(png_bytes())
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, cost=0.5)
    operator = OpenRouterVideoOperator(
        task_id="render",
        prompt="p",
        model="google/veo-3.1",
        duration=4,
        output_path=str(tmp_path / "clip.mp4"),
        frame_images={"first_frame": str(first), "last_frame": "data:image/png;base64," + "iVBORw0KGgo="},
        poll_interval=0.05,
        initial_poll_delays=[0.05],
    )
    assert operator.get_openlineage_facets_on_complete(None).outputs == []  # nothing saved yet
    run_task(operator, context_with(RecordingTaskInstance()))
    lineage = operator.get_openlineage_facets_on_complete(None)
    host = socket.gethostname()
    assert [(d.namespace, d.name) for d in lineage.inputs] == [(f"file://{host}", str(first))]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        (f"file://{host}", str(tmp_path / "clip.mp4"))
    ]
    (job,) = emulator.control.jobs()
    assert lineage.run_facets["externalQuery"].externalQueryId == job["id"]
    facet = lineage.run_facets["openrouterVideo"]
    assert (facet.jobId, facet.model, facet.cost) == (job["id"], "google/veo-3.1", 0.5)


def test_the_operator_does_not_import_openlineage_until_asked(tmp_path: Path) -> None:
    """Nothing imports OpenLineage (its client, its extractors) until its listener asks for the
    facets, so a deployment without the provider parses and runs the operator as before.
    (Airflow itself reads every installed provider's ``get_provider_info``.)"""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator\n"
        f"op = OpenRouterVideoOperator(task_id='t', prompt='p', model='m', output_path={str(tmp_path / 'o.mp4')!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openlineage' or 'openlineage.extractors' in m))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
