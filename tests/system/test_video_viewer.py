"""Watching the videos in Airflow (issue 15), on a real stack and in a real browser.

One stack (api-server with the provider's plugin, scheduler, dag-processor, triggerer; SQLite)
runs with Airflow's simple auth manager and real users instead of all-admins mode: ``admin``
(admin) and ``alice`` (viewer), and ``tests/system/deny_auth_manager.py`` denies alice one DAG.
Videos come from the emulator, to a local folder and to a real S3 server (moto).

Proved here: the "Watch video" extra link on the task instance; the player page's facts; the
stream (full, Range, HEAD, 416) from disk and from object storage; a worker-only path reported
with its host; every page and stream refused without a token (401 / login redirect) and for a
user without access to the DAG (403), by cookie and by bearer; only recorded locations served
(a task that records ``airflow.cfg``, a link to it, or another DAG's video gets nothing; a
missing object is a note, not a dead player);
and in headless Chromium: the link, the player reaching ``readyState >= 2`` with the clip's
duration, the gallery with the run's videos and a spend chart, in Airflow's own navigation.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from orvideo_emulator import EmulatorControl
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from airflow_provider_orvideo._internal.output_paths import WRITER_XATTR
from airflow_provider_orvideo.plugins._video_html import money
from tests.conftest import EMULATOR_API_KEY
from tests.helpers import AIRFLOW_VERSION
from tests.s3 import S3, aws_connection, new_bucket
from tests.system.browser import headless_chromium, wait_for
from tests.system.conftest import StackFactory, record_artifact
from tests.system.stack import AirflowStack

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(AIRFLOW_VERSION < (3, 1), reason="Airflow 3.0 has no plugin views"),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
PASSWORDS = {"admin": "admin-pw-7f3a", "alice": "alice-pw-91c2"}
WATCH_DAG = "orvideo_watch"
SECRET_DAG = "orvideo_secret_videos"
BUCKET_DAG = "orvideo_bucket"
HOSTILE_DAG = "orvideo_hostile"
S3_CONN_ID = "orvideo_viewer_s3"
IDENTITY = {"Accept-Encoding": "identity"}

DAGS = """
from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

OUT = os.environ["ORVIDEO_OUTPUT_DIR"]
START = pendulum.datetime(2026, 1, 1, tz="UTC")
RUN = "{{ run_id | replace(':', '') | replace('+', '') }}"

for dag_id, prompt in (
    ("orvideo_watch", "A red kite over the harbour"),
    ("orvideo_secret_videos", "The unreleased product teaser"),
):
    with DAG(dag_id=dag_id, schedule=None, start_date=START):
        OpenRouterVideoOperator(
            task_id="render",
            prompt=prompt,
            model="google/veo-3.1",
            duration=4,
            resolution="720p",
            output_path=f"{OUT}/{dag_id}-{RUN}.mp4",
            poll_interval=1,
            initial_poll_delays=[0.5],
        )

with DAG(dag_id="orvideo_bucket", schedule=None, start_date=START):
    OpenRouterVideoOperator(
        task_id="render",
        prompt="A glass of water on a windowsill",
        model="google/veo-3.1",
        duration=4,
        output_path="s3://" + os.environ["ORVIDEO_BUCKET"] + "/clips/" + RUN + ".mp4",
        output_conn_id="orvideo_viewer_s3",
        poll_interval=1,
        initial_poll_delays=[0.5],
    )

