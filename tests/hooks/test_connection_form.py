"""What the UI builds the ``openrouter`` connection form from: the api-server's hook metadata
(``GET /ui/connections/hook_meta``), computed in this process by the same service. The form
itself is driven in a real browser by ``tests/system/test_connection_ui.py``."""

from __future__ import annotations

from typing import Any

from tests.helpers import AIRFLOW_VERSION


def _openrouter_meta() -> dict[str, Any]:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    entries = {entry.connection_type: entry for entry in HookMetaService.hook_meta_data()}
    meta: dict[str, Any] = entries["openrouter"].model_dump()
    return meta


def test_the_hook_metadata_describes_the_openrouter_form() -> None:
    meta = _openrouter_meta()
    assert meta["hook_name"] == "OpenRouter"
    assert meta["hook_class_name"] == "airflow_provider_orvideo.hooks.openrouter_video.OpenRouterVideoHook"
    fields = meta["standard_fields"]
    if AIRFLOW_VERSION < (3, 2):
        # Documented (docs/airflow-versions.md): before 3.2 the form fields come only from a hook's
        # WTForms widgets, which need Flask-AppBuilder; the provider declares them the 3.2 way.
        assert fields is None, fields
        assert not meta["extra_fields"], meta["extra_fields"]
        return
    assert fields["password"] == {"hidden": False, "title": "API key", "placeholder": "sk-or-v1-..."}
    assert fields["host"] == {
        "hidden": False,
        "title": "Base URL",
        "placeholder": "https://openrouter.ai/api/v1",
    }
    assert {name for name in ("login", "port", "url_schema") if fields[name]["hidden"]} == {
        "login",
        "port",
        "url_schema",
    }
    extras = meta["extra_fields"]
    assert set(extras) == {
        "timeout",
        "http_referer",
        "app_title",
        "callback_url",
        "webhook_asset",
        "webhook_secret",
    }
    assert extras["webhook_secret"]["schema"]["format"] == "password"  # masked in the form
    assert extras["timeout"]["value"] == 30
    assert extras["timeout"]["schema"]["type"] == ["number", "null"]
    assert all(extras[name]["description"] for name in extras), extras
    assert "HTTP-Referer" in extras["http_referer"]["schema"]["title"]
    assert "X-OpenRouter-Title" in extras["app_title"]["schema"]["title"]
