"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Kept free of heavy imports: every Airflow component calls this at start-up.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_orvideo import __version__

__all__ = [
    "get_provider_info",
]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-orvideo",
        "name": "OpenRouter Video",
        "description": "Generate videos with OpenRouter's asynchronous video API from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "OpenRouter Video",
                "external-doc-url": "https://openrouter.ai/docs/guides/overview/multimodal/video-generation",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "OpenRouter Video",
                "python-modules": ["airflow_provider_orvideo.hooks.openrouter_video"],
            }
        ],
        "operators": [
            {
                "integration-name": "OpenRouter Video",
                "python-modules": ["airflow_provider_orvideo.operators.openrouter_video"],
            }
        ],
        "triggers": [
            {
                "integration-name": "OpenRouter Video",
                "python-modules": ["airflow_provider_orvideo.triggers.openrouter_video"],
            }
        ],
        # The "Watch video" button (Airflow 3.1+); the operator declares it, this lists it for
        # `airflow providers links`.
        "extra-links": ["airflow_provider_orvideo.links.openrouter_video.WatchVideoLink"],
        "task-decorators": [
            {
                "name": "openrouter_video",
                "class-name": "airflow_provider_orvideo.decorators.openrouter_video.openrouter_video_task",
            }
        ],
        "connection-types": [
            {
                "connection-type": "openrouter",
                "hook-class-name": "airflow_provider_orvideo.hooks.openrouter_video.OpenRouterVideoHook",
                "hook-name": "OpenRouter",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port", "extra"],
                    "relabeling": {"password": "API key", "host": "Base URL"},
                    "placeholders": {"host": "https://openrouter.ai/api/v1", "password": "sk-or-v1-..."},
                },
                "conn-fields": {
                    "timeout": {
                        "label": "HTTP timeout (seconds)",
                        "description": "Per-request timeout for calls to the API (default 30).",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                    "http_referer": {
                        "label": "App URL (HTTP-Referer, optional attribution)",
                        "description": "Your app's URL, sent as HTTP-Referer so OpenRouter attributes usage to it.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "app_title": {
                        "label": "App title (X-OpenRouter-Title, optional attribution)",
                        "description": "Your app's name, sent as X-OpenRouter-Title (shown in OpenRouter's rankings).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "callback_url": {
                        "label": "Webhook URL (optional)",
                        "description": "Public https URL of this Airflow's /orvideo/webhook endpoint: OpenRouter's "
                        "webhooks then resume the tasks instead of polling.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "webhook_asset": {
                        "label": "Asset per completed job (optional)",
                        "description": "An asset URI or name a DAG declares: each completed job that reaches "
                        "the webhook receiver becomes one event on it.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "webhook_secret": {
                        "label": "Webhook signing secret",
                        "description": "The signing secret of OpenRouter's workspace settings; webhooks signed "
                        "otherwise are refused.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                },
            }
        ],
    }
