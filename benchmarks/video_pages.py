"""The video pages with history (issue 15): the gallery's first screen in a real browser with
1,000 recorded videos, and the api-server's memory while it streams a 1 GiB video.

    python benchmarks/video_pages.py                      # 1,000 and 10,000 videos; a 1 GiB stream
    python benchmarks/video_pages.py --videos 1000 --repeats 5 --stream-gib 1

Set-up: a real Airflow 3.3 stack from ``tests/system/stack.py`` (api-server with the provider's
plugin, scheduler, dag-processor, triggerer; SQLite; all-admins auth). Recorded videos are seeded
straight into its metadata database the way a successful task leaves them: one DAG run per 20
videos, a task instance per map index, and the operator's XComs (``output_paths``,
``video_request``, ``usage``, ``output_host``, ``job_id``), spread over the last 30 days, three
models, costs $0.40-$3.20. Each ``output_paths`` names its own copy of the emulator's sample MP4.

Gallery: Debian's headless Chromium opens ``/orvideo/gallery`` cold (a new browser profile per
load) and reports, from the page's own clock (Navigation Timing, ``performance.now()``): the HTML
received, DOMContentLoaded, the load event, and **first screen**: every poster frame of the first
page decoded (``readyState >= 2`` on all 24 ``<video>`` posters). Median of ``--repeats``. The
server time of the page alone (HTML, no posters) is the median of 20 ``httpx`` requests; also for
the second page (``after=``) and a model filter.

Stream: one task instance recording a ``--stream-gib`` GiB MP4 (the sample padded with a ``free``
box). The resident memory of the api-server's process tree is sampled every 20 ms while one
client downloads the whole file and then 50 random 8 MiB ranges.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from benchmarks._common import machine_line, median, table, wait_quiet
from tests.s3 import S3, aws_connection, moto_server, new_bucket
from tests.system.stack import AirflowStack

DAG_ID = "bench_video_pages"
PER_RUN = 20
MODELS = ("google/veo-3.1", "openai/sora-2", "bytedance/seedance-1-pro")
DAG = f"""
import pendulum
from airflow.sdk import DAG
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    OpenRouterVideoOperator.partial(task_id="render", model="google/veo-3.1", output_path="/tmp/x.mp4").expand(
        prompt=["never run: the benchmark seeds what runs would have recorded"]
    )
"""

SEED = r"""
import json, sys
from datetime import datetime
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import insert

spec = json.load(open(sys.argv[1]))
with create_session() as session:
    for run in spec["runs"]:
        stamp = datetime.fromisoformat(run["at"])
        dag_run = DagRun(dag_id=spec["dag_id"], run_id=run["run_id"], run_type="manual", state="success",
                         run_after=stamp, start_date=stamp)
        session.add(dag_run)
        session.flush()
        session.execute(insert(TaskInstance.__table__), [
            {"task_id": "render", "dag_id": spec["dag_id"], "run_id": run["run_id"], "map_index": v["map_index"],
             "try_number": 1, "max_tries": 0, "pool": "default_pool", "pool_slots": 1, "state": "success",
             "span_status": "not_started", "operator": "OpenRouterVideoOperator", "queue": "default",
             "priority_weight": 1}
            for v in run["videos"]
        ])
        rows = []
        for v in run["videos"]:
            for key, value in v["xcoms"].items():
                rows.append({"dag_run_id": dag_run.id, "task_id": "render", "map_index": v["map_index"], "key": key,
                             "dag_id": spec["dag_id"], "run_id": run["run_id"], "value": value,
                             "timestamp": datetime.fromisoformat(v["at"])})
        session.execute(insert(XComModel.__table__), rows)
