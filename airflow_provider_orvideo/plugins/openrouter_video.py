"""The provider's Airflow plugin: OpenRouter's webhook receiver inside the api-server.

Registered through ``get_provider_info()["plugins"]``, so installing the provider is enough.
Every Airflow component loads plugins, so this module stays light: the receiver's FastAPI app
is built on the first request the api-server routes to it (:class:`LazyReceiver`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

__all__ = [
    "URL_PREFIX",
    "LazyReceiver",
    "OpenRouterVideoPlugin",
]

URL_PREFIX = "/orvideo"
"""Where the api-server mounts the plugin's app: the receiver is at ``/orvideo/webhook``."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyReceiver:
    """An ASGI app that builds :func:`~airflow_provider_orvideo.plugins.webhook_receiver.build_app` once, when first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from airflow_provider_orvideo.plugins.webhook_receiver import build_app

            self._app = build_app()
        await self._app(scope, receive, send)


class OpenRouterVideoPlugin(AirflowPlugin):
    """Adds ``POST /orvideo/webhook`` to the api-server (see :mod:`~airflow_provider_orvideo.plugins.webhook_receiver`)."""

    name = "openrouter_video"
    fastapi_apps = [  # noqa: RUF012 - the attribute AirflowPlugin declares
        {"app": LazyReceiver(), "url_prefix": URL_PREFIX, "name": "OpenRouter video webhook receiver"},
    ]
