"""Re-attach across a real retry, on whatever Airflow version the suite runs on.

Airflow 3.3 keeps the submission record in its ``task_state_store``; 3.0 to 3.2 have none, and the
provider keeps it in an Airflow Variable instead. Either way a retry after a failed download must
re-attach to the paid job, download it and submit nothing more. This runs the real task runner
(``dag.test()`` in a migrated Airflow home) with ``retries=1``: the first try's download fails for
good (the content endpoint answers 503 until the retry policy gives up), the retry succeeds.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

from tests.adversarial.conftest import airflow_home, run_dag_file  # noqa: F401 - a fixture
from tests.helpers import AIRFLOW_VERSION

DAG = textwrap.dedent(
    """
    import datetime, os
    from airflow.sdk import DAG
    from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

    with DAG("reattach_after_failed_download", schedule=None, start_date=datetime.datetime(2025, 1, 1)) as dag:
        OpenRouterVideoOperator(
            task_id="render",
            prompt="a lighthouse at dawn",
            model="google/veo-3.1",
            duration=4,
            output_path=os.environ["OUT"] + "/clip.mp4",
            poll_interval=0.2,
            initial_poll_delays=[0.2],
            retries=1,
            retry_delay=datetime.timedelta(seconds=0),
            # On the worker: a deferrable task would wait for the paid job and download it again
            # within the same try; this test is about the next try re-attaching.
            deferrable=False,
        )

    if __name__ == "__main__":
        dag.test()
    """
)


def test_a_retry_after_a_failed_download_reattaches_with_one_post(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
    emulator: Any,
    tmp_path: Path,
) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.2, in_progress_seconds=0.3)
    # The hook tries the download 5 times (default retry policy); 5 failures end the first try.
    emulator.control.add_fault("content", "status", status=503, retry_after="0", times=5)
    out = tmp_path / "out"
    run = run_dag_file(airflow_home, emulator, DAG, "reattach_after_failed_download", {"OUT": str(out)})
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert emulator.control.count("submit", "POST") == 1, output[-6000:]
    assert emulator.control.count("content") == 6  # 5 refused in try 1, 1 saved in try 2
    assert [p.name for p in out.iterdir()] == ["clip.mp4"]
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (state, try_number) = db.execute(
            "SELECT state, try_number FROM task_instance WHERE dag_id = 'reattach_after_failed_download'"
        ).fetchone()
        variables = [key for (key,) in db.execute("SELECT key FROM variable")]
    assert (state, try_number) == ("success", 2)
    # Before 3.3 the record lived in a Variable; it is gone once the task succeeded.
    assert not [key for key in variables if key.startswith("airflow_provider_orvideo.")], json.dumps(
        variables
    )
    if AIRFLOW_VERSION >= (3, 1):  # 3.0's dag.test() resumes the retry at execute_complete itself
        assert "Earlier try found: job " in output, output[-6000:]