"""


def _sample_mp4() -> bytes:
    from orvideo_emulator.mp4 import sample_bytes

    return sample_bytes()


def seed(
    stack: AirflowStack, videos: int, folder: Path, *, start: int = 0, prefix: str = "bench"
) -> list[str]:
    """Record ``videos`` saved videos (files included); returns their run ids."""
    rng = random.Random(videos)
    sample = _sample_mp4()
    now = datetime.now(timezone.utc)
    runs: list[dict[str, Any]] = []
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(start, start + videos):
        if (number - start) % PER_RUN == 0:
            at = now - timedelta(seconds=rng.uniform(60, 29 * 86400))
            runs.append({"run_id": f"{prefix}__{number // PER_RUN:05d}", "at": at.isoformat(), "videos": []})
        path = folder / f"clip-{number:06d}.mp4"
        path.write_bytes(sample)
        at = datetime.fromisoformat(runs[-1]["at"]) + timedelta(seconds=(number - start) % PER_RUN)
        model = MODELS[number % len(MODELS)]
        runs[-1]["videos"].append(
            {
                "map_index": (number - start) % PER_RUN,
                "at": at.isoformat(),
                "xcoms": {
                    "output_paths": [str(path)],
                    "video_request": {"model": model, "prompt": f"Product video {number}", "duration": 4},
                    "usage": {"cost": round(rng.choice((0.4, 0.8, 1.6, 3.2)), 2), "is_byok": False},
                    "output_host": "bench",
                    "job_id": f"gen-vid-bench-{number}",
                },
            }
        )
    spec_file = folder / f"seed-{start}.json"
    spec_file.write_text(json.dumps({"dag_id": DAG_ID, "runs": runs}))
    python = str(Path(stack.airflow).parent / "python")
    done = subprocess.run([python, "-c", SEED, str(spec_file)], env=stack.env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-4000:])
    return [run["run_id"] for run in runs]


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1100", "--no-first-run"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='bench-chromium-')}")
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


FIRST_SCREEN = """
const done = arguments[arguments.length - 1];
const posters = [...document.querySelectorAll('video.poster-frame')];
const check = () => posters.every(v => v.readyState >= 2)
    ? done([performance.now(), posters.length]) : setTimeout(check, 5);
