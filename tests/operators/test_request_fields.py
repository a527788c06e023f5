"""Every request field reaches OpenRouter (the emulator, which checks them as OpenRouter does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.media import to_data_url
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from tests.helpers import MP3_BYTES, RecordingTaskInstance, TaskDeferred, context_with, png_bytes


def submit_with(tmp_path: Path, ti: RecordingTaskInstance | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run execute() up to the deferral and return the body the emulator received."""
    arguments: dict[str, Any] = {
        "task_id": "render",
        "prompt": "a kite in the wind",
        "model": "google/veo-3.1",
        "output_path": str(tmp_path / "out.mp4"),
        **kwargs,
    }
    with pytest.raises(TaskDeferred):
        OpenRouterVideoOperator(**arguments).execute(context_with(ti or RecordingTaskInstance()))
    return arguments


def last_body(emulator: Any) -> dict[str, Any]:
    bodies = [r["body"] for r in emulator.control.requests("submit") if r["status"] == 202]
    assert bodies, emulator.control.requests("submit")
    return bodies[-1]


def test_first_and_last_frames_from_a_file_and_bytes(emulator: Any, tmp_path: Path) -> None:
    first = tmp_path / "product.png"
    first.write_bytes(png_bytes(4, 4))
    submit_with(tmp_path, frame_images={"first_frame": str(first), "last_frame": png_bytes()})
    body = last_body(emulator)
    assert body["frame_images"] == [
        {
            "type": "image_url",
            "image_url": {"url": to_data_url(png_bytes(4, 4))},
            "frame_type": "first_frame",
        },
        {"type": "image_url", "image_url": {"url": to_data_url(png_bytes())}, "frame_type": "last_frame"},
    ]


def test_references_of_each_kind(emulator: Any, tmp_path: Path) -> None:
    submit_with(
        tmp_path,
        model="bytedance/seedance-2.0",
        duration=4,
        input_references=[png_bytes(), MP3_BYTES, "https://cdn.example/style.mp4"],
    )
    assert [item["type"] for item in last_body(emulator)["input_references"]] == [
        "image_url",
        "audio_url",
        "video_url",
    ]
    assert last_body(emulator)["input_references"][2] == {
        "type": "video_url",
        "video_url": {"url": "https://cdn.example/style.mp4"},
    }


def test_both_arrays_warn_that_frames_win(
    emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submit_with(tmp_path, frame_images={"first_frame": png_bytes()}, input_references=[png_bytes()])
    logs = capsys.readouterr().out
    assert "OpenRouter uses frame_images" in logs
    assert "input_references" in last_body(emulator)  # sent as given; OpenRouter decides


def test_provider_options_become_passthrough_parameters(emulator: Any, tmp_path: Path) -> None:
    submit_with(tmp_path, provider_options={"google-vertex": {"negativePrompt": "blurry, text"}})
    assert last_body(emulator)["provider"] == {
        "options": {"google-vertex": {"parameters": {"negativePrompt": "blurry, text"}}}
    }


def test_observability_fields_and_trace_defaults(emulator: Any, tmp_path: Path) -> None:
    ti = RecordingTaskInstance(
        dag_id="daily_ads", task_id="render", run_id="scheduled__2026-11-24", map_index=3
    )
    submit_with(
        tmp_path,
        ti,
        session_id="campaign-42",
        user="team-video",
        trace={"trace_name": "ads", "cost_center": "mkt"},
    )
    body = last_body(emulator)
    assert body["session_id"] == "campaign-42"
    assert body["user"] == "team-video"
    assert body["trace"] == {
        "trace_id": "airflow:daily_ads:scheduled__2026-11-24",
        "trace_name": "ads",  # the user's value wins over the default
        "span_name": "render[3]",
        "generation_name": "daily_ads.render",
        "airflow_dag_id": "daily_ads",
        "airflow_task_id": "render",
        "airflow_run_id": "scheduled__2026-11-24",
        "airflow_map_index": 3,
        "cost_center": "mkt",
    }


def test_airflow_trace_can_be_turned_off(emulator: Any, tmp_path: Path) -> None:
    submit_with(tmp_path, airflow_trace=False)
    assert "trace" not in last_body(emulator)


def test_continuation_of_a_completed_job(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    first = OpenRouterVideoHook().submit({"model": "google/veo-3.1", "prompt": "act one"}).id
    submit_with(tmp_path, prompt="act two", previous_job_id=first)
    assert last_body(emulator)["previous_job_id"] == first


def test_under_budget_submits_and_logs_the_estimate(
    emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submit_with(tmp_path, duration=4, generate_audio=False, max_cost_usd=1.0)
    logs = capsys.readouterr().out
    assert "Estimated cost: $0.8000 = per-video-second $0.2/s x 4 s." in logs
    assert emulator.control.count("submit", "POST") == 1


def test_unpriceable_model_warns_and_submits_without_strict(
    emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submit_with(tmp_path, model="bytedance/seedance-2.0", duration=4, max_cost_usd=5)
    logs = capsys.readouterr().out
    assert "Cannot check max_cost_usd=$5" in logs
    assert "strict_cost_check=True" in logs
    assert emulator.control.count("submit", "POST") == 1


def test_media_sources_are_not_rendered_into_templates(emulator: Any, tmp_path: Path) -> None:
    """A frame path is templated like any field, and what is stored rendered is the path, not data."""
    first = tmp_path / "2026-11-24.png"
    first.write_bytes(png_bytes())
    operator = OpenRouterVideoOperator(
        task_id="render",
        prompt="p",
        model="google/veo-3.1",
        output_path=str(tmp_path / "o.mp4"),
        frame_images={"first_frame": str(tmp_path) + "/{{ ds }}.png"},
    )
    operator.render_template_fields({"ds": "2026-11-24"})
    assert operator.frame_images == {"first_frame": str(first)}


def test_connection_ids_are_templated(emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As official providers do: a connection id may be chosen per run (e.g. per environment)."""
    import json

    connection = {"conn_type": "openrouter", "host": emulator.base_url, "password": emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_STAGING", json.dumps(connection))
    operator = OpenRouterVideoOperator(
        task_id="render",
        prompt="p",
        model="google/veo-3.1",
        duration=4,
        output_path=str(tmp_path / "o.mp4"),
        openrouter_conn_id="openrouter_{{ params.env }}",
    )
    operator.render_template_fields({"params": {"env": "staging"}})
    assert operator.openrouter_conn_id == "openrouter_staging"
    monkeypatch.delenv("AIRFLOW_CONN_OPENROUTER_DEFAULT")
    with pytest.raises(TaskDeferred):
        operator.execute(context_with(RecordingTaskInstance()))
    assert emulator.control.count("submit", "POST") == 1
