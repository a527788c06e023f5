"""The provider's Airflow plugin: OpenRouter's webhook receiver, and on Airflow 3.1+ the video
player, the gallery and their places in Airflow's UI, all inside the api-server.

Registered by the ``airflow.plugins`` entry point, so installing the provider is enough. Every
Airflow component loads plugins, so this module stays light: the app is built on the first
request the api-server routes to it (:class:`LazyPluginApp`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_orvideo._internal.versions import HAS_UI_PLUGINS

__all__ = [
    "OpenRouterVideoPlugin",
]

URL_PREFIX = "/orvideo"
"""Where the api-server mounts the plugin's app: the receiver is at ``/orvideo/webhook``."""

EXTERNAL_VIEWS: list[dict[str, Any]] = [
    # Relative hrefs: the UI resolves them against Airflow's base URL (sub-path deployments work).
    # Only destinations every Airflow 3.1+ accepts: one unknown value hides all plugin views.
    {
        "name": "Videos",
        "href": "orvideo/gallery",
        "url_route": "orvideo-videos",
        "destination": "nav",
        "category": "browse",
    },
    {
        "name": "Videos",
        "href": "orvideo/gallery/dag/{DAG_ID}",
        "url_route": "orvideo-dag-videos",
        "destination": "dag",
    },
]
"""The gallery in Browse and as a tab of every DAG (Airflow 3.1+ renders them in a frame)."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def build_plugin_app() -> Any:
    """The receiver, plus the video pages where Airflow's UI can show them (3.1+)."""
    from airflow_provider_orvideo.plugins._webhook_receiver import build_app

    app = build_app()
    if HAS_UI_PLUGINS:
        from airflow_provider_orvideo.plugins._video_viewer import add_video_routes

        add_video_routes(app)
    return app


class LazyPluginApp:
    """An ASGI app that builds :func:`build_plugin_app` once, when first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = build_plugin_app()
        await self._app(scope, receive, send)


class OpenRouterVideoPlugin(AirflowPlugin):
    """``POST /orvideo/webhook`` (:mod:`~airflow_provider_orvideo.plugins._webhook_receiver`) and,
    on Airflow 3.1+, the player, stream and gallery (:mod:`~airflow_provider_orvideo.plugins._video_viewer`)."""

    name = "openrouter_video"
    fastapi_apps = [  # noqa: RUF012 - the attribute AirflowPlugin declares
        {"app": LazyPluginApp(), "url_prefix": URL_PREFIX, "name": "OpenRouter video"},
    ]
    external_views = EXTERNAL_VIEWS if HAS_UI_PLUGINS else []
