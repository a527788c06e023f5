"""The running Airflow's version, for the features the provider registers only where they exist.

Kept apart from :mod:`~airflow_provider_orvideo._internal.compat` because the plugin module that
every Airflow component imports needs it, and it must stay light.
"""

from __future__ import annotations

import re

import airflow

__all__ = ["AIRFLOW_VERSION", "HAS_UI_PLUGINS", "UI_PLUGINS_SINCE"]


def _release(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


AIRFLOW_VERSION: tuple[int, int] = _release(airflow.__version__)
"""(major, minor) of the installed Airflow."""

UI_PLUGINS_SINCE = (3, 1)
"""Airflow 3.1 added plugin views in the UI (``external_views``) and sends the browser's token as
a cookie, so a page the provider serves can know who is watching. Airflow 3.0 keeps the token in
the browser's local storage: a plain link to a provider page could not be authenticated there."""

HAS_UI_PLUGINS: bool = AIRFLOW_VERSION >= UI_PLUGINS_SINCE
"""Whether the video pages, the gallery and the "Watch video" link are offered (Airflow 3.1+)."""