check();
"""


def gallery_in_browser(stack: AirflowStack, repeats: int) -> dict[str, float]:
    figures: dict[str, list[float]] = {"html": [], "dom": [], "load": [], "first_screen": [], "posters": []}
    for _ in range(repeats):
        driver = _browser()
        try:
            driver.set_script_timeout(30)
            driver.get(f"{stack.base_url}/orvideo/gallery")
            response_end, dom, load = driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return [n.responseEnd, n.domContentLoadedEventEnd, n.loadEventEnd];"
            )
            ready_at, posters = driver.execute_async_script(FIRST_SCREEN)
        finally:
            driver.quit()
        for key, value in (("html", response_end), ("dom", dom), ("load", load), ("first_screen", ready_at)):
            figures[key].append(float(value))
        figures["posters"].append(float(posters))
    return {key: median(values) for key, values in figures.items()}


def server_times(stack: AirflowStack) -> dict[str, float]:
    def timed(path: str) -> tuple[float, str]:
        times = []
        text = ""
        for _ in range(20):
            started = time.perf_counter()
            response = stack.client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            text = response.text
        return median(times), text

    first, html = timed("/orvideo/gallery")
    after = html.split('href="/orvideo/gallery?after=', 1)[1].split('"', 1)[0]
    second, _ = timed(f"/orvideo/gallery?after={after}")
    model, _ = timed(f"/orvideo/gallery?model={MODELS[1]}")
    return {"first": first, "second": second, "model": model}


def api_server_rss(stack: AirflowStack) -> int:
    root = psutil.Process(stack.component_pid("api-server"))
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def _seed_one(stack: AirflowStack, folder: Path, run_id: str, xcoms: dict[str, Any]) -> None:
    now = datetime.now(timezone.utc).isoformat()
    video = {"map_index": 0, "at": now, "xcoms": xcoms}
    spec_file = folder / f"{run_id}.json"
    spec_file.write_text(
        json.dumps({"dag_id": DAG_ID, "runs": [{"run_id": run_id, "at": now, "videos": [video]}]})
    )
    python = str(Path(stack.airflow).parent / "python")
    subprocess.run([python, "-c", SEED, str(spec_file)], env=stack.env, check=True, capture_output=True)


def big_video(folder: Path, gib: float) -> Path:
    """A ``gib`` GiB MP4: the sample padded with a ``free`` box."""
    from orvideo_emulator.mp4 import VideoFile

    size = int(gib * 2**30)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "big.mp4"
    with path.open("wb") as out:
        for chunk in VideoFile(_sample_mp4(), size).iter_range(0, size):
            out.write(chunk)
    return path


def stream_memory(stack: AirflowStack, run_id: str, size: int) -> dict[str, float]:
    """The api-server's memory while one client streams the whole video, then 50 ranges."""
    url = f"/orvideo/stream/{DAG_ID}/{run_id}/render/0/0"
    headers = {"Accept-Encoding": "identity"}
    stack.client.get(url, headers={**headers, "Range": "bytes=0-1023"}).raise_for_status()  # warm
    time.sleep(1)
    baseline = api_server_rss(stack)
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(api_server_rss(stack))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    received = 0
    with httpx.Client(base_url=stack.base_url, timeout=300) as client:
        with client.stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            for chunk in response.iter_raw(1 << 20):
                received += len(chunk)
        elapsed = time.perf_counter() - started
        rng = random.Random(1)
        for _ in range(50):
            first = rng.randrange(0, size - 8 * 2**20)
            part = client.get(url, headers={**headers, "Range": f"bytes={first}-{first + 8 * 2**20 - 1}"})
            if part.status_code != 206 or len(part.content) != 8 * 2**20:
                raise RuntimeError(f"range answer {part.status_code}, {len(part.content)} bytes")
    stop.set()
    sampler.join()
    if received != size:
        raise RuntimeError(f"received {received} of {size} bytes")
    return {
        "size_mib": size / 2**20,
        "baseline_mib": baseline / 2**20,
        "peak_mib": max(samples) / 2**20,
        "growth_mib": (max(samples) - baseline) / 2**20,
        "throughput_mib_s": size / 2**20 / elapsed,
        "samples": len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stream-gib", type=float, default=1.0)
    args = parser.parse_args()
    quiet, waited = wait_quiet()
    print(f"machine: {machine_line()} (quiet={quiet}, waited {waited:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-video-pages-") as scratch:
        home = Path(scratch)
        (home / "dags").mkdir()
        (home / "dags" / "bench.py").write_text(DAG)
        (home / "moto").mkdir()
        with moto_server(home / "moto", home / "moto.log") as endpoint:
            s3 = new_bucket(endpoint)
            connection = json.dumps(aws_connection(endpoint))
            stack = AirflowStack(home / "stack", home / "dags", env={"AIRFLOW_CONN_BENCH_S3": connection})
            stack.start()
            try:
                run(stack, home, s3, args)
            finally:
                stack.stop()


def run(stack: AirflowStack, home: Path, s3: S3, args: argparse.Namespace) -> None:
    stack.wait_for_dag(DAG_ID, timeout=90)
    rows = []
    seeded = 0
    for videos in sorted(args.videos):
        seed(stack, videos - seeded, home / "videos", start=seeded)
        seeded = videos
        browser = gallery_in_browser(stack, args.repeats)
        server = server_times(stack)
        rows.append(
            [
                f"{videos:,}",
                f"{server['first']:.0f} / {server['second']:.0f} / {server['model']:.0f}",
                f"{browser['html']:.0f}",
                f"{browser['dom']:.0f}",
                f"{browser['load']:.0f}",
                f"{browser['first_screen']:.0f} ({browser['posters']:.0f} posters)",
            ]
        )
        print(rows[-1], flush=True)
    print()
    print(
        table(
            [
                "recorded videos",
                "page HTML, server ms (first / next page / model filter)",
                "browser: HTML ms",
                "DOMContentLoaded ms",
                "load ms",
                "first screen ms",
            ],
            rows,
        )
    )
    big = big_video(home / "big", args.stream_gib)
    size = big.stat().st_size
    _seed_one(
        stack,
        home / "big",
        "big__disk",
        {"output_paths": [str(big)], "video_request": {"model": MODELS[0]}},
    )
    memory = [("local file", stream_memory(stack, "big__disk", size))]
    s3.client.upload_file(str(big), s3.bucket, "big.mp4")
    big.unlink()
    _seed_one(
        stack,
        home / "big",
        "big__s3",
        {
            "output_paths": [f"s3://{s3.bucket}/big.mp4"],
            "output_conn_id": "bench_s3",
            "video_request": {"model": MODELS[0]},
        },
    )
    memory.append(("S3 (moto), output_conn_id", stream_memory(stack, "big__s3", size)))
    print()
    print(
        table(
            [
                "video",
                "from",
                "api-server RSS before",
                "peak while streaming",
                "growth",
                "throughput",
            ],
            [
                [
                    f"{figures['size_mib']:,.0f} MiB",
                    source,
                    f"{figures['baseline_mib']:.0f} MiB",
                    f"{figures['peak_mib']:.0f} MiB",
                    f"{figures['growth_mib']:+.1f} MiB",
                    f"{figures['throughput_mib_s']:.0f} MiB/s",
                ]
                for source, figures in memory
            ],
        )
    )


if __name__ == "__main__":
    main()
