"""Save every video OpenRouter's webhooks announce that no task waits for.

With the connection's ``webhook_asset`` extra set (docs/webhooks.md), the
webhook receiver records one asset event per completed job. That includes jobs submitted outside
Airflow: a script or another system that submits with
``callback_url=https://<your airflow>/orvideo/webhook?conn_id=openrouter_default`` pays for a video
no task will save. This DAG runs on each such event and saves those videos with
``OpenRouterVideoDownloadOperator``, one mapped task instance per job, each file named after its
job. A job a task submitted (its event names the task) is left to that task, which saves it
itself.

Settings come from the environment: ``ORVIDEO_OUTPUT_DIR`` (default ``/tmp/orvideo``) and
``ORVIDEO_WEBHOOK_ASSET`` (default ``openrouter://videos/completed``: the connection's
``webhook_asset``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_provider_orvideo.operators.openrouter_video_download import OpenRouterVideoDownloadOperator

OUTPUT_DIR = os.environ.get("ORVIDEO_OUTPUT_DIR", "/tmp/orvideo")
COMPLETED_JOBS = Asset(os.environ.get("ORVIDEO_WEBHOOK_ASSET", "openrouter://videos/completed"))

with DAG(
    dag_id="openrouter_webhook_downloads",
    schedule=[COMPLETED_JOBS],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["openrouter", "video", "example", "asset", "webhook"],
):

    @task
    def jobs_to_save(
        *, triggering_asset_events: Mapping[Asset, Sequence[Any]] | None = None
    ) -> list[dict[str, str]]:
        """One download per announced job no task submitted: its id and where its video goes."""
        downloads = []
        for event in (triggering_asset_events or {}).get(COMPLETED_JOBS, []):
            extra = event.extra
            if extra.get("status") != "completed" or extra.get("task_id"):
                continue
            job_id = str(extra["job_id"])
            name = "".join(c if c.isalnum() or c in "-_" else "-" for c in job_id)
            downloads.append({"job_id": job_id, "output_path": f"{OUTPUT_DIR}/announced/{name}.mp4"})
        return downloads

    OpenRouterVideoDownloadOperator.partial(task_id="save_video").expand_kwargs(jobs_to_save())
