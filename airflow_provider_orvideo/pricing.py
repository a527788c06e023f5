"""Estimate what a video request will cost from the model's ``pricing_skus``, before paying.

OpenRouter publishes prices per model as ``{sku name: "USD as a string"}`` and the names differ
between model families, so the estimate understands the families it can price and says plainly
when it cannot:

=============================================  ====================================================
SKU name                                       estimate
=============================================  ====================================================
``per-video-second``                           price x duration
``per-video-second-<resolution>``              price x duration, for that resolution
``per-video-second[-<resolution>]-audio``      price x duration, when audio is generated
``per-video[-<resolution>]``                   price (flat per video)
anything else (``per-million-video-tokens``)   no estimate: the unit cannot be derived from the request
=============================================  ====================================================

The most specific SKU that matches the request wins (resolution and audio). When the request
leaves a priced dimension open (no ``duration``, no ``resolution``, audio left to the model's
default) the estimate takes the most expensive choice and says it is an upper bound, so a budget
check never under-counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_orvideo._internal.api import VideoModel

__all__ = [
    "CostEstimate",
    "estimate_cost",
]

_SKU = re.compile(r"^per-video(?P<per_second>-second)?(?:-(?P<resolution>\d+p|\dK))?(?P<audio>-audio)?$")


@dataclass(frozen=True)
class _Sku:
    name: str
    price: float
    per_second: bool
    resolution: str | None
    audio: bool


@dataclass(frozen=True)
class CostEstimate:
    """An estimate in USD (``usd``), or the reason there is none (``unknown_reason``)."""

    usd: float | None
    formula: str
    upper_bound: bool = False
    unknown_reason: str | None = None


def _parse_skus(skus: Mapping[str, str]) -> tuple[list[_Sku], list[str]]:
    parsed: list[_Sku] = []
    unknown: list[str] = []
    for name, price_text in skus.items():
        match = _SKU.match(name)
        try:
            price = float(price_text)
        except ValueError:
            unknown.append(name)
            continue
        if match is None:
            unknown.append(name)
            continue
        parsed.append(_Sku(name, price, bool(match["per_second"]), match["resolution"], bool(match["audio"])))
    return parsed, unknown


def _matches(sku: _Sku, resolution: str | None, audio: bool) -> bool:
    return (sku.resolution is None or resolution is None or sku.resolution == resolution) and (
        not sku.audio or audio
    )


def _specificity(sku: _Sku, resolution: str | None, audio: bool) -> tuple[int, int]:
    return (int(sku.resolution is not None and sku.resolution == resolution), int(sku.audio and audio))


def _best(candidates: Sequence[_Sku], resolution: str | None, audio: bool) -> _Sku:
    top = max(_specificity(s, resolution, audio) for s in candidates)
    # Among equally specific SKUs (e.g. resolution left open), the dearest is the safe bound.
    return max((s for s in candidates if _specificity(s, resolution, audio) == top), key=lambda s: s.price)


def estimate_cost(
    model: VideoModel, *, duration: int | None, resolution: str | None, generate_audio: bool | None
) -> CostEstimate:
    """Estimate one video's price for this request on this model."""
    if not model.pricing_skus:
        return CostEstimate(None, "", unknown_reason=f"model {model.id} publishes no pricing_skus")
    skus, unknown = _parse_skus(model.pricing_skus)
    if not skus:
        return CostEstimate(
            None,
            "",
            unknown_reason=f"model {model.id} is priced by SKUs this provider cannot estimate: {', '.join(unknown)}",
        )
    upper_bound = False
    audio = bool(generate_audio)
    if generate_audio is None and model.generate_audio:
        audio, upper_bound = True, any(s.audio for s in skus)
    if resolution is None and len({s.resolution for s in skus if s.resolution}) > 1:
        upper_bound = True
    candidates = [s for s in skus if _matches(s, resolution, audio)]
    if not candidates:
        return CostEstimate(
            None,
            "",
            unknown_reason=f"none of model {model.id}'s SKUs ({', '.join(model.pricing_skus)}) covers "
            f"resolution={resolution!r}",
        )
    sku = _best(candidates, resolution, audio)
    if not sku.per_second:
        return CostEstimate(sku.price, f"{sku.name} ${sku.price:g} per video", upper_bound)
    seconds = duration
    if seconds is None:
        if not model.supported_durations:
            return CostEstimate(
                None,
                "",
                unknown_reason=f"no duration given and model {model.id} declares no supported_durations",
            )
        seconds, upper_bound = max(model.supported_durations), True
    return CostEstimate(sku.price * seconds, f"{sku.name} ${sku.price:g}/s x {seconds} s", upper_bound)


def check_cost(estimate: CostEstimate, *, max_cost_usd: float | None, strict: bool, log: Any) -> None:
    """Log the estimate and hold it against ``max_cost_usd`` before paying.

    Raises :class:`~airflow_provider_orvideo.exceptions.VideoCostLimitError` when the estimate
    exceeds the cap, or when it cannot be made and ``strict`` is on; otherwise (no estimate, not
    strict) warns that the cap could not be checked and lets the submit go ahead.
    """
    from airflow_provider_orvideo.exceptions import NOTHING_SPENT, VideoCostLimitError

    bound = " (upper bound)" if estimate.upper_bound else ""
    if estimate.usd is not None:
        log.info("Estimated cost: $%.4f%s = %s.", estimate.usd, bound, estimate.formula)
    if max_cost_usd is None:
        return
    if estimate.usd is None:
        if strict:
            raise VideoCostLimitError(
                f"Cannot check max_cost_usd=${max_cost_usd:g}: {estimate.unknown_reason}, and "
                f"strict_cost_check is on. {NOTHING_SPENT}"
            )
        log.warning(
            "Cannot check max_cost_usd=$%g: %s. Submitting anyway (set strict_cost_check=True to refuse).",
            max_cost_usd,
            estimate.unknown_reason,
        )
    elif estimate.usd > max_cost_usd:
        raise VideoCostLimitError(
            f"Estimated cost ${estimate.usd:.4f}{bound} ({estimate.formula}) exceeds "
            f"max_cost_usd=${max_cost_usd:g}. {NOTHING_SPENT}"
        )
