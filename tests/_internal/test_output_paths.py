"""Pure parts of output path handling: derived locations of further outputs and of a kept-aside video."""

from __future__ import annotations

import pytest

from airflow_provider_orvideo._internal.output_paths import OutputTarget


@pytest.mark.parametrize(
    ("path", "index", "expected"),
    [
        ("/v/out.mp4", 0, "/v/out.mp4"),
        ("/v/out.mp4", 1, "/v/out_1.mp4"),
        ("s3://b/k/out.mp4", 2, "s3://b/k/out_2.mp4"),
        ("s3://conn@b/k/out.mp4", 1, "s3://conn@b/k/out_1.mp4"),
        ("/v/noext", 1, "/v/noext_1"),
    ],
)
def test_further_outputs_get_an_index_before_the_suffix(path: str, index: int, expected: str) -> None:
    assert OutputTarget(path).for_index(index).location == expected


@pytest.mark.parametrize(
    ("path", "job_id", "expected"),
    [
        ("/v/out.mp4", "gen-vid-1-AbC", "/v/out.gen-vid-1-AbC.mp4"),
        ("/v/noext", "j1", "/v/noext.j1"),
        ("s3://b/k/out.mp4", "a/b", "s3://b/k/out.a-b.mp4"),
    ],
)
def test_a_kept_aside_video_is_named_after_its_job(path: str, job_id: str, expected: str) -> None:
    assert OutputTarget(path).aside(job_id).location == expected


def test_the_storage_form_carries_the_connection() -> None:
    assert OutputTarget("s3://b/k.mp4", "aws_media").storage_uri == "s3://aws_media@b/k.mp4"
    assert OutputTarget("s3://named@b/k.mp4", None).storage_uri == "s3://named@b/k.mp4"
    assert OutputTarget("/v/k.mp4").storage_uri == "/v/k.mp4"
