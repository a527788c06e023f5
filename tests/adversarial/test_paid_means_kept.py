"""Paid means kept, as a property: for any arguments a DAG author can give the operator or the
``@task.openrouter_video`` decorator, either the task fails before the submit POST with one of
the provider's own exceptions, or exactly one job was paid for and its video is an MP4 at the
path the task returned. Against the emulator, over real HTTP.

Arguments are drawn from mixtures of valid values, near misses and plain junk (wrong types,
whitespace, non-ASCII digits, NaN, paths that cannot work), so both sides of the property are
exercised in every run.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_provider_orvideo.decorators.openrouter_video import OpenRouterVideoDecoratedOperator
from airflow_provider_orvideo.exceptions import OpenRouterVideoError
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from tests.helpers import InMemoryTaskStateStore, RecordingTaskInstance, context_with, run_task

JUNK = st.one_of(
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.binary(max_size=4),
)
TEXT = st.text(max_size=12)
WHITESPACE = st.sampled_from(["", " ", "\n", "\t \n"])


# Per field: (valid values, near misses). An example draws every field valid, then breaks up
# to three of them with a near miss or junk: the success side runs in about a quarter of the
# examples, and each failure has one clear cause.
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "prompt": (
        st.sampled_from(["a lighthouse at dusk", "  a kite  ", "é 🎥"]),
        st.one_of(WHITESPACE, st.none()),
    ),
    "duration": (
        st.sampled_from([None, 4, 6, 8, "8", " 6 ", 8.0]),
        st.sampled_from([5, 0, -4, "eight", "\u00b2", "\u0668", "1_0", 8.5, "8.0", math.nan, math.inf]),
    ),
    "resolution": (
        st.sampled_from([None, "720p", "1080p", " 720p "]),
        st.sampled_from(["4K", "720P", "720"]),
    ),
    "aspect_ratio": (st.sampled_from([None, "16:9", "9:16"]), st.sampled_from(["21:9", "16/9", "1:1"])),
    "size": (
        st.sampled_from([None, "1280x720", "720x1280"]),
        st.sampled_from(["1280*720", "1280x", "x720", "0x0", "\u0661280x720", "640x480"]),
    ),
    "generate_audio": (
        st.sampled_from([None, True, False, "true", "False"]),
        st.sampled_from(["yes", "1", 1, 0]),
    ),
    "seed": (
        st.sampled_from([None, 0, 7, "42", 2**31 - 1]),
        st.sampled_from([1.5, "seven", math.nan, "\u2074\u00b2"]),
    ),
    "trace": (
        st.one_of(st.none(), st.dictionaries(st.sampled_from(["attempt", "tags"]), TEXT, max_size=2)),
        st.one_of(
            TEXT,
            st.dictionaries(
                st.sampled_from(["trace_id", "span_name", "attempt"]),
                st.one_of(st.integers(), st.floats(allow_nan=True), st.lists(TEXT, max_size=2)),
                min_size=1,
                max_size=2,
            ),
        ),
    ),
    "user": (
        st.one_of(st.none(), TEXT),
        st.one_of(st.text(min_size=1, max_size=3).map(lambda t: [t]), st.integers()),
    ),
    "session_id": (st.one_of(st.none(), TEXT), st.text(min_size=257, max_size=300)),
    "poll_interval": (
        st.sampled_from([0.02, 0.03]),
        st.sampled_from([0, -1, math.nan, math.inf, "30", None]),
    ),
    "max_consecutive_poll_failures": (
        st.sampled_from([1, 3]),
        st.sampled_from([0, -2, 2.5, True, "3", None]),
    ),
    "job_timeout": (st.sampled_from([60, 600.0]), st.sampled_from([0, -5, math.inf, math.nan, "60"])),
    "output_path": (
        st.sampled_from(["{d}/clip.mp4", "{d}/new/../clip.mp4", "file://{d}/clip.mp4", " {d}/c.mp4\n"]),
        st.nothing(),
    ),
}


def _not_a_valid_timeout(value: Any) -> bool:
    """Junk such as ``0.0039`` is a valid ``job_timeout``: the task then pays and times out, which
    a retry recovers (it re-attaches); not the refusal-before-paying this test is about."""
    return not (isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf)


def draw_arguments(data: st.DataObject, names: list[str]) -> dict[str, Any]:
    """Valid values for ``names``, then up to three of them broken (near miss or junk)."""
    arguments = {name: data.draw(FIELDS[name][0], label=name) for name in names}
    broken = data.draw(st.lists(st.sampled_from(names), max_size=3, unique=True), label="broken")
    for name in broken:
        near = FIELDS[name][1] if name != "output_path" else OUTPUT_SHAPES
        junk = JUNK.filter(_not_a_valid_timeout) if name == "job_timeout" else JUNK
        arguments[name] = data.draw(st.one_of(near, junk), label=f"bad {name}")
    return arguments


OUTPUT_SHAPES = st.sampled_from(
    [
        "{d}/clip.mp4",
        "{d}/clip.mp4",
        "{d}/new/../clip.mp4",
        "file://{d}/clip.mp4",
        " {d}/clip.mp4\n",
        "file://host{d}/clip.mp4",
        "{d}/",
        "{d}",
        "relative/clip.mp4",
        "~/clip.mp4",
        "",
        "{d}/afile/clip.mp4",
        "{d}/taken.mp4",
    ]
)


def output_path_of(shape: Any, directory: str) -> Any:
    if not isinstance(shape, str):
        return shape
    return shape.format(d=directory)


def expected_location(output_path: str) -> str:
    """Where a valid output path's video must land: its one normalised form."""
    text = output_path.strip().removeprefix("file://")
    return os.path.normpath(text)