with DAG(dag_id="orvideo_hostile", schedule=None, start_date=START):

    @task
    def record_foreign_paths(**context):
        # A DAG author recording files the task did not write, hoping the pages serve them.
        home = os.environ["AIRFLOW_HOME"]
        os.symlink(home + "/airflow.cfg", OUT + "/innocent.mp4")
        os.mkfifo(OUT + "/fifo.mp4")  # an open() of it would block until a writer comes
        ti = context["ti"]
        ti.xcom_push(key="video_request", value={"model": "hostile/not-a-model", "prompt": "not a video"})
        ti.xcom_push(key="output_paths", value=[
            home + "/airflow.cfg",
            OUT + "/innocent.mp4",
            context["dag_run"].conf["foreign_video"],
            "relative/clip.mp4",
            OUT + "/../" + os.path.basename(OUT) + "/missing.mp4",
            "s3://" + os.environ["ORVIDEO_BUCKET"] + "/nothing-here.mp4",
            OUT + "/fifo.mp4",
            OUT + "/nul\\x00.mp4",
        ])
        ti.xcom_push(key="output_conn_id", value="orvideo_viewer_s3")
        ti.xcom_push(key="output_host", value="worker-7")

    record_foreign_paths()
"""


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> S3:
    return new_bucket(s3_endpoint)


@pytest.fixture(scope="module")
def stack(
    module_airflow_stack_factory: StackFactory,
    emulator_server: Any,
    s3_endpoint: str,
    bucket: S3,
    tmp_path_factory: pytest.TempPathFactory,
) -> AirflowStack:
    out = tmp_path_factory.mktemp("videos")
    secrets = tmp_path_factory.mktemp("auth") / "passwords.json"
    secrets.write_text(json.dumps(PASSWORDS))
    connection = {"conn_type": "openrouter", "host": emulator_server.base_url, "password": EMULATOR_API_KEY}
    stack = module_airflow_stack_factory(
        dags={"viewer.py": DAGS},
        env={
            "ORVIDEO_OUTPUT_DIR": str(out),
            "ORVIDEO_BUCKET": bucket.bucket,
            "AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(connection),
            f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": json.dumps(aws_connection(s3_endpoint)),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,alice:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(secrets),
            "AIRFLOW__CORE__AUTH_MANAGER": "tests.system.deny_auth_manager.DagDenyingAuthManager",
            "ORVIDEO_TEST_DENY": f"alice:{SECRET_DAG}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        },
        name="video-viewer",
        start=False,
    )
    stack.credentials = ("admin", PASSWORDS["admin"])
    stack.start()
    for dag_id in (WATCH_DAG, SECRET_DAG, BUCKET_DAG, HOSTILE_DAG):
        stack.wait_for_dag(dag_id, timeout=60)
    return stack


@pytest.fixture(scope="module")
def runs(stack: AirflowStack, _emulator_control: EmulatorControl) -> dict[str, str]:
    """One successful run of each video DAG, then the hostile DAG naming the secret video."""
    _emulator_control.reset()  # the session's emulator: earlier modules script slow jobs
    run_ids = {dag_id: stack.trigger(dag_id) for dag_id in (WATCH_DAG, SECRET_DAG, BUCKET_DAG)}
    for dag_id, run_id in run_ids.items():
        states = stack.wait_for_task_state(dag_id, run_id, "render", {"success", "failed"}, timeout=120)
        assert states[-1] == "success", stack.all_log_tails()
    secret_video = stack.xcom(SECRET_DAG, run_ids[SECRET_DAG], "render")
    run_ids[HOSTILE_DAG] = stack.trigger(HOSTILE_DAG, conf={"foreign_video": secret_video})
    states = stack.wait_for_task_state(
        HOSTILE_DAG, run_ids[HOSTILE_DAG], "record_foreign_paths", {"success", "failed"}, timeout=60
    )
    assert states[-1] == "success", stack.all_log_tails()
    return run_ids


@pytest.fixture(scope="module")
def tokens(stack: AirflowStack) -> dict[str, str]:
    return {user: stack.login(user, password) for user, password in PASSWORDS.items()}


def _segments(dag_id: str, run_id: str, task_id: str = "render", map_index: int | str = -1) -> str:
    return "/".join(quote(str(part), safe="") for part in (dag_id, run_id, task_id, map_index))


def _get(
    stack: AirflowStack, path: str, token: str | None = None, *, cookie: bool = True, **kwargs: Any
) -> httpx.Response:  # headers: str or bytes values
    headers = dict(kwargs.pop("headers", None) or {})
    cookies = {}
    if token and cookie:
        cookies["_token"] = token
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=stack.base_url, timeout=30, cookies=cookies) as client:
        return client.request(kwargs.pop("method", "GET"), path, headers=headers, **kwargs)


def test_the_task_instance_links_to_its_player(
    stack: AirflowStack, runs: dict[str, str], tokens: dict[str, str]
) -> None:
    run_id = runs[WATCH_DAG]
    links = stack._api_json(
        "GET", f"/api/v2/dags/{WATCH_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/render/links"
    )
    watch = links["extra_links"]["Watch video"]
    assert watch == f"{stack.base_url}/orvideo/watch/{_segments(WATCH_DAG, run_id)}"
    page = _get(stack, watch.removeprefix(stack.base_url), tokens["admin"])
    assert page.status_code == 200, page.text
    job_id = stack.xcom(WATCH_DAG, run_id, "render", key="job_id")
    cost = stack.xcom(WATCH_DAG, run_id, "render", key="usage")["cost"]
    for fact in (
        "A red kite over the harbour",
        "google/veo-3.1",
        "4 s requested",
        "720p",
        job_id,
        run_id,
        money(cost),
    ):
        assert fact in page.text, fact
    assert "<dt>Try</dt><dd>1</dd>" in page.text
    assert f'src="/orvideo/stream/{_segments(WATCH_DAG, run_id)}/0"' in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]


def test_the_stream_serves_ranges_from_disk_and_from_object_storage(
    stack: AirflowStack, runs: dict[str, str], tokens: dict[str, str], bucket: S3
) -> None:
    local = Path(stack.xcom(WATCH_DAG, runs[WATCH_DAG], "render"))
    stored_key = stack.xcom(BUCKET_DAG, runs[BUCKET_DAG], "render").split(f"{bucket.bucket}/", 1)[1]
    for dag_id, expected in ((WATCH_DAG, local.read_bytes()), (BUCKET_DAG, bucket.read(stored_key))):
        url = f"/orvideo/stream/{_segments(dag_id, runs[dag_id])}/0"
        whole = _get(stack, url, tokens["admin"], headers=IDENTITY)
        assert whole.status_code == 200, whole.text
        assert whole.content == expected
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        part = _get(stack, url, tokens["admin"], headers={**IDENTITY, "Range": "bytes=100-1123"})
        assert part.status_code == 206, part.text
        assert part.content == expected[100:1124]
        assert part.headers["content-range"] == f"bytes 100-1123/{len(expected)}"
        tail = _get(stack, url, tokens["admin"], headers={**IDENTITY, "Range": "bytes=-10"})
        assert (tail.status_code, tail.content) == (206, expected[-10:])
        head = _get(stack, url, tokens["admin"], method="HEAD", headers=IDENTITY)
        assert (head.status_code, head.content, head.headers["content-length"]) == (
            200,
            b"",
            str(len(expected)),
        )
        beyond = _get(stack, url, tokens["admin"], headers={**IDENTITY, "Range": f"bytes={len(expected)}-"})
        assert (beyond.status_code, beyond.content) == (416, b"")
        assert beyond.headers["content-range"] == f"bytes */{len(expected)}"
        assert whole.headers["cross-origin-resource-policy"] == "same-origin"
        # A browser asking for gzip still gets the video bytes as they are.
        gz = _get(stack, url, tokens["admin"], headers={"Accept-Encoding": "gzip", "Range": "bytes=0-4095"})
        assert gz.content == expected[:4096]


def test_without_a_token_nothing_is_served(stack: AirflowStack, runs: dict[str, str]) -> None:
    segments = _segments(WATCH_DAG, runs[WATCH_DAG])
    page = _get(stack, f"/orvideo/watch/{segments}", follow_redirects=False)
    assert page.status_code == 303
    assert "login" in page.headers["location"]
    assert _get(stack, f"/orvideo/stream/{segments}/0").status_code == 401
    assert _get(stack, "/orvideo/gallery", follow_redirects=False).status_code == 303
    assert _get(stack, f"/orvideo/stream/{segments}/0", "not-a-jwt").status_code == 403
    assert _get(stack, f"/orvideo/stream/{segments}/0", "not-a-jwt", cookie=False).status_code == 403


@pytest.mark.parametrize("cookie", [True, False], ids=["cookie", "bearer"])
def test_a_user_without_access_to_the_dag_gets_nothing_of_it(
    stack: AirflowStack, runs: dict[str, str], tokens: dict[str, str], cookie: bool
) -> None:
    alice = tokens["alice"]
    secret = _segments(SECRET_DAG, runs[SECRET_DAG])
    for path in (
        f"/orvideo/watch/{secret}",
        f"/orvideo/stream/{secret}/0",
        f"/orvideo/gallery/dag/{SECRET_DAG}",
        f"/orvideo/gallery?dag_id={SECRET_DAG}",
    ):
        response = _get(stack, path, alice, cookie=cookie, headers=IDENTITY)
        assert response.status_code == 403, (path, response.status_code)
        assert "unreleased product teaser" not in response.text
    # The DAG alice may read works for her, and her gallery lists only its videos.
    own = _get(
        stack,
        f"/orvideo/stream/{_segments(WATCH_DAG, runs[WATCH_DAG])}/0",
        alice,
        cookie=cookie,
        headers=IDENTITY,
    )
    assert own.status_code == 200
    gallery = _get(stack, "/orvideo/gallery", alice, cookie=cookie)
    assert gallery.status_code == 200
    assert f'data-dag-id="{WATCH_DAG}"' in gallery.text
    assert SECRET_DAG not in gallery.text
    admin = _get(stack, "/orvideo/gallery", tokens["admin"], cookie=cookie)
    assert f'data-dag-id="{SECRET_DAG}"' in admin.text


def test_only_locations_the_task_recorded_and_wrote_are_served(
    stack: AirflowStack, runs: dict[str, str], tokens: dict[str, str]
) -> None:
    hostile = _segments(HOSTILE_DAG, runs[HOSTILE_DAG], "record_foreign_paths")
    config = (stack.airflow_home / "airflow.cfg").read_text()
    reasons = []
    for index in range(8):
        response = _get(stack, f"/orvideo/stream/{hostile}/{index}", tokens["admin"], headers=IDENTITY)
        assert response.status_code == 404, (index, response.text)
        assert "[core]" not in response.text
        assert config[:200] not in response.text
        reasons.append(response.text)
    assert "video suffix" in reasons[0]
    assert "links to" in reasons[1]  # innocent.mp4, a link to airflow.cfg
    assert "written by another task instance" in reasons[2]  # the secret DAG's real video
    assert "absolute" in reasons[3]
    assert "worker-7" in reasons[4]  # not on this machine: where it is instead
    assert "no longer exists in object storage" in reasons[5]
    assert "not a regular file" in reasons[6]  # the FIFO: refused without opening it
    assert "NUL" in reasons[7]
    # Whatever the URL says, it names a recorded index, never a path.
    for path in (
        f"/orvideo/stream/{hostile}/8",
        f"/orvideo/stream/{hostile}/-1",
        f"/orvideo/stream/{hostile}/..%2F..%2Fairflow.cfg",
        f"/orvideo/stream/{hostile}/0/../../../../../airflow.cfg",
        "/orvideo/stream/..%2F..%2F/x/y/-1/0",
    ):
        response = _get(stack, path, tokens["admin"], headers=IDENTITY)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert "[core]" not in response.text
    page = _get(stack, f"/orvideo/watch/{hostile}", tokens["admin"])
    assert page.status_code == 200
    assert page.text.count('class="note"') == 8  # each says why, the page itself works
    assert "<video" not in page.text


def test_a_file_swapped_while_it_streams_never_serves_another_file(
    stack: AirflowStack, runs: dict[str, str], tokens: dict[str, str]
) -> None:
    """A task that writes to the shared volume swaps its recorded video for a link to the
    api-server's ``airflow.cfg`` and back, as fast as it can, while a client streams it (300
    streams; before the fix 61-77 of 300 returned another file). Each answer is the video or a
    refusal; the video is back in place afterwards."""
    clip = Path(stack.xcom(WATCH_DAG, runs[WATCH_DAG], "render"))
    original = clip.read_bytes()
    writer = os.getxattr(clip, WRITER_XATTR)
    config = (stack.airflow_home / "airflow.cfg").read_bytes()
    link, staged = clip.with_name("swap.lnk"), clip.with_name("swap.tmp")
    stop = threading.Event()

    def put_video_back() -> None:
        staged.write_bytes(original)
        os.setxattr(staged, WRITER_XATTR, writer)
        os.replace(staged, clip)

    def swap() -> None:
        while not stop.is_set():
            link.unlink(missing_ok=True)
            link.symlink_to(stack.airflow_home / "airflow.cfg")
            os.replace(link, clip)
            put_video_back()

    url = f"/orvideo/stream/{_segments(WATCH_DAG, runs[WATCH_DAG])}/0"
    answers: dict[int, int] = {}
    swapper = threading.Thread(target=swap)
    swapper.start()
    deadline = time.monotonic() + 90
    try:
        with httpx.Client(base_url=stack.base_url, timeout=30, cookies={"_token": tokens["admin"]}) as client:
            for _ in range(300):
                if time.monotonic() > deadline:
                    break
                response = client.get(url, headers=IDENTITY)
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
                assert config[:64] not in response.content
                if response.status_code == 200:
                    assert response.content == original
                else:
                    assert response.status_code == 404, response.text
                    assert response.text.startswith("Not shown:"), response.text
    finally:
        stop.set()
        swapper.join()
        put_video_back()
    assert answers.get(200, 0) > 0, answers
    assert answers.get(404, 0) > 0, f"the swap never won a round: {answers}"


def test_requests_for_a_fifo_do_not_hold_threads(
    stack: AirflowStack, runs: dict[str, str], tokens: dict[str, str]
) -> None:
    """60 concurrent requests for a recorded FIFO (before the fix 13 of 60 hung forever and each
    held a thread): all answered at once, and the pages keep serving."""
    hostile = _segments(HOSTILE_DAG, runs[HOSTILE_DAG], "record_foreign_paths")
    started = time.monotonic()

    def fetch(_: int) -> int:
        with httpx.Client(base_url=stack.base_url, timeout=20, cookies={"_token": tokens["admin"]}) as client:
            return client.get(f"/orvideo/stream/{hostile}/6", headers=IDENTITY).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(fetch, range(60)))
    assert statuses == [404] * 60
    assert time.monotonic() - started < 20
    video = _get(stack, f"/orvideo/stream/{_segments(WATCH_DAG, runs[WATCH_DAG])}/0", tokens["admin"])
    assert video.status_code == 200


# Hostile values for every part of every route: Unicode digits, huge numbers, NUL, lone
# surrogates' UTF-8 look-alikes, calendar extremes, path tricks.
_HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["²", "١٢", "-1", "-2", "0", "{MAP_INDEX}", "\x00", "%00", "..", "../..", "9" * 40]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
_DAY = st.one_of(
    st.sampled_from(["9999-12-31", "0001-01-01", "2026-02-30", "2026-13-01", "99999-01-01", "2026-W01-1"]),
    st.dates().map(date.isoformat),
    _HOSTILE_TEXT,
)


def _cursor(stamp: str, pk: Any, task_id: Any, map_index: Any) -> str:
    raw = json.dumps([stamp, pk, task_id, map_index]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_AFTER = st.one_of(
    _HOSTILE_TEXT,
    st.builds(
        _cursor,
        st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-01-01T00:00:00"]),
        st.one_of(st.integers(min_value=-(10**30), max_value=10**30), st.just(True)),
        st.one_of(st.text(max_size=10), st.just("\x00")),
        st.integers(min_value=-(10**30), max_value=10**30),
    ),
)
_RANGE = st.one_of(
    st.text(max_size=30),
    st.builds(
        "bytes={}-{}".format,
        st.one_of(st.just(""), _HOSTILE_TEXT),
        st.one_of(st.just(""), _HOSTILE_TEXT),
    ),
)


# No shrinking: each example is eight real requests; the failing one is reported as drawn.
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.explicit, Phase.generate),
)
@given(data=st.data())
def test_no_input_gets_a_500_from_any_route(
    stack: AirflowStack, runs: dict[str, str], tokens: dict[str, str], data: st.DataObject
) -> None:
    """Every route of the plugin, any path segment, query parameter and Range header: a 4xx (or a
    page), never a 500. Some inputs are real ids, so the checks past authorisation run too."""
    real = {"dag": WATCH_DAG, "run": runs[WATCH_DAG], "task": "render", "map": "-1", "index": "0"}
    part = {
        name: data.draw(st.one_of(st.just(value), _HOSTILE_TEXT), label=name) for name, value in real.items()
    }
    segments = "/".join(quote(part[name], safe="") for name in ("dag", "run", "task", "map"))
    query = {
        name: data.draw(strategy, label=name)
        for name, strategy in (
            ("dag_id", st.one_of(st.just(WATCH_DAG), _HOSTILE_TEXT)),
            ("model", _HOSTILE_TEXT),
            ("since", _DAY),
            ("until", _DAY),
            ("after", _AFTER),
        )
        if data.draw(st.booleans(), label=f"with {name}")
    }
    # A header is bytes on the wire (sent as UTF-8 here); HTTP forbids control characters in one
    # (the client would refuse to send it), so those are left out.
    range_header = "".join(c for c in data.draw(_RANGE, label="range") if 32 <= ord(c) != 127)
    headers = {**IDENTITY, "Range": range_header.strip().encode()}
    paths = [
        f"/orvideo/watch/{segments}",
        f"/orvideo/stream/{segments}/{quote(part['index'], safe='')}",
        "/orvideo/gallery",
        f"/orvideo/gallery/dag/{quote(part['dag'], safe='')}",
    ]
    for path in paths:
        for method in ("GET", "HEAD"):
            response = _get(
                stack,
                path,
                tokens["admin"],
                method=method,
                params=query,
                headers=headers,
                follow_redirects=False,
            )
            assert response.status_code < 500 or response.status_code == 405, (method, path, query, headers)


def test_a_flood_of_forged_webhooks_costs_a_few_log_lines(stack: AirflowStack) -> None:
    """2,000 forged deliveries, each naming a different connection: all refused, and the
    provider's log lines about them stay a few (before: two per request). Airflow's own access
    log still writes one line per request (rate-limit the path at the proxy: docs/webhooks.md)."""
    log = stack.log_path("api-server")
    marker = "Refusing an OpenRouter webhook"
    before = log.read_text(errors="replace").count(marker)

    def forge(number: int) -> int:
        query = {
            "conn_id": f"forged_{number}",
            "dag_id": "d",
            "task_id": "t",
            "run_id": "r",
            "map_index": "-1",
        }
        response = client.post(
            "/orvideo/webhook",
            params=query,
            content=b'{"type": "video.generation.completed"}',
            headers={"X-OpenRouter-Signature": f"t={int(time.time())},v1={number:064x}"},
        )
        return response.status_code

    with (
        httpx.Client(base_url=stack.base_url, timeout=30) as client,
        ThreadPoolExecutor(max_workers=16) as pool,
    ):
        statuses = set(pool.map(forge, range(2_000)))
    assert statuses <= {400, 401, 503}, statuses
    time.sleep(1)  # the api-server's log is written by its own process
    text = log.read_text(errors="replace")
    added = text.count(marker) - before
    assert added <= 5, "\n".join(line for line in text.splitlines() if marker in line)[-3000:]


# ------------------------------------------------------------------------------------ browser


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    with headless_chromium(request, ARTIFACTS / "video-viewer-failure.png") as driver:
        yield driver


def _screenshot(request: pytest.FixtureRequest, driver: WebDriver, name: str) -> Path:
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path)), f"screenshot {name} not written"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record_artifact(request.config, path)
    return path


def _sign_in(driver: WebDriver, stack: AirflowStack, token: str) -> None:
    """What Airflow's login page leaves in the browser: the token as the ``_token`` cookie."""
    driver.get(f"{stack.base_url}/api/v2/version")
    driver.add_cookie({"name": "_token", "value": token, "path": "/"})


