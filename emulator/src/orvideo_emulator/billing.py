"""What a completed job is billed, from the model's ``pricing_skus`` and the request.

The server's side of pricing, written independently of the provider's estimator (an emulator
that shared the client's arithmetic could never catch a mistake in it). Unlike an estimate, a
bill is never an upper bound: every choice is settled by the time the video exists.

- ``per-video-second[-<resolution>][-audio]``: price x duration;
- ``per-video[-<resolution>]``: a flat price per video;
- any other family (``per-million-video-tokens``): not billable from the request, so the
  caller charges its default cost.

What the request leaves out is rendered (and billed) at the model's default:

- duration: the request's, else the model's first supported duration;
- resolution: the request's ``resolution``, else its ``size`` (short side, ``1080x1920`` is
  ``1080p``), else the model's first supported resolution;
- audio: the request's ``generate_audio``, else the model's ``generate_audio`` capability.

A SKU applies when its resolution (if any) is the rendered one, and its ``-audio`` suffix only
when audio is generated; of those, the one naming the resolution wins, then the one naming audio.

The key is charged a job's bill when the job completes (OpenRouter charges a request when it
finishes): a ``Charge`` says when and how much, for the key's usage and budgets (``budgets.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple


class Charge(NamedTuple):
    """One bill charged to the key: ``usd`` at ``at`` (Unix seconds, when the job completed)."""

    at: float
    usd: float


_SKU = re.compile(r"per-video(?P<per_second>-second)?(?:-(?P<resolution>\d+p|\dK))?(?P<audio>-audio)?")
_SIZE = re.compile(r"(\d+)x(\d+)")


def _rendered_resolution(request: Mapping[str, Any], model: Mapping[str, Any]) -> str | None:
    if isinstance(request.get("resolution"), str):
        resolution: str = request["resolution"]
        return resolution
    size = request.get("size")
    if isinstance(size, str) and (match := _SIZE.fullmatch(size)):
        return f"{min(int(match[1]), int(match[2]))}p"
    supported = model.get("supported_resolutions")
    return str(supported[0]) if supported else None


def _rendered_duration(request: Mapping[str, Any], model: Mapping[str, Any]) -> int | None:
    duration = request.get("duration")
    if isinstance(duration, int) and not isinstance(duration, bool):
        return duration
    supported = model.get("supported_durations")
    return int(supported[0]) if supported else None


def bill(model: Mapping[str, Any], request: Mapping[str, Any]) -> float | None:
    """The USD cost of one video for ``request`` on ``model``; None when its SKUs can't say."""
    skus = model.get("pricing_skus") or {}
    resolution = _rendered_resolution(request, model)
    audio = request.get("generate_audio", model.get("generate_audio")) is True
    best: tuple[tuple[int, int], bool, Decimal] | None = None
    for name, price_text in skus.items():
        match = _SKU.fullmatch(name)
        if match is None:
            continue
        try:
            price = Decimal(price_text)
        except (InvalidOperation, TypeError):
            continue
        if not price.is_finite() or (match["resolution"] and match["resolution"] != resolution):
            continue
        if match["audio"] and not audio:
            continue
        rank = (int(match["resolution"] is not None), int(match["audio"] is not None))
        if best is None or rank > best[0]:  # ties: the first listed
            best = (rank, bool(match["per_second"]), price)
    if best is None:
        return None
    _, per_second, price = best
    if not per_second:
        return float(price)
    seconds = _rendered_duration(request, model)
    return None if seconds is None else float(price * seconds)
