"""A continuation chain: each act extends the previous act's job (``previous_job_id``).

The first render's job id is pushed to XCom as ``job_id`` right after submission; the next task
templates it into ``previous_job_id``. OpenRouter runs a continuation on the same model as the
job it extends and only once that job has completed, which the chain guarantees.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

OUTPUT_DIR = os.environ.get("ORVIDEO_OUTPUT_DIR", "/tmp/orvideo")
MODEL = os.environ.get("ORVIDEO_MODEL", "google/veo-3.1-fast")
ACTS = [
    "A lone astronaut steps out of a lander onto red dust",
    "The astronaut looks up as a second sun rises over the ridge",
    "Wide shot: the astronaut plants a flag as dust swirls",
]

with DAG(
    dag_id="openrouter_continuation",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["openrouter", "video", "example"],
) as dag:
    previous = None
    for number, prompt in enumerate(ACTS, start=1):
        act = OpenRouterVideoOperator(
            task_id=f"act_{number}",
            prompt=prompt,
            model=MODEL,
            duration=4,
            previous_job_id=(
                None
                if previous is None
                else f"{{{{ ti.xcom_pull(task_ids='{previous.task_id}', key='job_id') }}}}"
            ),
            output_path=OUTPUT_DIR + f"/saga/{{{{ dag_run.run_after | ts_nodash }}}}/act_{number}.mp4",
        )
        if previous is not None:
            previous >> act
        previous = act


if __name__ == "__main__":
    dag.test()
