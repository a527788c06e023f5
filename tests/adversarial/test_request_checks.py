"""Adversarial request values that only exist once the task runs: rendered templates, media
content, values a ``@task.openrouter_video`` function returns.

Each refused case must raise the provider's own class (never a bare builtin) naming the field and
the value, before the submit POST: the emulator counts POSTs and must count zero.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, task

from airflow_provider_orvideo.exceptions import InvalidOperatorArgumentError, InvalidVideoRequestError
from airflow_provider_orvideo.media import MediaKind
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from tests.helpers import (
    MP3_BYTES,
    AirflowFailException,
    RecordingTaskInstance,
    TaskDeferred,
    context_with,
    png_bytes,
)

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PNG = png_bytes()


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def render_and_execute(tmp_path: Path, case: str, arguments: dict[str, Any], params: dict[str, Any]) -> Any:
    """Build the operator in a DAG that renders native objects (unless ``native=False``), render
    it as the task runner does, then execute."""
    arguments = dict(arguments)
    native = arguments.pop("native", True)
    with DAG(
        dag_id=f"checks_{abs(hash(case))}",
        schedule=None,
        start_date=START,
        render_template_as_native_obj=native,
    ):
        operator = OpenRouterVideoOperator(
            **{
                "task_id": "render",
                "prompt": "a lighthouse at dusk",
                "model": "google/veo-3.1",
                "duration": 4,
                "output_path": str(tmp_path / "out.mp4"),
                "poll_interval": 0.05,
                **arguments,
            }
        )
    context = context_with(RecordingTaskInstance())
    context["params"] = params
    operator.render_template_fields(context)
    return operator.execute(context)


T = "{{ params.value }}"

# (case id, operator arguments, params.value, class, field named, value shown, what is allowed)
REFUSED_AT_EXECUTE: list[tuple[str, dict[str, Any], Any, type[Exception], str, str, str]] = [
    (
        "rendered duration superscript",
        {"duration": T},
        "²",
        InvalidOperatorArgumentError,
        "duration",
        "'²'",
        "whole number",
    ),
    (
        "rendered duration arabic-indic",
        {"duration": T},
        "٣",
        InvalidOperatorArgumentError,
        "duration",
        "'٣'",
        "whole number",
    ),
    (
        "rendered duration underscores",
        {"duration": T, "native": False},  # native rendering would literal_eval it to 1000
        "1_000",
        InvalidOperatorArgumentError,
        "duration",
        "'1_000'",
        "whole number",
    ),
    (
        "rendered duration fullwidth digit",
        {"duration": T},
        "\uff18",
        InvalidOperatorArgumentError,
        "duration",
        "'\uff18'",
        "whole number",
    ),
    (
        "rendered duration fraction",
        {"duration": T},
        8.5,
        InvalidOperatorArgumentError,
        "duration",
        "8.5",
        "whole number",
    ),
    (
        "rendered duration nan",
        {"duration": T},
        math.nan,
        InvalidOperatorArgumentError,
        "duration",
        "nan",
        "not finite",
    ),
    (
        "rendered seed huge str",
        {"seed": T},
        "9" * 5000,
        InvalidOperatorArgumentError,
        "seed",
        "'999",
        "whole number",
    ),
    (
        "rendered generate_audio yes",
        {"generate_audio": T},
        "yes",
        InvalidOperatorArgumentError,
        "generate_audio",
        "'yes'",
        "true or false",
    ),
    (
        "rendered whitespace prompt",
        {"prompt": T},
        " \n\t ",
        InvalidOperatorArgumentError,
        "prompt",
        "' \\n\\t '",
        "prompt is required unless frame_images or input_references",
    ),
    ("rendered trace str", {"trace": T}, "x", InvalidOperatorArgumentError, "trace", "'x'", "must be a dict"),
    (
        "rendered trace_id int",
        {"trace": T},
        {"trace_id": 5},
        InvalidOperatorArgumentError,
        "trace['trace_id']",
        "5",
        "must be a string",
    ),
    (
        "rendered parent_span_id list",
        {"trace": T},
        {"parent_span_id": ["a"]},
        InvalidOperatorArgumentError,
        "trace['parent_span_id']",
        "['a']",
        "must be a string",
    ),
    (
        "rendered trace extra inf",
        {"trace": T},
        {"budget": math.inf},
        InvalidOperatorArgumentError,
        "trace['budget']",
        "inf",
        "JSON values only",
    ),
    (
        "rendered session_id int",
        {"session_id": T},
        12345,
        InvalidOperatorArgumentError,
        "session_id",
        "12345",
        "must be a string",
    ),
    (
        "rendered user dict",
        {"user": T},
        {"id": 1},
        InvalidOperatorArgumentError,
        "user",
        "{'id': 1}",
        "must be a string",
    ),
    (
        "rendered previous_job_id int",
        {"previous_job_id": T},
        42,
        InvalidOperatorArgumentError,
        "previous_job_id",
        "42",
        "must be a string",
    ),
    ("rendered model int", {"model": T}, 7, InvalidOperatorArgumentError, "model", "7", "must be a string"),
    (
        "rendered frame source int",
        {"frame_images": T},
        {"first_frame": 5},
        InvalidOperatorArgumentError,
        "frame_images['first_frame']",
        "5",
        "https URL, a data: URL",
    ),
    (
        "rendered reference mixed keys",
        {"input_references": T},
        [{1: "a", "b": 2}],
        InvalidOperatorArgumentError,
        "input_references[0]",
        "'b', 1",
        "'source'",
    ),
    (
        "rendered provider option nan",
        {"provider_options": T},
        {"google-vertex": {"negativePrompt": math.nan}},
        InvalidOperatorArgumentError,
        "provider_options['google-vertex']['negativePrompt']",
        "nan",
        "JSON value",
    ),
    # -- media content: the declared type is not trusted ------------------------------------
    (
        "data url png holding text",
        {"frame_images": {"first_frame": data_url("image/png", b"meeting notes, not a picture")}},
        None,
        InvalidVideoRequestError,
        "frame_images['first_frame']",
        "the data: URL",
        "not a recognised image, audio or video file",
    ),
    (
        "data url png holding audio",
        {"frame_images": {"first_frame": data_url("image/png", MP3_BYTES)}},
        None,
        InvalidVideoRequestError,
        "frame_images['first_frame']",
        "declares image/png (image)",
        "its content is audio/mpeg",
    ),
    (
        "data url reference declared image holding audio",
        {"input_references": [data_url("image/png", MP3_BYTES)]},
        None,
        InvalidVideoRequestError,
        "input_references[0]",
        "declares image/png (image)",
        "its content is audio/mpeg",
    ),
    (
        "data url octet-stream",
        {"frame_images": {"first_frame": data_url("application/octet-stream", PNG)}},
        None,
        InvalidVideoRequestError,
        "frame_images['first_frame']",
        "declares application/octet-stream",
        "not an image, audio or video type",
    ),
    (
        "data url empty payload",
        {"frame_images": {"first_frame": "data:image/png;base64,"}},
        None,
        InvalidVideoRequestError,
        "frame_images['first_frame']",
        "0 bytes",
        "not a recognised image",
    ),
    (
        "data url bad base64",
        {"frame_images": {"first_frame": "data:image/png;base64,!!!!"}},
        None,
        InvalidVideoRequestError,
        "frame_images['first_frame']",
        "the data: URL",
        "valid base64",
    ),
    (
        "path with NUL byte",
        {"frame_images": {"first_frame": "/tmp/a\x00b.png"}},
        None,
        InvalidVideoRequestError,
        "frame_images['first_frame']",
        "'/tmp/a\\x00b.png'",
        "not a usable file path",
    ),
    (
        "path with lone surrogate",
        {"frame_images": {"first_frame": "/tmp/\ud800.png"}},
        None,
        InvalidVideoRequestError,
        "frame_images['first_frame']",
        "'/tmp/\\ud800.png'",
        "not a usable file path",
    ),
    (
        "https url unclosed ipv6",
        {"frame_images": {"first_frame": "https://[::1/a.png"}},
        None,
        InvalidVideoRequestError,
        "frame_images['first_frame']",
        "'https://[::1/a.png'",
        "not a valid URL",
    ),
]


@pytest.mark.parametrize(
    ("case", "arguments", "value", "error_class", "field", "shown", "allowed"),
    REFUSED_AT_EXECUTE,
    ids=[row[0] for row in REFUSED_AT_EXECUTE],
)
def test_refused_before_the_submit(
    emulator: Any,
    tmp_path: Path,
    case: str,
    arguments: dict[str, Any],
    value: Any,
    error_class: type[Exception],
    field: str,
    shown: str,
    allowed: str,
) -> None:
    with pytest.raises(InvalidVideoRequestError) as info:
        render_and_execute(tmp_path, case, arguments, {"value": value})
    message = str(info.value)
    assert type(info.value) is error_class
    assert isinstance(info.value, AirflowFailException)  # not retried: the same input fails the same way
    assert field in message, message
    assert shown in message, message
    assert allowed in message, message
    assert "nothing was billed" in message
    assert "base64," not in message  # a data: URL's payload is never echoed
    assert len(message) < 2000
    assert emulator.control.count("submit", "POST") == 0
    assert not (tmp_path / "out.mp4").exists()


# (case id, operator arguments, params.value)
ACCEPTED_AT_EXECUTE: list[tuple[str, dict[str, Any], Any]] = [
    ("rendered duration digits", {"duration": T}, "8"),
    ("rendered duration padded", {"duration": T}, " 8 "),
    ("rendered duration integral float", {"duration": T}, 8.0),
    ("rendered generate_audio true", {"generate_audio": T}, "true"),
    ("rendered trace dict", {"trace": T}, {"trace_id": "t-1", "team": "video", "n": 3}),
    ("data url subtype differs", {"frame_images": {"first_frame": data_url("image/jpeg", PNG)}}, None),
    (
        "reference kind as MediaKind",
        {
            "model": "bytedance/seedance-2.0",
            "duration": 4,
            "input_references": [{"kind": MediaKind.IMAGE, "source": PNG}],
        },
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "arguments", "value"), ACCEPTED_AT_EXECUTE, ids=[r[0] for r in ACCEPTED_AT_EXECUTE]
)
def test_valid_rendered_values_are_submitted(
    emulator: Any, tmp_path: Path, case: str, arguments: dict[str, Any], value: Any
) -> None:
    with pytest.raises(TaskDeferred):
        render_and_execute(tmp_path, case, arguments, {"value": value})
    assert emulator.control.count("submit", "POST") == 1


# -- @task.openrouter_video: the function's returned values ------------------------------------

# (case id, returned dict, field named, value shown, what is allowed)
RETURNED: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("returned duration superscript", {"duration": "²"}, "duration", "'²'", "whole number"),
    ("returned trace str", {"trace": "x"}, "trace", "'x'", "must be a dict"),
    ("returned seed nan", {"seed": math.nan}, "seed", "nan", "not finite"),
    ("returned frame_images list", {"frame_images": [PNG]}, "frame_images", "[<", "must be a dict"),
]


@pytest.mark.parametrize(
    ("case", "returned", "field", "shown", "allowed"), RETURNED, ids=[row[0] for row in RETURNED]
)
def test_decorated_function_results_are_checked_before_the_submit(
    emulator: Any, tmp_path: Path, case: str, returned: dict[str, Any], field: str, shown: str, allowed: str
) -> None:
    @task.openrouter_video(model="google/veo-3.1", output_path=str(tmp_path / "out.mp4"), poll_interval=0.05)
    def clip() -> dict[str, Any]:
        return {"prompt": "a lighthouse at dusk", "duration": 4, **returned}

    with DAG(dag_id=f"returned_{abs(hash(case))}", schedule=None, start_date=START):
        operator = clip().operator
    with pytest.raises(InvalidOperatorArgumentError) as info:
        operator.execute(context_with(RecordingTaskInstance()))
    message = str(info.value)
    assert type(info.value) is InvalidOperatorArgumentError
    assert "function 'clip' returned invalid request fields" in message
    assert f"{field}=" in message, message
    assert shown in message, message
    assert allowed in message, message
    assert emulator.control.count("submit", "POST") == 0


def test_decorated_function_whitespace_prompt_is_missing(emulator: Any, tmp_path: Path) -> None:
    @task.openrouter_video(model="google/veo-3.1", output_path=str(tmp_path / "out.mp4"))
    def clip() -> str:
        return "   "

    with DAG(dag_id="returned_blank", schedule=None, start_date=START):
        operator = clip().operator
    with pytest.raises(InvalidVideoRequestError, match="prompt missing: pass prompt=") as info:
        operator.execute(context_with(RecordingTaskInstance()))
    assert isinstance(info.value, AirflowFailException)
    assert emulator.control.count("submit", "POST") == 0


def test_decorated_image_to_video_needs_no_prompt(emulator: Any, tmp_path: Path) -> None:
    """Like the operator, the decorator takes a request with frames and no prompt."""
    from airflow_provider_orvideo.decorators.openrouter_video import OpenRouterVideoDecoratedOperator
    from tests.helpers import InMemoryTaskStateStore, png_bytes, run_task

    target = str(tmp_path / "clip.mp4")
    operator = OpenRouterVideoDecoratedOperator(
        task_id="render",
        python_callable=lambda: {"frame_images": {"first_frame": png_bytes()}},
        model="google/veo-3.1",
        duration=4,
        output_path=target,
        poll_interval=0.05,
        initial_poll_delays=(0.05,),
    )
    assert run_task(operator, context_with(RecordingTaskInstance(), InMemoryTaskStateStore())) == target
    assert emulator.control.count("submit", "POST") == 1
    assert "prompt" not in emulator.control.jobs()[0]["request"]