def _outcome(call: Any) -> tuple[Any, OpenRouterVideoError | None]:
    """The call's result, or the provider error it raised (any other exception fails the test)."""
    try:
        return call(), None
    except OpenRouterVideoError as error:
        return None, error


class Run:
    """One example: a fresh directory (with a file and a foreign video in it) and POST counting."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.directory = tempfile.mkdtemp(prefix="paid-means-kept-")
        Path(self.directory, "afile").write_bytes(b"a file, not a directory")
        Path(self.directory, "taken.mp4").write_bytes(b"someone else's video")
        self.posts_before = emulator.control.count("submit", "POST")

    def check(self, make_operator: Any, output_path: Any) -> None:
        ti = RecordingTaskInstance()
        result, error = _outcome(
            lambda: run_task(make_operator(), context_with(ti, InMemoryTaskStateStore()))
        )
        posts = self.emulator.control.count("submit", "POST") - self.posts_before
        assert Path(self.directory, "taken.mp4").read_bytes() == b"someone else's video"
        if error is not None:
            event(f"refused: {type(error).__name__}")
            assert posts == 0, f"{type(error).__name__} after paying: {error}"
            assert self.emulator.api_key not in str(error)
            return
        event("paid and kept")
        assert posts == 1
        assert isinstance(result, str)
        assert result == expected_location(output_path)
        assert Path(result).read_bytes()[4:8] == b"ftyp"
        assert ti.xcom["output_paths"] == [result]
        assert Path(self.directory, "taken.mp4").read_bytes() == b"someone else's video"
        assert not [p for p in Path(self.directory).rglob("*.part")]


@pytest.fixture
def fast_emulator(emulator: Any) -> Any:
    emulator.control.set_job_defaults(pending_seconds=0.0, in_progress_seconds=0.02)
    return emulator


POLLING = {"poll_interval": 0.02, "initial_poll_delays": (0.02,)}
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("ORVIDEO_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_operator_pays_only_for_a_video_it_keeps(fast_emulator: Any, data: st.DataObject) -> None:
    run = Run(fast_emulator)
    arguments = draw_arguments(data, list(FIELDS))
    arguments["output_path"] = output_path_of(arguments["output_path"], run.directory)

    def make_operator() -> OpenRouterVideoOperator:
        return OpenRouterVideoOperator(
            task_id="render", model="google/veo-3.1", initial_poll_delays=(0.02,), **arguments
        )

    run.check(make_operator, arguments["output_path"])


RETURNABLE = [
    "duration",
    "resolution",
    "aspect_ratio",
    "size",
    "generate_audio",
    "seed",
    "trace",
    "user",
    "session_id",
    "output_path",
]


@PROPERTY_SETTINGS
@given(data=st.data())
def test_decorated_task_pays_only_for_a_video_it_keeps(fast_emulator: Any, data: st.DataObject) -> None:
    run = Run(fast_emulator)
    shape = data.draw(st.sampled_from(["prompt", "fields", "fields", "junk"]), label="returns")
    returned: Any
    if shape == "prompt":
        returned = data.draw(st.one_of(FIELDS["prompt"][0], FIELDS["prompt"][1]), label="returned prompt")
    elif shape == "fields":
        names = data.draw(st.lists(st.sampled_from(RETURNABLE), unique=True, max_size=4), label="fields")
        returned = draw_arguments(data, ["prompt", *names])
        if "output_path" in returned:
            returned["output_path"] = output_path_of(returned["output_path"], run.directory)
        if data.draw(st.integers(0, 9), label="misspelt key") == 0:
            returned["durations"] = 4
    else:
        returned = data.draw(JUNK, label="returned junk")
    decorator_path = output_path_of(data.draw(OUTPUT_SHAPES, label="decorator output_path"), run.directory)
    output_path = (
        returned.get("output_path", decorator_path) if isinstance(returned, dict) else decorator_path
    )

    def make_operator() -> OpenRouterVideoDecoratedOperator:
        return OpenRouterVideoDecoratedOperator(
            task_id="render",
            python_callable=lambda: returned,
            model="google/veo-3.1",
            duration=4,
            output_path=decorator_path,
            **POLLING,
        )

    run.check(make_operator, output_path)
