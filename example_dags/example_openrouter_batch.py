"""A mapped batch: one video per prompt, each a task instance, all under one budget per video.

``expand`` makes one task instance per prompt. Each submits, defers (no worker slot held while
rendering) and writes ``<map index>.mp4``. The model list is fetched once per worker process
and cached, so hundreds of instances do not each call ``/videos/models``. ``max_cost_usd``
refuses any instance whose estimated price exceeds the budget before it is submitted.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

OUTPUT_DIR = os.environ.get("ORVIDEO_OUTPUT_DIR", "/tmp/orvideo")
PROMPTS = [
    "A paper boat drifting down a rain-soaked street, macro lens",
    "Morning fog lifting over a pine forest, timelapse",
    "A barista pouring latte art in slow motion",
]

with DAG(
    dag_id="openrouter_batch",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=16,
    tags=["openrouter", "video", "example"],
) as dag:
    renders = OpenRouterVideoOperator.partial(
        task_id="render",
        model=os.environ.get("ORVIDEO_MODEL", "google/veo-3.1-fast"),
        duration=4,
        resolution="720p",
        generate_audio=False,
        max_cost_usd=1.0,
        output_path=OUTPUT_DIR + "/batch/{{ dag_run.run_after | ts_nodash }}/{{ ti.map_index }}.mp4",
    ).expand(prompt=PROMPTS)

    @task
    def publish(paths: list[str]) -> list[str]:
        """Downstream of the whole batch: every rendered path, in prompt order."""
        ordered = list(paths)
        print(f"BATCH_READY count={len(ordered)}")
        return ordered

    publish(renders.output)


if __name__ == "__main__":
    dag.test()
