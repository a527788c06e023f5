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
        "config": {
            "openrouter": {
                "description": "OpenRouter video: the spend ledger, spend budgets and test-time polling.",
                "options": {
                    "ledger_path": {
                        "description": "The spend ledger's SQLite file, used when ledger_conn_id is empty "
                        "(default: orvideo_ledger.sqlite in AIRFLOW_HOME). Fine on one machine; a deployment whose "
                        "tasks run on several machines sets ledger_conn_id instead.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/orvideo_ledger.sqlite",
                        "default": None,
                    },
                    "ledger_conn_id": {
                        "description": "An Airflow connection to the database holding the spend ledger, shared "
                        "by every worker and api-server (postgres, mysql or sqlite connection types, or an extra "
                        "sqlalchemy_url). Its tables are created on first use.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "orvideo_ledger",
                        "default": None,
                    },
                    "budgets": {
                        "description": "Named spend budgets across DAGs and connections, as a JSON object: "
                        '{"<name>": {"usd": 50, "window": "utc_day" or a rolling "6h", "dags": [...], '
                        '"connections": [...]}}. A task reserves its estimate against every budget naming it '
                        "before it pays.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": '{"marketing": {"usd": 50, "window": "utc_day", "dags": ["promo_videos"]}}',
                        "default": None,
                    },
                    "budget_lease_seconds": {
                        "description": "How long a reservation holds its estimate before its POST's answer is "
                        "booked; a task killed in between frees its share of the budget after this.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "900",
                        "default": "900",
                    },
                    "loopback_poll_scale": {
                        "description": "Multiplies every poll delay when the connection points at this machine "
                        "(the emulator), so tests and demos wait seconds, not minutes. Empty: the provider's own "
                        "choice for a loopback host; 1: real delays.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "0.05",
                        "default": None,
                    },
                },
            }
        },
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
                "python-modules": [
                    "airflow_provider_orvideo.operators.openrouter_video",
                    "airflow_provider_orvideo.operators.openrouter_video_download",
                ],
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
        # `airflow orvideo ...` on Airflow 3.2+ (3.0 and 3.1 ignore the key; the `orvideo` script
        # works everywhere).
        "cli": ["airflow_provider_orvideo.cli.get_cli_commands"],
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
