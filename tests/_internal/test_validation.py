from __future__ import annotations

import pytest

from airflow_provider_orvideo._internal.api import VideoModel
from airflow_provider_orvideo._internal.validation import (
    VideoRequest,
    build_request_from,
    check_against_model,
    check_body_size,
)
from airflow_provider_orvideo.exceptions import InvalidVideoRequestError

VEO = VideoModel(
    id="google/veo-3.1",
    name="Google: Veo 3.1",
    supported_resolutions=("720p", "1080p"),
    supported_aspect_ratios=("16:9", "9:16"),
    supported_sizes=("1280x720", "1920x1080"),
    supported_durations=(4, 6, 8),
    supported_frame_images=("first_frame", "last_frame"),
    generate_audio=True,
    seed=True,
    allowed_passthrough_parameters=("negativePrompt",),
    pricing_skus={"per-video-second": "0.50"},
)
SILENT = VideoModel(
    id="alibaba/wan-2.6",
    name="Wan",
    supported_resolutions=None,
    supported_aspect_ratios=None,
    supported_sizes=None,
    supported_durations=(5, 10),
    supported_frame_images=None,
    generate_audio=False,
    seed=False,
    allowed_passthrough_parameters=(),
    pricing_skus=None,
)
MODELS = {VEO.id: VEO, SILENT.id: SILENT}


def test_templated_strings_are_coerced_and_none_left_out() -> None:
    request = build_request_from(
        {
            "model": "google/veo-3.1",
            "prompt": "a cat",
            "duration": "8",
            "generate_audio": "false",
            "seed": "7",
        }
    )
    assert request.to_body() == {
        "model": "google/veo-3.1",
        "prompt": "a cat",
        "duration": 8,
        "generate_audio": False,
        "seed": 7,
    }


def test_valid_request_returns_the_model() -> None:
    request = VideoRequest(
        model=VEO.id, prompt="p", duration=6, resolution="1080p", aspect_ratio="9:16", size="1920x1080"
    )
    assert check_against_model(request, MODELS) is VEO


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"duration": 7}, ["duration=7", "google/veo-3.1", "allowed: 4, 6, 8"]),
        ({"resolution": "4K"}, ["resolution='4K'", "allowed: 720p, 1080p"]),
        ({"aspect_ratio": "1:1"}, ["aspect_ratio='1:1'", "allowed: 16:9, 9:16"]),
        ({"size": "640x480"}, ["size='640x480'", "allowed: 1280x720, 1920x1080"]),
    ],
)
def test_out_of_set_values_name_field_value_model_and_allowed(
    kwargs: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(InvalidVideoRequestError) as info:
        check_against_model(VideoRequest(model=VEO.id, prompt="p", **kwargs), MODELS)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value)
    assert "nothing was billed" in str(info.value)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(InvalidVideoRequestError) as info:
        check_against_model(
            VideoRequest(model=SILENT.id, prompt="p", duration=8, generate_audio=True, seed=3), MODELS
        )
    message = str(info.value)
    assert "duration=8" in message
    assert "allowed: 5, 10" in message
    assert "generate_audio=True is not supported by model alibaba/wan-2.6" in message
    assert "seed=3 is not supported by model alibaba/wan-2.6" in message


def test_undeclared_capabilities_fall_back_to_the_api_enum() -> None:
    check_against_model(VideoRequest(model=SILENT.id, prompt="p", resolution="720p"), MODELS)
    with pytest.raises(InvalidVideoRequestError, match="not supported by the OpenRouter API"):
        check_against_model(VideoRequest(model=SILENT.id, prompt="p", resolution="999p"), MODELS)


def test_unknown_model_lists_the_available_ones() -> None:
    with pytest.raises(InvalidVideoRequestError) as info:
        check_against_model(VideoRequest(model="acme/nope", prompt="p"), MODELS)
    assert "model='acme/nope'" in str(info.value)
    assert "alibaba/wan-2.6, google/veo-3.1" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"model": None}, "model is required"),
        ({"duration": "eight"}, "duration='eight' must be a whole number"),
        ({"duration": True}, "not a boolean"),
        ({"duration": 0}, "at least 1 second"),
        ({"seed": 1.5}, "seed=1.5 must be a whole number"),
        ({"generate_audio": "yes"}, "generate_audio='yes' must be true or false"),
        ({"size": "1280*720"}, "size='1280*720' must look like 'WIDTHxHEIGHT'"),
        ({"resolution": 720}, "resolution=720 must be a string"),
    ],
)
def test_type_errors_before_any_network(kwargs: dict[str, object], fragment: str) -> None:
    arguments: dict[str, object] = {"model": "google/veo-3.1", "prompt": "p", **kwargs}
    with pytest.raises(InvalidVideoRequestError, match=fragment.replace("*", r"\*")):
        build_request_from(arguments)


def test_oversized_body_is_refused() -> None:
    check_body_size(VideoRequest(model=VEO.id, prompt="p" * 1000))
    with pytest.raises(InvalidVideoRequestError, match="OpenRouter accepts at most 52,428,800"):
        check_body_size(VideoRequest(model=VEO.id, prompt="p" * (50 * 1024 * 1024)))
