"""Adversarial operator arguments, refused when the DAG is parsed (issue "Paid means kept").

Every refused case constructs the operator (as the dag-processor does) and expects
:class:`InvalidOperatorArgumentError` naming the parameter, the value and what is allowed; the
emulator must see no request at all. Valid edge values must still construct, normalised.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_orvideo.exceptions import InvalidOperatorArgumentError, InvalidVideoRequestError
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from tests.helpers import AirflowFailException

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def build(tmp_path: Path, **kwargs: Any) -> OpenRouterVideoOperator:
    arguments: dict[str, Any] = {
        "task_id": "render",
        "prompt": "a lighthouse at dusk",
        "model": "google/veo-3.1",
        "output_path": str(tmp_path / "out.mp4"),
        **kwargs,
    }
    return OpenRouterVideoOperator(**arguments)


# (case id, arguments, parameter named, value shown, what is allowed)
REFUSED_AT_PARSE: list[tuple[str, dict[str, Any], str, str, str]] = [
    # -- not templated ---------------------------------------------------------------------
    ("job_timeout inf", {"job_timeout": math.inf}, "job_timeout", "inf", "finite number of seconds > 0"),
    ("job_timeout nan", {"job_timeout": math.nan}, "job_timeout", "nan", "finite number of seconds > 0"),
    ("job_timeout overflows defer", {"job_timeout": 1e300}, "job_timeout", "1e+300", "<= 2,592,000"),
    ("job_timeout zero timedelta", {"job_timeout": timedelta(0)}, "job_timeout", "timedelta(0)", "> 0"),
    ("job_timeout str", {"job_timeout": "3600"}, "job_timeout", "'3600'", "not str"),
    (
        "poll_interval nan",
        {"poll_interval": math.nan},
        "poll_interval",
        "nan",
        "finite number of seconds > 0",
    ),
    ("poll_interval str", {"poll_interval": "30"}, "poll_interval", "'30'", "not str"),
    ("poll_interval zero", {"poll_interval": 0}, "poll_interval", "0", "> 0"),
    ("poll_interval bool", {"poll_interval": True}, "poll_interval", "True", "not bool"),
    (
        "initial_poll_delays str",
        {"initial_poll_delays": "30"},
        "initial_poll_delays",
        "'30'",
        "list or tuple",
    ),
    (
        "initial_poll_delays negative",
        {"initial_poll_delays": (10, -1)},
        "initial_poll_delays[1]",
        "-1",
        ">= 0",
    ),
    (
        "initial_poll_delays inf",
        {"initial_poll_delays": [math.inf]},
        "initial_poll_delays[0]",
        "inf",
        "finite",
    ),
    (
        "initial_poll_delays None",
        {"initial_poll_delays": None},
        "initial_poll_delays",
        "None",
        "list or tuple",
    ),
    ("max_cost_usd zero", {"max_cost_usd": 0}, "max_cost_usd", "0", "finite number of USD > 0"),
    ("max_cost_usd nan", {"max_cost_usd": math.nan}, "max_cost_usd", "nan", "finite number of USD > 0"),
    ("max_cost_usd str", {"max_cost_usd": "5"}, "max_cost_usd", "'5'", "finite number of USD > 0"),
    ("orphan_policy unknown", {"orphan_policy": "retry"}, "orphan_policy", "'retry'", "'fail', 'resubmit'"),
    ("deferrable str", {"deferrable": "false"}, "deferrable", "'false'", "True or False"),
    ("overwrite int", {"overwrite": 1}, "overwrite", "1", "True or False"),
    ("airflow_trace None", {"airflow_trace": None}, "airflow_trace", "None", "True or False"),
    ("strict_cost_check str", {"strict_cost_check": "yes"}, "strict_cost_check", "'yes'", "True or False"),
    ("resubmit_failed_jobs int", {"resubmit_failed_jobs": 0}, "resubmit_failed_jobs", "0", "True or False"),
    (
        "openrouter_conn_id empty",
        {"openrouter_conn_id": " "},
        "openrouter_conn_id",
        "' '",
        "non-empty string",
    ),
    (
        "openrouter_conn_id None",
        {"openrouter_conn_id": None},
        "openrouter_conn_id",
        "None",
        "non-empty string",
    ),
    # -- templated, but values that cannot be templates ------------------------------------
    ("duration list", {"duration": [4]}, "duration", "[4]", "whole number"),
    ("duration superscript two", {"duration": "²"}, "duration", "'²'", "whole number"),
    ("duration arabic-indic three", {"duration": "٣"}, "duration", "'٣'", "whole number"),
    ("duration underscore digits", {"duration": "1_000"}, "duration", "'1_000'", "whole number"),
    ("duration fractional float", {"duration": 8.5}, "duration", "8.5", "whole number"),
    ("duration nan", {"duration": math.nan}, "duration", "nan", "not finite"),
    ("duration inf", {"duration": math.inf}, "duration", "inf", "not finite"),
    ("duration zero", {"duration": 0}, "duration", "0", "at least 1 second"),
    ("seed fractional", {"seed": 1.5}, "seed", "1.5", "whole number"),
    ("seed bool", {"seed": True}, "seed", "True", "not a boolean"),
    ("generate_audio int", {"generate_audio": 3}, "generate_audio", "3", "true or false"),
    ("trace str", {"trace": "x"}, "trace", "'x'", "must be a dict"),
    ("trace trace_id int", {"trace": {"trace_id": 5}}, "trace['trace_id']", "5", "must be a string"),
    (
        "trace span_name None",
        {"trace": {"span_name": None}},
        "trace['span_name']",
        "None",
        "must be a string",
    ),
    ("trace extra nan", {"trace": {"cost": math.nan}}, "trace['cost']", "nan", "JSON values only"),
    ("trace int key", {"trace": {1: "x"}}, "trace key", "1", "must be a string"),
    ("session_id int", {"session_id": 5}, "session_id", "5", "must be a string"),
    ("user list", {"user": ["u"]}, "user", "['u']", "must be a string"),
    ("previous_job_id int", {"previous_job_id": 42}, "previous_job_id", "42", "must be a string"),
    ("model int", {"model": 7}, "model", "7", "must be a string"),
    ("prompt bytes", {"prompt": b"a kite"}, "prompt", "<6 bytes>", "must be a string"),
    ("prompt lone surrogate", {"prompt": "a \ud800 kite"}, "prompt", "'a \\ud800 kite'", "valid Unicode"),
    ("size not WxH", {"size": "1280*720"}, "size", "'1280*720'", "WIDTHxHEIGHT"),
    (
        "frame source int",
        {"frame_images": {"first_frame": 5}},
        "frame_images['first_frame']",
        "5",
        "https URL, a data: URL, a file path",
    ),
    (
        "frame key unknown",
        {"frame_images": {"middle_frame": "a.png"}},
        "frame_images key",
        "'middle_frame'",
        "first_frame, last_frame",
    ),
    (
        "input_references str",
        {"input_references": "https://cdn.example/a.png"},
        "input_references",
        "'https://cdn.example/a.png'",
        "list of sources",
    ),
    (
        "reference kind unknown",
        {"input_references": [{"kind": "picture", "source": "a.png"}]},
        "input_references[0]",
        "'picture'",
        "image, audio, video",
    ),
    (
        "reference without source",
        {"input_references": [{"src": "a.png"}]},
        "input_references[0]",
        "'src'",
        "'source'",
    ),
    (
        "provider option inf",
        {"provider_options": {"google-vertex": {"guidance": math.inf}}},
        "provider_options['google-vertex']['guidance']",
        "inf",
        "JSON value",
    ),
]


@pytest.mark.parametrize(
    ("case", "arguments", "parameter", "value", "allowed"),
    REFUSED_AT_PARSE,
    ids=[row[0] for row in REFUSED_AT_PARSE],
)
def test_refused_when_the_dag_is_parsed(
    emulator: Any,
    tmp_path: Path,
    case: str,
    arguments: dict[str, Any],
    parameter: str,
    value: str,
    allowed: str,
) -> None:
    with pytest.raises(InvalidOperatorArgumentError) as info:
        build(tmp_path, **arguments)
    message = str(info.value)
    assert type(info.value) is InvalidOperatorArgumentError
    assert isinstance(info.value, AirflowFailException)  # never retried
    assert f"{parameter}=" in message or f"{parameter} " in message, message
    assert value in message, message
    assert allowed in message, message
    assert "task 'render'" in message
    assert "nothing was billed" in message
    assert emulator.control.count("submit", "POST") == 0
    assert emulator.control.requests() == []


def test_every_problem_is_reported_at_once(emulator: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidOperatorArgumentError) as info:
        build(
            tmp_path,
            job_timeout=math.inf,
            poll_interval=math.nan,
            webhook_poll_interval=0,
            duration="²",
            trace="x",
        )
    message = str(info.value)
    for fragment in (
        "job_timeout=inf",
        "poll_interval=nan",
        "webhook_poll_interval=0",
        "duration='²'",
        "trace='x'",
    ):
        assert fragment in message
    assert emulator.control.count("submit", "POST") == 0


def test_the_error_stays_a_value_error_for_old_callers(tmp_path: Path) -> None:
    """README: "ValueError at DAG parse"; the provider's class is one."""
    with pytest.raises(ValueError, match="orphan_policy='never'"):
        build(tmp_path, orphan_policy="never")
    assert issubclass(InvalidOperatorArgumentError, InvalidVideoRequestError)


