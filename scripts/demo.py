"""Run the example DAG end to end and print where the video is.

Without ``OPENROUTER_API_KEY`` it starts the bundled emulator on 127.0.0.1 and points the
``openrouter_default`` connection at it; with the key set it talks to OpenRouter (this costs
money: the example renders one 4-second 720p clip).

Everything lives under ``.demo/`` in the repository: the Airflow home (SQLite) and the videos.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "example_dags" / "example_openrouter_text_to_video.py"
EMULATOR_KEY = "emulator-demo-key"


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "orvideo_emulator", "--port", "0", "--api-key", EMULATOR_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"(http://\S+/api/v1)", line)
    if not match:
        process.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, match.group(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / ".demo", help="Airflow home, videos and logs")
    demo = parser.parse_args().workdir.resolve()
    api_key = os.environ.get("OPENROUTER_API_KEY")
    emulator = None
    if api_key:
        connection = {"conn_type": "openrouter", "host": "https://openrouter.ai/api/v1", "password": api_key}
        print("Using OpenRouter (OPENROUTER_API_KEY is set): this renders one paid clip.")
    else:
        emulator, base_url = start_emulator()
        connection = {"conn_type": "openrouter", "host": base_url, "password": EMULATOR_KEY}
        print(
            f"Using the local OpenRouter emulator at {base_url} (set OPENROUTER_API_KEY to use OpenRouter)."
        )

    home = demo / "airflow_home"
    videos = demo / "videos"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
        "AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(connection),
        "ORVIDEO_OUTPUT_DIR": str(videos),
        # Against the emulator (a loopback host) the default poll delays (30 s) run 20x faster.
        "AIRFLOW__OPENROUTER__LOOPBACK_POLL_SCALE": "0.05",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    try:
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        run = subprocess.run([sys.executable, str(DAG_FILE)], env=env, capture_output=True, text=True)
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait(timeout=10)
    output = run.stdout + run.stderr
    (demo / "last-run.log").write_text(output)
    ready = re.findall(r"VIDEO_READY path=(\S+) bytes=(\d+)", output)
    if run.returncode != 0 or not ready:
        print(output[-4000:])
        print(f"The example DAG failed (exit {run.returncode}); full log: {demo / 'last-run.log'}")
        return 1
    path, size = ready[-1]
    print(f"DAG openrouter_text_to_video succeeded. Video: {path} ({int(size):,} bytes)")
    print(f"Full log: {demo / 'last-run.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
