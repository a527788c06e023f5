"""TaskFlow: ``@task.openrouter_video`` turns a Python function into a render task.

The function runs on the worker with its arguments (here an upstream task's XCom) and returns
either the prompt (``str``) or a dict of request fields that override or complete the
decorator's operator arguments. Everything after it (validation before any money is spent, the
deferral while OpenRouter renders, the download) is ``OpenRouterVideoOperator``'s, and the
task's XCom return value is the video's path.

Settings come from the environment, as in ``example_openrouter_text_to_video.py``.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task

OUTPUT_DIR = os.environ.get("ORVIDEO_OUTPUT_DIR", "/tmp/orvideo")
MODEL = os.environ.get("ORVIDEO_MODEL", "google/veo-3.1-fast")

with DAG(
    dag_id="openrouter_taskflow",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["openrouter", "video", "example", "taskflow"],
) as dag:

    @task
    def pick_product() -> dict[str, str]:
        """Stands for a lookup in a catalogue."""
        return {"name": "a hand-thrown ceramic teapot", "sku": "teapot-7", "mood": "calm"}

    @task.openrouter_video(
        model=MODEL,
        output_path=OUTPUT_DIR + "/taskflow/{{ dag_run.run_after | ts_nodash }}/hero.mp4",
        duration=4,
        resolution="720p",
    )
    def hero_clip(product: dict[str, str]) -> str:
        """A ``str`` is the prompt; everything else comes from the decorator."""
        return f"Slow turntable shot of {product['name']} on linen, soft window light"

    @task.openrouter_video(model=MODEL)
    def social_clip(product: dict[str, str], dag_run: Any = None) -> dict[str, Any]:
        """A dict sets request fields per run, here also where the file goes (one file per run:
        an existing file this task did not write stops it before it pays)."""
        return {
            "prompt": f"{product['name']} in a {product['mood']} kitchen, vertical framing",
            "aspect_ratio": "9:16",
            "duration": 6,
            "output_path": f"{OUTPUT_DIR}/taskflow/social/{product['sku']}-{dag_run.run_after:%Y%m%dT%H%M%S}.mp4",
        }

    @task
    def report(hero: str, social: str) -> None:
        print(f"TASKFLOW_READY hero={hero} social={social}")

    product = pick_product()
    report(hero_clip(product), social_clip(product))


if __name__ == "__main__":
    dag.test()
