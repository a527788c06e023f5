"""How the video pages answer a refusal (not signed in, not allowed, a bad URL, slow storage): one
handler for every route, an HTML page or a login redirect for pages, plain text for media.

With real users and tokens through the api-server: ``tests/system/test_video_viewer.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import AIRFLOW_VERSION

if AIRFLOW_VERSION < (3, 1):
    pytest.skip("the video pages exist on Airflow 3.1+", allow_module_level=True)

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from airflow_provider_orvideo.plugins._video_viewer import (
    PAGE_HEADERS,
    Forbidden,
    NotAuthenticated,
    StorageTimeout,
    _answered,
)
from airflow_provider_orvideo.plugins._video_views import InvalidViewRequest

REFUSALS = {
    "unauthenticated": NotAuthenticated("Token expired"),
    "forbidden": Forbidden("You may not read DAG d."),
    "invalid": InvalidViewRequest("map index 'x' is not a whole number"),
    "slow": StorageTimeout("The video's storage did not answer within 15 s."),
}


def _client() -> TestClient:
    app = Starlette()
    for name, error in REFUSALS.items():

        async def refuse(request: Request, error: Exception = error) -> Response:
            raise error

        for kind in ("page", "media"):
            app.router.add_route(f"/{kind}/{name}", _answered(kind)(refuse), methods=["GET"])
    return TestClient(app, follow_redirects=False)


@pytest.mark.parametrize(
    ("name", "status", "title", "extra_headers"),
    [
        ("forbidden", 403, "Not allowed", {}),
        ("invalid", 400, "Bad request", {}),
        ("slow", 503, "Storage too slow", {"retry-after": "30"}),
    ],
)
def test_a_page_refusal_is_an_html_page_with_the_page_headers(
    name: str, status: int, title: str, extra_headers: dict[str, str]
) -> None:
    response = _client().get(f"/page/{name}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert title in response.text
    assert str(REFUSALS[name]).replace("'", "&#39;") in response.text
    for header, value in {**PAGE_HEADERS, **extra_headers}.items():
        assert response.headers[header] == value


def test_a_page_without_a_user_goes_to_the_login_or_says_to_sign_in() -> None:
    """To the auth manager's login page; without one (here: no api-server), a 401 page."""
    response = _client().get("/page/unauthenticated")
    if response.status_code == 303:
        assert response.headers["location"]
    else:
        assert response.status_code == 401
        assert "Sign in to Airflow" in response.text
        assert response.headers["content-security-policy"] == PAGE_HEADERS["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("name", "status", "body", "extra_headers"),
    [
        ("unauthenticated", 401, "Not authenticated: Token expired", {}),
        ("forbidden", 403, "You may not read DAG d.", {}),
        ("invalid", 400, "map index 'x' is not a whole number", {}),
        ("slow", 503, "The video's storage did not answer within 15 s.", {"retry-after": "30"}),
    ],
)
def test_a_media_refusal_is_plain_text_with_the_status_alone(
    name: str, status: int, body: str, extra_headers: dict[str, Any]
) -> None:
    response = _client().get(f"/media/{name}")
    assert (response.status_code, response.text) == (status, body)
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers
    for header, value in extra_headers.items():
        assert response.headers[header] == value


def test_anything_else_is_not_turned_into_an_answer() -> None:
    """A bug stays a bug (500, logged by the api-server), not a page that hides it."""

    async def broken(request: Request) -> Response:
        raise KeyError("bug")

    app = Starlette()
    app.router.add_route("/page", _answered("page")(broken), methods=["GET"])
    with pytest.raises(KeyError):
        TestClient(app).get("/page")