# (case id, arguments, attribute -> normalised value)
ACCEPTED_AT_PARSE: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("poll_interval small float", {"poll_interval": 0.05}, {"poll_interval": 0.05}),
    ("initial_poll_delays empty", {"initial_poll_delays": ()}, {"initial_poll_delays": []}),
    ("initial_poll_delays zero", {"initial_poll_delays": [0, 2]}, {"initial_poll_delays": [0.0, 2.0]}),
    ("job_timeout timedelta", {"job_timeout": timedelta(minutes=5)}, {"job_timeout": 300.0}),
    ("job_timeout int", {"job_timeout": 30}, {"job_timeout": 30.0}),
    ("max_cost_usd small", {"max_cost_usd": 0.01}, {"max_cost_usd": 0.01}),
    ("orphan_policy resubmit", {"orphan_policy": "resubmit"}, {"orphan_policy": "resubmit"}),
    ("duration digit str", {"duration": "8"}, {"duration": "8"}),
    ("duration padded str", {"duration": " 8 "}, {"duration": " 8 "}),
    ("duration integral float", {"duration": 8.0}, {"duration": 8.0}),
    ("seed signed str", {"seed": "-3"}, {"seed": "-3"}),
    ("generate_audio true str", {"generate_audio": "true"}, {"generate_audio": "true"}),
    (
        "whitespace prompt with frames",
        {"prompt": "  ", "frame_images": {"first_frame": "a.png"}},
        {"prompt": "  "},
    ),
    ("trace with extra keys", {"trace": {"trace_id": "t", "team": {"a": [1, 2.5]}}}, {}),
    # Templates are checked after rendering, not now.
    ("duration jinja", {"duration": "{{ params.duration }}"}, {"duration": "{{ params.duration }}"}),
    ("trace jinja", {"trace": "{{ params.trace }}"}, {"trace": "{{ params.trace }}"}),
    ("seed jinja", {"seed": "{{ 5 }}"}, {}),
    ("trace value jinja", {"trace": {"trace_id": "{{ run_id }}"}}, {}),
    ("frame source jinja", {"frame_images": {"first_frame": "{{ ti.xcom_pull('img') }}"}}, {}),
    ("references jinja", {"input_references": "{% if true %}[]{% endif %}"}, {}),
]


