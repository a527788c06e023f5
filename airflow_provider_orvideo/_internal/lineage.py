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
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_orvideo._internal.arguments import is_object_storage_path

if TYPE_CHECKING:
    from airflow_provider_orvideo._internal.task_record import SavedVideo

__all__ = ["dataset_of", "media_sources", "operator_lineage"]

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


def operator_lineage(saved: SavedVideo | None, model: str | None, media: Iterable[Any]) -> Any:
    """OpenLineage's ``OperatorLineage`` of a render (needs the OpenLineage provider installed):
    inputs are the ``media`` that are files or object storage, outputs the saved videos; run
    facets name the OpenRouter job (``externalQuery``) and the model and cost
    (``openrouterVideo``). ``saved`` None (no video saved in this process): empty lineage."""
    import attrs
    from airflow.providers.common.compat.openlineage.facet import Dataset, ExternalQueryRunFacet, RunFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    if saved is None or saved.job_id is None:
        return OperatorLineage()
    host = saved.host or ""

    @attrs.define
    class OpenRouterVideoRunFacet(RunFacet):  # type: ignore[misc, unused-ignore]
        jobId: str
        model: str | None
        cost: float | None

    def datasets(items: Iterable[Any]) -> list[Any]:
        pairs = dict.fromkeys(p for p in (dataset_of(item, host) for item in items) if p is not None)
        return [Dataset(namespace=namespace, name=name) for namespace, name in pairs]

    return OperatorLineage(
        inputs=datasets(media),
        outputs=datasets(saved.paths),
        run_facets={
            "externalQuery": ExternalQueryRunFacet(externalQueryId=saved.job_id, source="openrouter.ai"),
            "openrouterVideo": OpenRouterVideoRunFacet(jobId=saved.job_id, model=model, cost=saved.cost),
        },
    )
