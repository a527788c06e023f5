"""OpenLineage datasets of a render: the media it read and the videos it wrote, as (namespace, name).

Named by OpenLineage's dataset naming rules: a local file is ``file://<host>`` + its absolute
path (the host matters: another worker's disk is another dataset), an object is
``<scheme>://<bucket>`` + its key. Media given as https or ``data:`` URLs, or as bytes, are not
datasets Airflow can see and are left out. Pure: the operator turns the pairs into OpenLineage
objects only when the OpenLineage provider is installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_orvideo._internal.arguments import is_object_storage_path

__all__ = ["dataset_of", "media_sources"]

_NOT_DATASETS = frozenset({"http", "https", "data"})


def dataset_of(location: Any, host: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a local path, ``file://`` URI or object storage URI; None otherwise."""
    if isinstance(location, (bytes, bytearray, memoryview)):
        return None
    text = str(location).strip()
    if isinstance(location, PurePath) and not is_object_storage_path(location):
        return f"file://{host}", os.path.abspath(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if not scheme:
        return (f"file://{host}", os.path.abspath(text)) if text.startswith("/") else None
    if scheme in _NOT_DATASETS:
        return None
    if scheme in ("file", "local"):
        return f"file://{host}", parts.path
    bucket = parts.hostname or parts.netloc.rpartition("@")[2]  # s3://conn_id@bucket/key names a connection
    return f"{scheme}://{bucket}", parts.path.lstrip("/")


def media_sources(frame_images: Any, input_references: Any) -> Iterable[Any]:
    """Every source in ``frame_images`` (a dict) and ``input_references`` (a list of sources or
    ``{"kind": ..., "source": ...}`` entries), as rendered."""
    if isinstance(frame_images, Mapping):
        yield from frame_images.values()
    if isinstance(input_references, Sequence) and not isinstance(input_references, (str, bytes)):
        for entry in input_references:
            if isinstance(entry, Mapping):
                yield entry.get("source")
            else:
                yield entry
