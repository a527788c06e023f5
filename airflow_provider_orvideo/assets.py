"""The asset event a finished render leaves for the DAGs scheduled on its output.

A task that declares ``outlets=[Asset(...)]`` emits one asset event per outlet on success; this
module builds the event's ``extra``, which a consumer reads from ``triggering_asset_events``
instead of pulling XCom across DAGs. It holds only facts that are safe to store unencrypted in
the metadata database and to show in the UI: OpenRouter's signed download URLs and the API key
never reach it, only the locations the worker wrote.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow_provider_orvideo.api import VideoJob


def output_uri(location: str) -> str:
    """``location`` as a URI: a plain path becomes an absolute ``file://`` URI.

    A consumer may run on another worker, where a bare relative path would mean something else;
    a URI also says which storage to open (``ObjectStoragePath(uri)``).
    """
    if urlsplit(location).scheme:
        return location
    return "file://" + os.path.abspath(location)


def requested_duration(duration: Any) -> int | None:
    """The rendered ``duration`` argument in seconds, ``None`` when it was left to the model.

    The value already passed request validation before the job was submitted, so a templated
    string such as ``"4"`` is a whole number here.
    """
    if duration is None or duration == "":
        return None
    return int(float(duration))


def video_asset_extra(
    *, job: VideoJob, model: str, duration: Any, locations: Sequence[str]
) -> dict[str, Any]:
    """The asset event ``extra`` of a completed job.

    ``cost`` is the USD figure OpenRouter reported in the job's ``usage`` (``None`` when it did
    not report one); ``duration`` is the requested length in seconds (``None``: model default).
    """
    return {
        "job_id": job.id,
        "generation_id": job.generation_id,
        "model": model,
        "cost": job.cost,
        "duration": requested_duration(duration),
        "output_uris": [output_uri(location) for location in locations],
    }
