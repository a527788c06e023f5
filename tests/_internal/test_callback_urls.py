from __future__ import annotations

import subprocess
import sys

from airflow_provider_orvideo import webhooks
from airflow_provider_orvideo._internal import callback_urls


def test_webhooks_re_exports_the_one_check() -> None:
    """The Public API (docs/public-api.md) documents ``webhooks.check_callback_url``; it is the same function."""
    assert webhooks.check_callback_url is callback_urls.check_callback_url
    assert "check_callback_url" in webhooks.__all__
    assert webhooks.CallbackTarget.QUERY_FIELDS == callback_urls.CALLBACK_QUERY_FIELDS


def test_resolving_a_connection_does_not_import_the_webhook_module() -> None:
    """No import circle: the API core checks a callback URL without ``webhooks``."""
    code = (
        "import sys\n"
        "from airflow_provider_orvideo._internal.api import settings_from_connection\n"
        "settings = settings_from_connection(conn_id='c', host=None, schema=None, port=None, password='k',"
        " extra={'callback_url': 'https://airflow.example.com/orvideo/webhook'})\n"
        "assert settings.callback_url == 'https://airflow.example.com/orvideo/webhook'\n"
        "assert 'airflow_provider_orvideo.webhooks' not in sys.modules, 'webhooks was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
