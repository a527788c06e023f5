from __future__ import annotations

import pytest

from airflow_provider_orvideo._internal.api import VideoModel
from airflow_provider_orvideo.pricing import estimate_cost


def model(
    skus: dict[str, str] | None, *, audio: bool | None = True, durations: tuple[int, ...] | None = (4, 6, 8)
) -> VideoModel:
    return VideoModel(
        id="m/x",
        name="X",
        supported_resolutions=("720p", "1080p"),
        supported_aspect_ratios=None,
        supported_sizes=None,
        supported_durations=durations,
        supported_frame_images=None,
        generate_audio=audio,
        seed=None,
        allowed_passthrough_parameters=(),
        pricing_skus=skus,
    )


VEO = model({"per-video-second": "0.20", "per-video-second-audio": "0.40"})
KLING = model({"per-video-second-720p": "0.112", "per-video-second-1080p": "0.168"}, audio=False)
HAILUO = model({"per-video": "0.28", "per-video-1080p": "0.49"}, audio=False)


@pytest.mark.parametrize(
    ("priced", "kwargs", "usd", "formula", "upper_bound"),
    [
        (
            VEO,
            {"duration": 8, "resolution": None, "generate_audio": False},
            1.6,
            "per-video-second $0.2/s x 8 s",
            False,
        ),
        (
            VEO,
            {"duration": 8, "resolution": None, "generate_audio": True},
            3.2,
            "per-video-second-audio $0.4/s x 8 s",
            False,
        ),
        # Audio left to the model's default (on): the audio price, flagged as an upper bound.
        (
            VEO,
            {"duration": 4, "resolution": None, "generate_audio": None},
            1.6,
            "per-video-second-audio $0.4/s x 4 s",
            True,
        ),
        # No duration: the longest supported duration bounds the price.
        (
            VEO,
            {"duration": None, "resolution": "720p", "generate_audio": False},
            1.6,
            "per-video-second $0.2/s x 8 s",
            True,
        ),
        (
            KLING,
            {"duration": 6, "resolution": "1080p", "generate_audio": None},
            0.168 * 6,
            "per-video-second-1080p $0.168/s x 6 s",
            False,
        ),
        (
            KLING,
            {"duration": 6, "resolution": "720p", "generate_audio": None},
            0.112 * 6,
            "per-video-second-720p $0.112/s x 6 s",
            False,
        ),
        # Resolution left open with per-resolution prices: the dearest.
        (
            KLING,
            {"duration": 6, "resolution": None, "generate_audio": None},
            0.168 * 6,
            "per-video-second-1080p $0.168/s x 6 s",
            True,
        ),
        (
            HAILUO,
            {"duration": 6, "resolution": "1080p", "generate_audio": None},
            0.49,
            "per-video-1080p $0.49 per video",
            False,
        ),
        (
            HAILUO,
            {"duration": 6, "resolution": "768p", "generate_audio": None},
            0.28,
            "per-video $0.28 per video",
            False,
        ),
    ],
)
def test_estimates_per_sku_family(
    priced: VideoModel, kwargs: dict[str, object], usd: float, formula: str, upper_bound: bool
) -> None:
    estimate = estimate_cost(priced, **kwargs)  # type: ignore[arg-type]
    assert estimate.usd == pytest.approx(usd)
    assert estimate.formula == formula
    assert estimate.upper_bound is upper_bound


@pytest.mark.parametrize(
    ("priced", "fragment"),
    [
        (model(None), "publishes no pricing_skus"),
        (model({"per-million-video-tokens": "7.00"}), "cannot estimate: per-million-video-tokens"),
        (model({"per-video-second-1024p": "0.5"}), "covers resolution='1080p'"),
        (model({"per-video-second": "0.1"}, durations=None), "declares no supported_durations"),
    ],
)
def test_unknown_prices_say_why(priced: VideoModel, fragment: str) -> None:
    duration = None if priced.supported_durations is None else 4
    estimate = estimate_cost(
        priced,
        duration=duration if "durations" not in fragment else None,
        resolution="1080p",
        generate_audio=False,
    )
    assert estimate.usd is None
    assert estimate.unknown_reason is not None
    assert fragment in estimate.unknown_reason
