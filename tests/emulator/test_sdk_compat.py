"""The official ``openrouter`` SDK (1.3.84) works against the emulator unchanged.

This is the check that the emulator is faithful where the SDK is strict: required response
keys, content types, status codes and error envelopes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from openrouter import OpenRouter, components, errors
from orvideo_emulator.models import VIDEO_MODELS

from tests.conftest import Emulator


@pytest.fixture
def sdk(emulator: Emulator) -> Iterator[OpenRouter]:
    with OpenRouter(api_key=emulator.api_key, server_url=emulator.base_url) as client:
        yield client


def test_generate_poll_download(emulator: Emulator, sdk: OpenRouter) -> None:
    first_frame: components.FrameImageTypedDict = {
        "type": "image_url",
        "image_url": {"url": "https://example.test/a.png"},
        "frame_type": "first_frame",
    }
    # The TypedDict spells the slug as a Python name; the SDK sends it as "google-vertex".
    provider: components.VideoGenerationRequestProviderTypedDict = {
        "options": {"google_vertex": {"parameters": {"negativePrompt": "blurry"}}}
    }
    submitted = sdk.video_generation.generate(
        model="google/veo-3.1",
        prompt="a lighthouse at dusk",
        duration=8,
        resolution="1080p",
        aspect_ratio="16:9",
        generate_audio=True,
        seed=7,
        frame_images=[first_frame],
        provider=provider,
    )
    assert submitted.status == "pending"

    statuses = []
    deadline = time.monotonic() + 5
    job = submitted
    while job.status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
        job = sdk.video_generation.get_generation(job_id=submitted.id)
        statuses.append(job.status)
    assert "in_progress" in statuses
    assert job.usage is not None
    assert job.usage.cost == 3.2  # per-video-second-audio $0.40 x 8 s
    assert job.unsigned_urls is not None
    assert job.urls is not None
    assert job.expires_at is not None
    assert job.generation_id is not None

    response = sdk.video_generation.get_video_content(job_id=job.id, index=0)
    direct = httpx.get(
        f"{emulator.base_url}/videos/{job.id}/content",
        params={"index": 0},
        headers={"Authorization": f"Bearer {emulator.api_key}"},
    )
    assert response.read() == direct.content
    assert response.content[4:8] == b"ftyp"

    (logged,) = emulator.control.requests("submit")
    assert logged["headers"]["user-agent"].startswith("speakeasy-sdk/python 1.3.84")
    assert logged["body"]["provider"] == {
        "options": {"google-vertex": {"parameters": {"negativePrompt": "blurry"}}}
    }
    assert logged["body"]["frame_images"] == [first_frame]
    assert emulator.control.requests("content")[0]["query"] == {"index": "0"}


def test_list_models_parses_every_model(sdk: OpenRouter) -> None:
    models = sdk.video_generation.list_videos_models().data
    assert [model.id for model in models] == [model["id"] for model in VIDEO_MODELS]
    veo = next(model for model in models if model.id == "google/veo-3.1")
    assert veo.supported_durations == [4, 6, 8]
    assert veo.upscale_factor is None


def test_sdk_error_classes(emulator: Emulator, sdk: OpenRouter) -> None:
    videos = sdk.video_generation
    with pytest.raises(errors.BadRequestResponseError, match="Invalid duration 7"):
        videos.generate(model="google/veo-3.1", prompt="p", duration=7)
    with pytest.raises(errors.NotFoundResponseError):
        videos.get_generation(job_id="gen-vid-1-missing")

    emulator.control.add_fault("submit", "status", status=429, retry_after="3")
    with pytest.raises(errors.TooManyRequestsResponseError) as rate_limited:
        videos.generate(model="google/veo-3.1", prompt="p")
    assert rate_limited.value.headers["retry-after"] == "3"
    assert rate_limited.value.data.error.metadata == {"error_type": "rate_limit_exceeded"}

    emulator.control.add_fault("submit", "status", status=413)
    with pytest.raises(errors.PayloadTooLargeResponseError):
        videos.generate(model="google/veo-3.1", prompt="p")

    job = videos.generate(model="google/veo-3.1", prompt="p")
    with pytest.raises(errors.ConflictResponseError):
        videos.get_video_content(job_id=job.id)

    emulator.control.add_fault("poll", "unknown_status", value="paused")
    assert videos.get_generation(job_id=job.id).status == "paused"

    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, gone=True)
    gone = videos.generate(model="google/veo-3.1", prompt="p")
    with pytest.raises(errors.GoneResponseError):
        videos.get_video_content(job_id=gone.id)

    with (
        OpenRouter(api_key="wrong", server_url=emulator.base_url) as stranger,
        pytest.raises(errors.UnauthorizedResponseError),
    ):
        stranger.video_generation.get_generation(job_id=job.id)


def test_sdk_reads_the_key_with_its_budgets(emulator: Emulator, sdk: OpenRouter) -> None:
    """``GET /key`` parses into SDK 1.3.84's model, every budget layer and the expiry included."""
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, cost=1.5)
    sdk.video_generation.generate(model="google/veo-3.1", prompt="p")
    emulator.control.set_budget(20.0, reset_interval="monthly", spend_usd=3.0)
    emulator.control.set_budget(50.0, layer="workspace", reset_interval="weekly")
    emulator.control.set_budget(6.0, layer="guardrail", scope="member", reset_interval="daily", spend_usd=5.0)
    emulator.control.expire_key_at(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())

    data = sdk.api_keys.get_current_key_metadata().data
    assert data.usage == 1.5
    assert data.limit == 20.0
    assert data.limit_reset == "monthly"
    assert data.expires_at == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert [budget.scope for budget in data.budgets] == ["member", "workspace", "key_limit"]
    member = data.budgets[0]
    assert (member.limit_usd, member.spend_usd, member.remaining_usd) == (6.0, 5.0, 1.0)
    assert member.reset_interval == "daily"
    assert member.resets_at is not None
    assert member.resets_at.tzinfo is not None
    assert member.guardrail_id is not None
    assert data.budgets[1].budget_id is not None
    assert data.effective_budget is not None
    assert data.effective_budget.scope == "member"
    assert data.budgets[2].resets_at is not None
    assert data.budgets[2].resets_at.day == 1  # monthly: the 1st, midnight UTC

    emulator.control.clear_budgets()
    emulator.control.expire_key_at(None)
    bare = sdk.api_keys.get_current_key_metadata().data
    assert (bare.budgets, bare.effective_budget, bare.expires_at, bare.limit) == ([], None, None, None)


