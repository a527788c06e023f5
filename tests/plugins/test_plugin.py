"""What the plugin registers on the running Airflow version (views only where the UI has them)."""

from __future__ import annotations

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from airflow_provider_orvideo.plugins.openrouter_video import (
    EXTERNAL_VIEWS,
    OpenRouterVideoPlugin,
    build_plugin_app,
)
from tests.helpers import AIRFLOW_VERSION

DESTINATIONS_SINCE_3_1 = {"nav", "dag", "dag_run", "task", "task_instance"}
"""One unknown destination makes Airflow's /api/v2/plugins fail and hides every plugin view."""


def _paths() -> set[str]:
    return {getattr(route, "path", "") for route in build_plugin_app().routes}


def test_views_and_pages_exist_exactly_where_the_ui_can_show_them() -> None:
    if AIRFLOW_VERSION >= (3, 1):
        assert OpenRouterVideoPlugin.external_views == EXTERNAL_VIEWS
        assert {
            "/watch/{dag_id}/{run_id}/{task_id}/{map_index}",
            "/stream/{dag_id}/{run_id}/{task_id}/{map_index}/{index}",
            "/gallery",
            "/gallery/dag/{dag_id}",
        } <= _paths()
    else:  # Airflow 3.0: no plugin views, and the browser's token is not a cookie
        assert OpenRouterVideoPlugin.external_views == []
        assert not any(path.startswith(("/watch", "/stream", "/gallery")) for path in _paths())
    assert "/webhook" in _paths()


def test_every_view_is_one_airflow_3_1_accepts() -> None:
    routes = [view["url_route"] for view in EXTERNAL_VIEWS]
    assert len(routes) == len(set(routes))
    for view in EXTERNAL_VIEWS:
        assert view["destination"] in DESTINATIONS_SINCE_3_1
        assert view["name"]
        assert view["href"].startswith("orvideo/")  # relative: resolved against Airflow's base URL


def test_the_operator_and_the_decorated_task_carry_the_watch_link() -> None:
    from airflow_provider_orvideo.decorators.openrouter_video import OpenRouterVideoDecoratedOperator

    for operator in (OpenRouterVideoOperator, OpenRouterVideoDecoratedOperator):
        assert [link.name for link in operator.operator_extra_links] == ["Watch video"]
