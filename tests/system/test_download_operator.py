"""A job submitted outside Airflow is saved by the webhook example DAG on a real stack (issue 26).

One stack (api-server with the provider's plugin, scheduler, dag-processor, triggerer; SQLite,
LocalExecutor) loads ``example_dags/example_openrouter_webhook_downloads.py`` as it is shipped.
The connection in the metadata database has the receiver's callback URL, signing secret and
``webhook_asset``. A script submits a job to the emulator with the receiver's URL and no task in
it; the emulator delivers the signed webhook when the job completes; the receiver records the
asset event; the scheduler starts the example DAG, whose ``OpenRouterVideoDownloadOperator``
saves the video. Nothing in Airflow submits: the emulator sees the script's POST only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from orvideo_emulator import EmulatorControl, EmulatorServer

from tests.conftest import EMULATOR_API_KEY
from tests.system.conftest import StackFactory
from tests.system.stack import AirflowStack

pytestmark = pytest.mark.system

SECRET = "whsec-system-download-7e1a"
ASSET_URI = "openrouter://videos/completed"
EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_openrouter_webhook_downloads.py"
DAG_ID = "openrouter_webhook_downloads"


@pytest.fixture(scope="module")
def hooked_emulator() -> Iterator[tuple[EmulatorServer, EmulatorControl]]:
    with (
        EmulatorServer(api_key=EMULATOR_API_KEY, webhook_secret=SECRET) as server,
        EmulatorControl(server.origin) as control,
    ):
        yield server, control


@pytest.fixture(scope="module")
def stack(
    module_airflow_stack_factory: StackFactory,
    hooked_emulator: tuple[EmulatorServer, EmulatorControl],
    tmp_path_factory: pytest.TempPathFactory,
) -> AirflowStack:
    server, _ = hooked_emulator
    out = tmp_path_factory.mktemp("videos")
    stack = module_airflow_stack_factory(
        dags={EXAMPLE.name: EXAMPLE.read_text()},
        env={"ORVIDEO_OUTPUT_DIR": str(out), "ORVIDEO_WEBHOOK_ASSET": ASSET_URI},
        name="download",
    )
    stack.add_connection(
        "openrouter_default",
        "openrouter",
        host=server.base_url,
        password=EMULATOR_API_KEY,
        extra={
            "callback_url": f"{stack.base_url}/orvideo/webhook",
            "webhook_secret": SECRET,
            "webhook_asset": ASSET_URI,
        },
    )
    stack.wait_for_dag(DAG_ID, timeout=60)
    stack.unpause(DAG_ID)
    return stack


def _runs(stack: AirflowStack) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = stack._api_json("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
    return runs


def test_a_job_a_script_submitted_is_saved_by_the_example_dag(
    stack: AirflowStack, hooked_emulator: tuple[EmulatorServer, EmulatorControl]
) -> None:
    server, control = hooked_emulator
    control.reset()
    control.jobs_take(2)
    # The script: OpenRouter's API with the receiver's URL, naming the connection and no task.
    callback = f"{stack.base_url}/orvideo/webhook?conn_id=openrouter_default"
    answer = httpx.post(
        f"{server.base_url}/videos",
        json={"model": "google/veo-3.1", "prompt": "a kite over dunes", "callback_url": callback},
        headers={"Authorization": f"Bearer {EMULATOR_API_KEY}"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    deadline = time.monotonic() + 90
    while not _runs(stack) and time.monotonic() < deadline:
        time.sleep(0.5)
    (run,) = _runs(stack)
    assert stack.wait_for_run_state(DAG_ID, run["dag_run_id"], {"success"}, timeout=90) == "success"
    assert [(d["status"], d["signed"]) for d in control.webhooks()] == [(200, True)], control.webhooks()
    name = re.sub(r"[^A-Za-z0-9_-]", "-", job_id)
    video = Path(stack.env["ORVIDEO_OUTPUT_DIR"]) / "announced" / f"{name}.mp4"
    assert video.read_bytes()[4:8] == b"ftyp"
    paths = stack._api_json(
        "GET",
        f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances/save_video"
        "/xcomEntries/output_paths",
        params={"map_index": 0},
    )["value"]
    assert paths == [str(video)], paths
    # Only the script paid: the download task asked for the job and its content, nothing else.
    assert control.count("submit", "POST") == 1
    assert control.count("content") == 1