def test_watching_in_the_browser(
    stack: AirflowStack,
    runs: dict[str, str],
    tokens: dict[str, str],
    browser: WebDriver,
    request: pytest.FixtureRequest,
) -> None:
    run_id = runs[WATCH_DAG]
    _sign_in(browser, stack, tokens["admin"])

    # The task instance's details in Airflow show the link.
    browser.get(f"{stack.base_url}/dags/{WATCH_DAG}/runs/{quote(run_id, safe='')}/tasks/render/details")
    link = wait_for(
        browser,
        ec.presence_of_element_located((By.XPATH, "//a[normalize-space()='Watch video']")),
        "the 'Watch video' link on the task instance",
    )
    href = link.get_attribute("href")
    assert href == f"{stack.base_url}/orvideo/watch/{_segments(WATCH_DAG, run_id)}"

    # The player plays the clip: decodable frames, its duration, and seeking (Range requests).
    browser.get(href)
    wait_for(
        browser,
        lambda driver: driver.execute_script("return document.querySelector('video').readyState") >= 2,
        "the video to have a decoded frame (readyState >= 2)",
    )
    duration = browser.execute_script("return document.querySelector('video').duration")
    assert duration == pytest.approx(4.0, abs=0.6)
    browser.execute_script("document.querySelector('video').currentTime = 2.5")
    wait_for(
        browser,
        lambda driver: driver.execute_script(
            "const v = document.querySelector('video'); return !v.seeking && v.currentTime > 2 && v.readyState >= 2"
        ),
        "the video to seek to 2.5 s",
    )
    assert "A red kite over the harbour" in browser.page_source
    _screenshot(request, browser, "video-player.png")

    # The gallery inside Airflow's UI (the "Videos" view under Browse): the run's video and a chart.
    browser.get(f"{stack.base_url}/plugin/orvideo-videos")
    frame = wait_for(browser, ec.presence_of_element_located((By.TAG_NAME, "iframe")), "the gallery frame")
    browser.switch_to.frame(frame)
    card = wait_for(
        browser,
        ec.presence_of_element_located((By.CSS_SELECTOR, f"article.card[data-run-id='{run_id}']")),
        "the run's video in the gallery",
    )
    assert card.get_attribute("data-dag-id") == WATCH_DAG
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.spend-chart rect.bar")
    assert bars, "the spend chart has no bars"
    assert {bar.get_attribute("data-dag-id") for bar in bars} >= {WATCH_DAG, SECRET_DAG, BUCKET_DAG}
    wait_for(
        browser,
        lambda driver: driver.execute_script(
            "return [...document.querySelectorAll('video.poster-frame')].every(v => v.readyState >= 2)"
        ),
        "every poster frame to load",
    )
    # Filtering by model, inside the frame: the hostile task's recorded files drop out.
    model = browser.find_element(By.NAME, "model")
    model.send_keys("google/veo-3.1")
    model.submit()
    wait_for(
        browser,
        lambda driver: driver.execute_script(
            "const v = [...document.querySelectorAll('video.poster-frame')];"
            "return location.search.includes('model=google') && v.length === 3 && v.every(x => x.readyState >= 2)"
        ),
        "the filtered gallery with three posters",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, f"article.card[data-dag-id='{HOSTILE_DAG}']")
    browser.switch_to.default_content()
    _screenshot(request, browser, "video-gallery.png")