@pytest.mark.parametrize(
    ("case", "arguments", "expected"), ACCEPTED_AT_PARSE, ids=[row[0] for row in ACCEPTED_AT_PARSE]
)
def test_valid_edges_are_accepted(
    emulator: Any, tmp_path: Path, case: str, arguments: dict[str, Any], expected: dict[str, Any]
) -> None:
    operator = build(tmp_path, **arguments)
    for name, value in expected.items():
        assert getattr(operator, name) == value
        assert type(getattr(operator, name)) is type(value)
    assert emulator.control.requests() == []


def test_lazy_airflow_values_are_left_for_the_task(tmp_path: Path) -> None:
    from airflow.sdk import task

    @task
    def upstream() -> dict[str, Any]:
        return {"trace_id": "t"}

    with DAG(dag_id="lazy", schedule=None, start_date=START):
        value = upstream()
        operator = build(tmp_path, trace=value, duration=value, frame_images={"first_frame": value})
    assert operator.trace is value


def test_a_dags_own_jinja_delimiters_are_recognised(tmp_path: Path) -> None:
    with DAG(
        dag_id="brackets",
        schedule=None,
        start_date=START,
        jinja_environment_kwargs={"variable_start_string": "[[", "variable_end_string": "]]"},
    ):
        operator = build(tmp_path, duration="[[ params.duration ]]")
    assert operator.duration == "[[ params.duration ]]"
    with (
        pytest.raises(InvalidOperatorArgumentError, match=r"duration='\{\{ 8 \}\}'"),
        DAG(
            dag_id="brackets2",
            schedule=None,
            start_date=START,
            jinja_environment_kwargs={"variable_start_string": "[[", "variable_end_string": "]]"},
        ),
    ):
        build(tmp_path, duration="{{ 8 }}")  # not a template in this DAG


