"""The request field table is the one list: the operator, its reference page, the body, the fingerprint
and the reported facts all follow it."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from airflow_provider_orvideo._internal import submission
from airflow_provider_orvideo._internal.arguments import OperatorArguments
from airflow_provider_orvideo._internal.field_checks import SIZE_PATTERN, TRACE_STRING_KEYS, never_pending
from airflow_provider_orvideo._internal.request_fields import (
    FIELD_CHECKS,
    LABEL_FIELDS,
    MEDIA_FIELDS,
    NON_MEDIA_FIELDS,
    REPORTED_FIELDS,
    REQUEST_FIELD_TABLE,
    REQUEST_FIELDS,
    TEMPLATE_FIELDS,
    request_facts,
)
from airflow_provider_orvideo._internal.submission import fingerprint
from airflow_provider_orvideo._internal.validation import VideoRequest, build_request_from
from airflow_provider_orvideo.media import MediaKind, ResolvedMedia
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

ROWS = {field.name: field for field in REQUEST_FIELD_TABLE}

NOT_REQUEST_PARAMETERS = {field.name for field in dataclasses.fields(OperatorArguments)} | {
    "output_path",  # checked by output_paths.py, templated
    "output_conn_id",  # idem
    "max_consecutive_poll_failures",  # deprecated and ignored
    "retries",  # Airflow's
}
"""Operator parameters that are not request fields: the non-templated arguments that
``check_operator_arguments`` returns, and the others named here."""

PNG = ResolvedMedia(
    url="data:image/png;base64,iVBORw0KGgo=", kind=MediaKind.IMAGE, description="frame.png", mime="image/png"
)
MP3 = ResolvedMedia(url="https://cdn.example/voice.mp3", kind=MediaKind.AUDIO, description="voice")
EVERY_VALUE: dict[str, Any] = {
    "model": "google/veo-3.1",
    "prompt": "a lighthouse at dusk, waves",
    "duration": "8",
    "resolution": "1080p",
    "aspect_ratio": "16:9",
    "size": "1920x1080",
    "generate_audio": "true",
    "seed": 42,
    "provider_options": {"google-vertex": {"negativePrompt": "blurry", "personGeneration": "allow_adult"}},
    "previous_job_id": "job-123",
    "session_id": "session-7",
    "trace": {"trace_id": "t", "airflow_map_index": 3},
    "user": "ops",
}
EVERY_MEDIA: dict[str, Any] = {
    "frame_images": (("first_frame", PNG),),
    "input_references": ((MediaKind.AUDIO, MP3),),
}


def every_field_set(**changes: Any) -> VideoRequest:
    """A request with every field set (``changes`` replacing some)."""
    values = {**EVERY_VALUE, **{k: v for k, v in changes.items() if k not in MEDIA_FIELDS}}
    media = {**EVERY_MEDIA, **{k: v for k, v in changes.items() if k in MEDIA_FIELDS}}
    return build_request_from(values, **media)


# -- one list ----------------------------------------------------------------------------------


def test_every_request_parameter_of_the_operator_is_a_row_and_every_row_a_parameter() -> None:
    parameters = [
        name
        for name, parameter in inspect.signature(OpenRouterVideoOperator.__init__).parameters.items()
        if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    assert [name for name in parameters if name not in NOT_REQUEST_PARAMETERS] == list(REQUEST_FIELDS)


def test_the_templated_fields_are_the_operators() -> None:
    assert tuple(OpenRouterVideoOperator.template_fields) == TEMPLATE_FIELDS


def test_the_operator_reference_documents_every_request_field() -> None:
    reference = (Path(__file__).parents[2] / "docs" / "operator.md").read_text(encoding="utf-8")
    section = reference.split("\n## Parameters\n", 1)[1]
    section = re.split(r"\n#{1,2} ", section, maxsplit=1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    assert set(REQUEST_FIELDS) - documented == set()


def test_every_row_has_a_converter_and_none_is_absent() -> None:
    assert list(FIELD_CHECKS) == list(REQUEST_FIELDS)
    for field in REQUEST_FIELD_TABLE:
        problems: list[str] = []
        assert field.check(field.name, None, problems, never_pending) is None, field.name
        assert problems == [], field.name


def test_every_row_is_a_video_request_attribute() -> None:
    assert {f.name for f in dataclasses.fields(VideoRequest)} == set(REQUEST_FIELDS)


def test_media_and_the_other_fields_split_the_table() -> None:
    assert MEDIA_FIELDS == ("frame_images", "input_references")
    assert set(MEDIA_FIELDS) | set(NON_MEDIA_FIELDS) == set(REQUEST_FIELDS)
    assert set(MEDIA_FIELDS) & set(NON_MEDIA_FIELDS) == set()


def test_labels_and_reported_facts() -> None:
    assert {"trace", "user", "session_id"} == LABEL_FIELDS
    assert all(ROWS[name].body_key == name for name in LABEL_FIELDS)  # a label is sent as itself
    assert REPORTED_FIELDS == (
        "prompt",
        "model",
        "duration",
        "resolution",
        "aspect_ratio",
        "size",
        "generate_audio",
        "seed",
    )
    assert not any(ROWS[name].media for name in REPORTED_FIELDS)  # megabytes of data URL


def test_the_fingerprint_leaves_out_the_tables_labels() -> None:
    assert submission.LABEL_FIELDS is LABEL_FIELDS


# -- the body and the fingerprint --------------------------------------------------------------

EVERY_FIELD_BODY = {
    "model": "google/veo-3.1",
    "prompt": "a lighthouse at dusk, waves",
    "duration": 8,
    "resolution": "1080p",
    "aspect_ratio": "16:9",
    "size": "1920x1080",
    "generate_audio": True,
    "seed": 42,
    "previous_job_id": "job-123",
    "session_id": "session-7",
    "trace": {"trace_id": "t", "airflow_map_index": 3},
    "user": "ops",
    "frame_images": [
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
            "frame_type": "first_frame",
        }
    ],
    "input_references": [{"type": "audio_url", "audio_url": {"url": "https://cdn.example/voice.mp3"}}],
    "provider": {
        "options": {
            "google-vertex": {"parameters": {"negativePrompt": "blurry", "personGeneration": "allow_adult"}}
        }
    },
}
"""What the body of a request with every field set was before the table (release 1.x)."""


def test_a_request_with_every_field_sends_every_field() -> None:
    body = every_field_set().to_body()
    assert set(body) == {field.body_key for field in REQUEST_FIELD_TABLE}
    assert body == EVERY_FIELD_BODY


def test_the_fingerprint_of_a_body_is_the_one_earlier_releases_recorded() -> None:
    """Computed by the code before the table: a record written then still matches."""
    body = every_field_set().to_body()
    assert fingerprint(body) == "2ca3f75e9ffa9a747fde192f0a5ab1ee12d1e9a8eccbf93446f3faa0b81ce3c7"
    assert fingerprint(body, version=1) == "30440e039484b75534a834ebcf98066a187f6bc5372236cf978d50a051084465"
    assert request_facts(body) == {name: EVERY_FIELD_BODY[name] for name in REPORTED_FIELDS}


@pytest.mark.parametrize("name", ["frame_images", "output_path", "promt"])
def test_build_request_from_refuses_a_name_that_is_not_a_checked_field(name: str) -> None:
    with pytest.raises(TypeError, match=f"build_request_from\\(\\) got {name}; it takes prompt, model"):
        build_request_from({**EVERY_VALUE, name: "x"})


_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(str.strip)
_JSON = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=5))
_MEDIA = st.builds(
    ResolvedMedia,
    url=st.from_regex(r"https://cdn\.example/[a-z]{1,8}\.(png|mp3|mp4)", fullmatch=True),
    kind=st.none(),
    description=st.just("a source"),
)
OTHER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "prompt": _TEXT,
    "model": _TEXT,
    "duration": st.integers(1, 10**6),
    "resolution": _TEXT,
    "aspect_ratio": _TEXT,
    "size": st.from_regex(SIZE_PATTERN, fullmatch=True),
    "generate_audio": st.booleans(),
    "seed": st.integers(-(2**63) + 1, 2**63 - 1),
    "frame_images": st.lists(
        st.tuples(st.sampled_from(["first_frame", "last_frame"]), _MEDIA),
        max_size=2,
        unique_by=lambda frame: frame[0],
    ).map(tuple),
    "input_references": st.lists(st.tuples(st.sampled_from(list(MediaKind)), _MEDIA), max_size=3).map(tuple),
    "provider_options": st.dictionaries(
        _TEXT, st.dictionaries(st.text(max_size=8), _JSON, max_size=3), max_size=2
    ),
    "previous_job_id": _TEXT,
    "session_id": _TEXT,
    "trace": st.dictionaries(
        st.text(max_size=8).filter(lambda key: key not in TRACE_STRING_KEYS), _JSON, max_size=3
    ),
    "user": _TEXT,
}
"""Any valid value of each field (None or empty included where allowed: the field then goes)."""


def test_every_field_has_other_values_to_try() -> None:
    assert set(OTHER_VALUES) == set(REQUEST_FIELDS)


@given(data=st.data(), name=st.sampled_from(REQUEST_FIELDS))
def test_the_fingerprint_changes_with_every_field_but_the_labels(data: st.DataObject, name: str) -> None:
    """Another value of any field that changes the video is a new request (a retry submits it);
    another label (Airflow's trace, the user, the session) never is (a retry re-attaches)."""
    value = data.draw(OTHER_VALUES[name], label=name)
    before, after = every_field_set().to_body(), every_field_set(**{name: value}).to_body()
    key = ROWS[name].body_key
    assume(after.get(key) != before.get(key))
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {key}
    assert (fingerprint(after) == fingerprint(before)) is ROWS[name].label
