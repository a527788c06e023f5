"""The "Watch video" button on a video task instance, leading to the provider's player page."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

__all__ = [
    "WatchVideoLink",
    "watch_path",
]

WATCH_PREFIX = "orvideo/watch"
"""Where the plugin serves a task instance's player page, relative to Airflow's root URL."""


def watch_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """``orvideo/watch/<dag>/<run>/<task>/<map index>``, each part quoted as one path segment.

    Path segments, not a query string: a run id such as ``manual__2026-01-01T00:00:00+00:00``
    keeps its ``+`` in a path, and Airflow 3.1 puts ids into plugin view URLs unencoded."""
    parts = (dag_id, run_id, task_id, str(map_index))
    return "/".join((WATCH_PREFIX, *(quote(str(part), safe="") for part in parts)))


class WatchVideoLink(BaseOperatorLink):
    """Shown once the task saved its video; hidden while it renders, after a failure, and on
    Airflow 3.0 (no plugin pages there). Works for any operator with a ``saved_video`` attribute
    (set when a try saved one).

    Airflow computes the link on the worker when a try ends and stores it as an XCom: the button
    appears only if this returns a URL, and it must never raise (Airflow 3.0 does not catch it).
    The URL is relative to Airflow's root (the UI resolves it against its base URL, so a
    deployment under a sub-path works) unless ``[api] base_url`` names the root.
    """

    name = "Watch video"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            from airflow_provider_orvideo._internal.versions import HAS_UI_PLUGINS

            if not HAS_UI_PLUGINS:
                return ""
            # Asked by the task runner in the process that ran the try, on the operator that ran it:
            # the operator knows whether it saved a video. Looking up the ``output_paths`` XCom
            # instead made Airflow log "XCom not found" at ERROR after every failed try.
            if not getattr(operator, "saved_video", None):
                return ""
            path = watch_path(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
            base = _base_url()
            return f"{base}/{path}" if base else path
        except Exception:  # a missing button is better than a failed task
            return ""


def _base_url() -> str:
    try:
        from airflow.configuration import conf

        return str(conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:
        return ""
