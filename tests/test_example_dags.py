"""The example DAG end to end with ``dag.test()``: the demo command, against the emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_the_example_dag_against_the_emulator(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY" and not k.startswith("AIRFLOW")}
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--workdir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    match = re.search(r"Video: (\S+) \(([\d,]+) bytes\)", run.stdout)
    assert match, run.stdout
    video = Path(match.group(1))
    assert video.is_relative_to(tmp_path / "videos")
    assert video.stat().st_size == int(match.group(2).replace(",", ""))
    assert video.read_bytes()[4:8] == b"ftyp"
    log = (tmp_path / "last-run.log").read_text()
    # The task deferred (worker slot released) and resumed through execute_complete.
    assert "Pausing task as DEFERRED" in log or "deferred" in log.lower()
    assert "emulator-demo-key" not in log
    assert not list(video.parent.glob(".*.part"))
