from __future__ import annotations

import json

import pytest

from airflow_provider_orvideo._internal.api import (
    ENDED_WITHOUT_VIDEO,
    TERMINAL_JOB_STATUSES,
    Endpoint,
    JobStatus,
    api_error,
    base_url_from_connection,
    content_request,
    parse_job,
    parse_models,
    settings_from_connection,
)
from airflow_provider_orvideo.exceptions import (
    InvalidConnectionError,
    OpenRouterApiError,
    OpenRouterAuthError,
    OpenRouterBadRequestError,
    OpenRouterCreditsExhaustedError,
    OpenRouterNotFoundError,
    OpenRouterRateLimitError,
    OpenRouterResponseError,
    OpenRouterServerError,
)


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, "https://openrouter.ai/api/v1"),
        ("http://127.0.0.1:8089/api/v1", None, None, "http://127.0.0.1:8089/api/v1"),
        ("http://127.0.0.1:8089/api/v1/", None, None, "http://127.0.0.1:8089/api/v1"),
        ("https://openrouter.ai", None, None, "https://openrouter.ai/api/v1"),
        ("127.0.0.1", "http", 18765, "http://127.0.0.1:18765/api/v1"),
        ("openrouter.ai", None, None, "https://openrouter.ai/api/v1"),
        ("http://127.0.0.1/api/v1", None, 9000, "http://127.0.0.1:9000/api/v1"),
    ],
)
def test_base_url_from_connection_fields(
    host: str | None, schema: str | None, port: int | None, expected: str
) -> None:
    assert base_url_from_connection(host, schema, port) == expected


def test_settings_keep_the_key_out_of_repr() -> None:
    settings = settings_from_connection(
        conn_id="openrouter_default",
        host=None,
        schema=None,
        port=None,
        password="sk-or-secret",
        extra={"timeout": "12", "app_title": "Pipelines"},
    )
    assert "sk-or-secret" not in repr(settings)
    assert settings.timeout == 12.0
    assert settings.headers()["Authorization"] == "Bearer sk-or-secret"
    assert settings.headers()["X-OpenRouter-Title"] == "Pipelines"


def test_missing_key_is_a_clear_auth_error() -> None:
    with pytest.raises(InvalidConnectionError, match="no API key"):
        settings_from_connection(
            conn_id="openrouter_default", host=None, schema=None, port=None, password=None, extra={}
        )


def test_which_statuses_end_a_job_is_said_once() -> None:
    assert {"completed", "failed", "cancelled", "expired"} == TERMINAL_JOB_STATUSES
    assert TERMINAL_JOB_STATUSES - {JobStatus.COMPLETED} == ENDED_WITHOUT_VIDEO
    for status in JobStatus:
        assert status.is_terminal is (status in TERMINAL_JOB_STATUSES)
        assert status.ended_without_video is (status in ENDED_WITHOUT_VIDEO)
    assert not JobStatus.PENDING.is_terminal
    assert not JobStatus.IN_PROGRESS.is_terminal


def test_job_ids_are_quoted_into_paths() -> None:
    assert content_request("a/b c", 2).path == "/videos/a%2Fb%20c/content"
    assert content_request("x", 2).params == {"index": 2}


def test_parse_job_drops_signed_urls() -> None:
    job = parse_job(
        {
            "id": "gen-vid-1",
            "polling_url": "https://openrouter.ai/api/v1/videos/gen-vid-1",
            "status": "completed",
            "generation_id": "gen-2",
            "unsigned_urls": ["https://openrouter.ai/api/v1/videos/gen-vid-1/content?index=0"],
            "urls": ["https://storage.example/v.mp4?sig=SECRET"],
            "expires_at": 1,
            "usage": {"cost": 0.5, "is_byok": False},
        }
    )
    assert "SECRET" not in repr(job)
    assert job.known_status is JobStatus.COMPLETED
    assert job.output_count == 1
    assert job.usage() == {"cost": 0.5, "is_byok": False}


@pytest.mark.parametrize("payload", [{}, {"id": ""}, {"id": "x"}, [], "text"])
def test_parse_job_rejects_malformed_objects(payload: object) -> None:
    with pytest.raises(OpenRouterResponseError):
        parse_job(payload)


def test_unknown_status_is_kept_as_a_string() -> None:
    job = parse_job({"id": "x", "status": "paused"})
    assert job.known_status is None
    assert job.status == "paused"


def test_parse_models_keeps_nulls_as_undeclared() -> None:
    models = parse_models(
        {
            "data": [
                {
                    "id": "m/1",
                    "name": "M",
                    "supported_durations": [4, 8],
                    "supported_resolutions": None,
                    "generate_audio": None,
                    "seed": False,
                    "allowed_passthrough_parameters": [],
                    "pricing_skus": {"per-video-second": "0.1"},
                }
            ]
        }
    )
    assert models["m/1"].supported_durations == (4, 8)
    assert models["m/1"].supported_resolutions is None
    with pytest.raises(OpenRouterResponseError):
        parse_models({"models": []})


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, OpenRouterBadRequestError),
        (401, OpenRouterAuthError),
        (402, OpenRouterCreditsExhaustedError),  # a subclass of OpenRouterPaymentRequiredError (issue 25)
        (403, OpenRouterAuthError),
        (404, OpenRouterNotFoundError),
        (410, OpenRouterNotFoundError),
        (413, OpenRouterBadRequestError),
        (429, OpenRouterRateLimitError),
        (500, OpenRouterServerError),
        (502, OpenRouterServerError),
        (418, OpenRouterApiError),
    ],
)
def test_api_errors_are_typed_and_carry_the_message_verbatim(
    status: int, cls: type[OpenRouterApiError]
) -> None:
    body = json.dumps(
        {
            "error": {
                "code": status,
                "message": "Exact words from OpenRouter",
                "metadata": {"error_type": "kind"},
            }
        }
    ).encode()
    error = api_error(Endpoint.POLL, status, body)
    assert type(error) is cls
    assert error.http_status == status
    assert error.api_message == "Exact words from OpenRouter"
    assert error.error_type == "kind"
    assert f"HTTP {status}: Exact words from OpenRouter" in str(error)


def test_api_error_without_json_body_still_says_what_happened() -> None:
    error = api_error(Endpoint.CONTENT, 502, b"<html>bad gateway</html>")
    assert isinstance(error, OpenRouterServerError)
    assert "non-JSON body" in error.api_message
