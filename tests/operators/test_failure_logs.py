"""A failed render logs ERROR only for its own failure (issue 26, item 4).

Before, every failed try also logged ``XCom not found ... key='output_paths'`` at ERROR: the
*Watch video* link looked up outputs a failed task never wrote, and a search of the log for
"error" found that first. Now the link asks the operator that ran the try.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from tests.adversarial.conftest import airflow_home, run_dag_file  # noqa: F401 - a fixture
from tests.helpers import AIRFLOW_VERSION, plain_text

DAG = textwrap.dedent(
    """
    import os
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

    with DAG("fails_cleanly", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
        OpenRouterVideoOperator(
            task_id="render",
            prompt="a fox",
            model="google/veo-3.1",
            duration=4,
            output_path=os.environ["OUT"] + "/fox.mp4",
            poll_interval=0.2,
            initial_poll_delays=(0.2,),
            retries=0,
        )

    if __name__ == "__main__":
        dag.test()
    """
)

ERROR_LINE = re.compile(r"\[error\s*\]| ERROR ")


def test_a_failed_render_logs_error_only_for_its_own_failure(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
    emulator: Any,
    tmp_path: Path,
) -> None:
    emulator.control.jobs_take(0.2)
    emulator.control.jobs_end_as("failed", error="content policy violation")
    run = run_dag_file(airflow_home, emulator, DAG, "fails_cleanly", {"OUT": str(tmp_path)})
    output = plain_text(run.stdout + run.stderr)
    assert "VideoJobFailedError" in output, output[-6000:]
    lines = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if ERROR_LINE.search(line)]
    assert errors, output[-6000:]  # the task's own failure is logged at ERROR
    assert not [line for line in errors if "XCom not found" in line], errors
    if AIRFLOW_VERSION < (3, 2):
        # Airflow 3.0 and 3.1 log a missing Variable at ERROR in their own API client (3.2 made it
        # DEBUG); before 3.3 the re-attach record lives in a Variable, looked up once per try.
        errors = [line for line in errors if "Variable not found" not in line]
    unrelated = [
        line for line in errors if not re.search(r"VideoJobFailedError|content policy|failed", line, re.I)
    ]
    assert unrelated == [], "\n".join(errors)
