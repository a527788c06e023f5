"""Daily text-to-video: render one clip per day, then check the file a downstream task receives.

The render task submits the job on a worker, frees the slot while OpenRouter renders (the
trigger polls in the triggerer), downloads the MP4 when it is done and returns its path through
XCom. ``inspect_video`` reads that path.

Settings come from the environment so the same file runs against the local emulator (demo,
tests) and against OpenRouter:

* ``ORVIDEO_OUTPUT_DIR``: where videos go (default ``/tmp/orvideo``); a URI such as
  ``s3://bucket/videos`` works too with the matching Airflow provider installed.
* ``ORVIDEO_MODEL`` (default ``google/veo-3.1-fast``).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

OUTPUT_DIR = os.environ.get("ORVIDEO_OUTPUT_DIR", "/tmp/orvideo")

with DAG(
    dag_id="openrouter_text_to_video",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    params={"subject": "a lighthouse on a cliff at dawn, waves below, slow aerial orbit"},
    tags=["openrouter", "video", "example"],
) as dag:
    render = OpenRouterVideoOperator(
        task_id="render_video",
        prompt="Cinematic shot of {{ params.subject }}. Shot for the {{ dag_run.run_after | ds }} edition.",
        model=os.environ.get("ORVIDEO_MODEL", "google/veo-3.1-fast"),
        output_path=OUTPUT_DIR
        + "/{{ dag_run.run_after | ds }}/lighthouse-{{ dag_run.run_after | ts_nodash }}.mp4",
        duration=4,
        resolution="720p",
        aspect_ratio="16:9",
    )

    @task
    def inspect_video(path: str) -> dict[str, object]:
        """A downstream consumer: open the file the render task returned and describe it."""
        from airflow.sdk import ObjectStoragePath

        video = ObjectStoragePath(path if "://" in path else f"file://{path}")
        with video.open("rb") as handle:
            head = handle.read(12)
        size = video.stat().st_size
        if head[4:8] != b"ftyp":
            raise ValueError(f"{path} is not an MP4 file")
        print(f"VIDEO_READY path={path} bytes={size}")
        return {"path": path, "bytes": size, "brand": head[8:12].decode("ascii", "replace")}

    inspect_video(render.output)


if __name__ == "__main__":
    dag.test()
