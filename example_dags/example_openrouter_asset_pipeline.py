"""Two DAGs joined by an asset: one renders a clip, the other runs because a clip was rendered.

``openrouter_asset_producer`` declares the clips folder as its output asset
(``outlets=[CLIPS]``). When the render succeeds, Airflow records an asset event whose ``extra``
the operator fills with the job id, model, cost reported by OpenRouter, requested duration and
the output URIs (never a signed URL or the API key).

``openrouter_asset_consumer`` has no clock: ``schedule=[CLIPS]`` starts it after each such
event, and it reads the clip's URI from ``triggering_asset_events`` rather than pulling XCom
from another DAG.

Settings come from the environment, as in ``example_openrouter_text_to_video.py``:
``ORVIDEO_OUTPUT_DIR`` (default ``/tmp/orvideo``), ``ORVIDEO_MODEL``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

OUTPUT_DIR = os.environ.get("ORVIDEO_OUTPUT_DIR", "/tmp/orvideo")
CLIPS_LOCATION = OUTPUT_DIR + "/clips"
# Named by its URI (the default): the folder the videos land in.
CLIPS = Asset(CLIPS_LOCATION if "://" in CLIPS_LOCATION else "file://" + os.path.abspath(CLIPS_LOCATION))

with DAG(
    dag_id="openrouter_asset_producer",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["openrouter", "video", "example", "asset"],
) as dag:
    OpenRouterVideoOperator(
        task_id="render_clip",
        prompt="A hot-air balloon rising over terraced rice fields at sunrise, drone shot",
        model=os.environ.get("ORVIDEO_MODEL", "google/veo-3.1-fast"),
        output_path=CLIPS_LOCATION + "/balloon-{{ dag_run.run_after | ts_nodash }}.mp4",
        duration=4,
        resolution="720p",
        outlets=[CLIPS],
    )


with DAG(
    dag_id="openrouter_asset_consumer",
    schedule=[CLIPS],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["openrouter", "video", "example", "asset"],
):

    @task
    def publish_clips(*, triggering_asset_events: Mapping[Asset, Sequence[Any]] | None = None) -> list[str]:
        """Open every clip the triggering events point at; what a publishing step would upload."""
        from airflow.sdk import ObjectStoragePath
        from airflow.sdk.exceptions import AirflowSkipException

        events = list((triggering_asset_events or {}).get(CLIPS, []))
        if not events:
            raise AirflowSkipException(
                "No clip event: this DAG runs when openrouter_asset_producer renders one."
            )
        published = []
        for event in events:
            extra = event.extra
            for uri in extra["output_uris"]:
                size = ObjectStoragePath(uri).stat().st_size
                print(
                    f"CLIP_PUBLISHED uri={uri} bytes={size} job={extra['job_id']} "
                    f"model={extra['model']} cost={extra['cost']} duration={extra['duration']}"
                )
                published.append(uri)
        return published

    publish_clips()


if __name__ == "__main__":
    dag.test()
