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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_orvideo._internal.api import KeyStatus, VideoModel

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


def check_key_budget(
    key: KeyStatus, estimate: CostEstimate, *, needed_until: float, strict: bool, conn_id: str, log: Any
) -> None:
    """``budget_preflight``: hold the video against what ``GET /key`` says, before paying.

    Refuses (nothing spent, not retried) when the key expires before ``needed_until`` (the job's
    deadline: a job paid for then could never be fetched), when its effective budget is spent,
    or when the estimate exceeds what that budget has left; an estimate that cannot be made is
    refused only when ``strict``. A key without budgets or expiry passes.
    """
    from airflow_provider_orvideo.exceptions import NOTHING_SPENT, ApiKeyExpiresError, InsufficientBudgetError

    if key.expires_at is not None and key.expires_at.timestamp() <= needed_until:
        raise ApiKeyExpiresError(
            f"The API key of connection {conn_id!r} expires at {key.expires_at.isoformat()}, before this job "
            f"could be waited for and downloaded (job_timeout ends at "
            f"{datetime.fromtimestamp(needed_until, tz=timezone.utc).isoformat(timespec='seconds')}). "
            f"Put a key that lasts longer in the connection, or shorten job_timeout. {NOTHING_SPENT}"
        )
    budget = key.effective_budget
    if budget is None or budget.remaining_usd is None:
        return
    limit = "" if budget.limit_usd is None else f" of ${budget.limit_usd:,.2f}"
    resets = f", until it resets at {budget.resets_at}" if budget.resets_at else " (no reset time given)"
    where = f"the key's {budget.scope} budget has ${budget.remaining_usd:,.2f} left{limit}{resets}"
    if budget.remaining_usd <= 0:
        raise InsufficientBudgetError(
            f"Budget pre-flight: {where}: OpenRouter refuses every paid request through it. {NOTHING_SPENT}"
        )
    if estimate.usd is None:
        if strict:
            raise InsufficientBudgetError(
                f"Budget pre-flight: cannot hold this video against what {where}: {estimate.unknown_reason}, "
                f"and strict_cost_check is on. {NOTHING_SPENT}"
            )
        log.warning(
            "Budget pre-flight: %s; this video's cost cannot be estimated (%s).",
            where,
            estimate.unknown_reason,
        )
        return
    bound = " (upper bound)" if estimate.upper_bound else ""
    if estimate.usd > budget.remaining_usd:
        raise InsufficientBudgetError(
            f"Budget pre-flight: estimated cost ${estimate.usd:.4f}{bound} ({estimate.formula}) exceeds what "
            f"{where}. {NOTHING_SPENT}"
        )
    log.info("Budget pre-flight: %s; this video is estimated at $%.4f%s.", where, estimate.usd, bound)


def preflight_key_budget(
    read_key: Callable[[], KeyStatus],
    estimate: CostEstimate,
    needed_until: float,
    strict: bool,
    conn_id: str,
    log: Any,
) -> None:
    """``budget_preflight``: :func:`check_key_budget` on what ``read_key`` (the hook's cached
    ``GET /key``) answers. Advisory when OpenRouter cannot answer it: a warning, and the submit's
    own answer tells (a spent budget is refused there, and nothing is created)."""
    from airflow_provider_orvideo.exceptions import OpenRouterVideoError

    try:
        key = read_key()
    except OpenRouterVideoError as error:
        log.warning("Budget pre-flight skipped: GET /key failed (%s). Submitting.", error)
        return
    check_key_budget(key, estimate, needed_until=needed_until, strict=strict, conn_id=conn_id, log=log)
