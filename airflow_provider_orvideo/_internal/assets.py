"""The asset event a finished render leaves for the DAGs scheduled on its output.

A task that declares ``outlets=[Asset(...)]`` emits one asset event per outlet on success; this
module builds the event's ``extra``, which a consumer reads from ``triggering_asset_events``
instead of pulling XCom across DAGs. It holds only facts that are safe to store unencrypted in
the metadata database and to show in the UI: OpenRouter's signed download URLs and the API key
never reach it, only the locations the worker wrote.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow_provider_orvideo._internal.api import VideoJob


def output_uri(location: str) -> str:
    """``location`` as a URI: a plain path becomes an absolute ``file://`` URI.

    A consumer may run on another worker, where a bare relative path would mean something else;
    a URI also says which storage to open (``ObjectStoragePath(uri)``).
    """
    if urlsplit(location).scheme:
        return location
    return "file://" + os.path.abspath(location)


def video_asset_extra(
    *, job: VideoJob, request: Mapping[str, Any], locations: Sequence[str], host: str
) -> dict[str, Any]:
    """The asset event ``extra`` of a completed job, from the request as validated and submitted.

    ``cost`` is the USD figure OpenRouter reported in the job's ``usage`` (``None`` when it did
    not report one); ``duration`` is the requested length in seconds (``None``: model default);
    ``host`` is the worker that saved the outputs (for a local path, the machine whose disk has
    it, unless that disk is shared).
    """
    return {
        "job_id": job.id,
        "generation_id": job.generation_id,
        "model": request.get("model"),
        "cost": job.cost,
        "duration": request.get("duration"),
        "output_uris": [output_uri(location) for location in locations],
        "host": host,
    }


def annotate_asset_events(
    outlets: Sequence[Any], context: Mapping[str, Any], extra: Mapping[str, Any]
) -> None:
    """Put ``extra`` (:func:`video_asset_extra`) on the event of every ``Asset`` in ``outlets``
    (``context``: the task's, whose ``outlet_events`` hold them).

    Airflow emits those events itself when the task succeeds; filling their ``extra`` here lets
    a DAG scheduled on the asset find the video (``triggering_asset_events``) without pulling
    XCom across DAGs. Keys set earlier in the task (e.g. by a ``pre_execute``) stay.
    """
    from airflow.sdk import Asset

    for outlet in outlets:
        if isinstance(outlet, Asset):
            context["outlet_events"][outlet].extra.update(extra)