def test_decorator_keyword_arguments_are_checked_at_parse(emulator: Any) -> None:
    from airflow.sdk import task

    @task.openrouter_video(
        model="google/veo-3.1", output_path="/nonexistent/x.mp4", poll_interval="30", seed=1.5
    )
    def clip() -> str:
        return "a kite"

    with (
        pytest.raises(InvalidOperatorArgumentError) as info,
        DAG(dag_id="deco", schedule=None, start_date=START),
    ):
        clip()
    message = str(info.value)
    assert "@task.openrouter_video (task 'clip')" in message
    assert "poll_interval='30'" in message
    assert "seed=1.5" in message
    assert emulator.control.requests() == []


BAD_DAG = textwrap.dedent(
    """
    import pendulum
    from airflow.sdk import DAG
    from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

    with DAG(dag_id="bad_arguments", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        OpenRouterVideoOperator(
            task_id="render",
            prompt="a lighthouse at dusk",
            model="google/veo-3.1",
            output_path="/nonexistent/out.mp4",
            job_timeout=float("inf"),
            poll_interval=0,
        )
    """
)


def test_a_dag_file_with_a_bad_argument_fails_to_import(emulator: Any, tmp_path: Path) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0, 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef, unused-ignore]

    dag_file = tmp_path / "bad_arguments.py"
    dag_file.write_text(BAD_DAG)
    options: dict[str, Any] = {"dag_folder": str(dag_file)}
    if "include_examples" in inspect.signature(DagBag).parameters:  # gone in Airflow 3.3
        options["include_examples"] = False
    bag = DagBag(**options)
    assert bag.dags == {}
    error = bag.import_errors[str(dag_file)]
    assert "InvalidOperatorArgumentError" in error
    assert "Invalid arguments for OpenRouterVideoOperator (task 'render')" in error
    assert "job_timeout=inf must be a timedelta or a finite number of seconds > 0" in error
    assert "poll_interval=0 must be" in error
    assert emulator.control.requests() == []


def test_the_checked_request_fields_are_the_templated_ones() -> None:
    """``REQUEST_FIELDS`` must follow the operator's templated fields (``output_path`` and the
    connection ids have checks of their own), or a new field would skip the parse-time and
    rendered checks."""
    from airflow_provider_orvideo._internal.request_fields import REQUEST_FIELDS
    from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

    assert list(REQUEST_FIELDS) == [
        f
        for f in OpenRouterVideoOperator.template_fields
        if f != "output_path" and not f.endswith("_conn_id")
    ]