def test_sdk_raises_its_typed_errors_for_budget_refusals(emulator: Emulator, sdk: OpenRouter) -> None:
    """A spent budget's 403 and the in-flight 402s parse into the SDK's error models, with
    ``error.metadata`` intact; the SDK does not retry a 402 on its own."""
    videos = sdk.video_generation
    emulator.control.set_budget(2.0, layer="guardrail", reset_interval="daily", spend_usd=2.5)
    with pytest.raises(errors.ForbiddenResponseError, match="Guardrail budget limit exceeded") as spent:
        videos.generate(model="google/veo-3.1", prompt="p")
    assert spent.value.data.error.code == 403
    metadata = spent.value.data.error.metadata
    assert metadata is not None
    assert metadata["limit_source"] == "openrouter_guardrail_budget"
    assert (metadata["scope"], metadata["limit_usd"], metadata["spend_usd"]) == ("api_key", 2.0, 2.5)
    assert metadata["resets_at"].endswith("T00:00:00.000Z")
    emulator.control.clear_budgets()

    emulator.control.in_flight_budget_exhausted(retry_after=4)
    with pytest.raises(errors.PaymentRequiredResponseError) as in_flight:
        videos.generate(model="google/veo-3.1", prompt="p")
    assert in_flight.value.headers["retry-after"] == "4"
    assert in_flight.value.data.error.metadata == {
        "limit_source": "openrouter_in_flight_budget",
        "error_type": "in_flight_budget_exhausted",
    }

    emulator.control.weight_exceeds_budget()
    with pytest.raises(errors.PaymentRequiredResponseError) as too_heavy:
        videos.generate(model="google/veo-3.1", prompt="p")
    assert too_heavy.value.data.error.metadata == {
        "limit_source": "openrouter_credits",
        "error_type": "weight_exceeds_budget",
    }
    assert "retry-after" not in too_heavy.value.headers
    assert [r["status"] for r in emulator.control.requests("submit")] == [403, 402, 402]
    assert emulator.control.jobs() == []


def test_sdk_retries_submit_after_a_5xx_creating_a_second_job(emulator: Emulator, sdk: OpenRouter) -> None:
    """The hazard the provider must avoid: no idempotency key, yet the SDK retries POSTs on 5xx."""
    emulator.control.add_fault("submit", "status", status=500, after_create=True)
    sdk.video_generation.generate(model="google/veo-3.1", prompt="p")
    assert emulator.control.count("submit") == 2
    assert len(emulator.control.jobs()) == 2


async def test_async_client(emulator: Emulator) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, outputs=2)
    async with OpenRouter(api_key=emulator.api_key, server_url=emulator.base_url) as sdk:
        videos = sdk.video_generation
        models = await videos.list_videos_models_async()
        assert len(models.data) == len(VIDEO_MODELS)
        job = await videos.generate_async(model="bytedance/seedance-2.0", prompt="p", duration=12)
        job = await videos.get_generation_async(job_id=job.id)
        assert job.status == "completed"
        assert job.unsigned_urls is not None
        assert len(job.unsigned_urls) == 2
        response = await videos.get_video_content_async(job_id=job.id, index=1)
        assert (await response.aread())[4:8] == b"ftyp"


def test_the_model_catalogue_uses_only_values_of_the_api_enums() -> None:
    """Every capability value is one the official SDK's enums know (not an UnrecognizedStr)."""
    from typing import get_args

    from openrouter.components import videomodel
    from orvideo_emulator.models import VIDEO_MODELS

    def known(alias: Any) -> set[str]:
        literal = next(arg for arg in get_args(alias) if get_args(arg) and isinstance(get_args(arg)[0], str))
        return set(get_args(literal))

    enums = {
        "supported_sizes": known(videomodel.SupportedSize),
        "supported_resolutions": known(videomodel.SupportedResolution),
        "supported_aspect_ratios": known(videomodel.SupportedAspectRatio),
    }
    for model in VIDEO_MODELS:
        for field, allowed in enums.items():
            outside = set(model[field] or ()) - allowed
            assert not outside, f"{model['id']} {field}: {sorted(outside)} are not in the API's enum"
