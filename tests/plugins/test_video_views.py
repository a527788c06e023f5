"""The video pages' decisions (what may be served, ranges, paging, the spend chart, paid but
not kept) and HTML.

The HTTP side, with real users, tokens, files and buckets, is ``tests/system/test_video_viewer.py``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shlex
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.ledger import SpendRow
from airflow_provider_orvideo.links.openrouter_video import WatchVideoLink, watch_path
from airflow_provider_orvideo.plugins._video_html import PageUrls, money, render_gallery, render_watch
from airflow_provider_orvideo.plugins._video_views import (
    GalleryFilter,
    InvalidViewRequest,
    LocalVideo,
    RecordedVideo,
    Refused,
    SpendChart,
    StoredVideo,
    Unavailable,
    UnkeptJob,
    Unreachable,
    UnsatisfiableRange,
    VideoTask,
    age_text,
    byte_range,
    decode_cursor,
    encode_cursor,
    locate,
    output_index,
    spend_chart,
    spend_window,
)

TASK = VideoTask("product_videos", "manual__2026-01-01T00:00:00+00:00", "render", -1)
REQUEST = {"model": "google/veo-3.1", "prompt": "A kite", "duration": 4, "resolution": "720p"}


def recorded(*locations: str, conn_id: str | None = None, host: str | None = "worker-3") -> RecordedVideo:
    return RecordedVideo(TASK, tuple(locations), conn_id=conn_id, host=host, request=REQUEST, cost=1.6)


# ------------------------------------------------------------------------------------ task from URL


def test_the_map_index_placeholder_airflow_leaves_in_the_url_reads_as_unmapped() -> None:
    assert VideoTask.from_segments("d", "r", "t", "{MAP_INDEX}").map_index == -1
    assert VideoTask.from_segments("d", "r", "t", "3").map_index == 3


@pytest.mark.parametrize("segment", ["x", "1.5", "-2", "", "../0"])
def test_a_map_index_the_pages_cannot_have_written_is_refused(segment: str) -> None:
    with pytest.raises(InvalidViewRequest, match="map index"):
        VideoTask.from_segments("d", "r", "t", segment)


ID_TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
"""Any character a metadata database stores in an id (not NUL, not a lone surrogate)."""


@given(
    dag_id=st.text(ID_TEXT, min_size=1, max_size=30),
    run_id=st.text(ID_TEXT, min_size=1, max_size=40),
    task_id=st.text(ID_TEXT, min_size=1, max_size=30),
    map_index=st.integers(min_value=-1, max_value=10_000),
)
def test_watch_urls_are_one_path_segment_per_id(
    dag_id: str, run_id: str, task_id: str, map_index: int
) -> None:
    path = watch_path(dag_id, run_id, task_id, map_index)
    assert path.startswith("orvideo/watch/")
    segments = path.removeprefix("orvideo/watch/").split("/")
    assert [unquote(segment) for segment in segments] == [dag_id, run_id, task_id, str(map_index)]
    task = VideoTask.from_segments(*(unquote(segment) for segment in segments))
    assert PageUrls("/orvideo").watch(task) == "/" + path


def test_the_link_outside_a_finished_task_is_hidden_not_an_error() -> None:
    """Airflow 3.0 does not catch an exception from get_link: it would fail the task."""

    class Key:
        dag_id, run_id, task_id, map_index, try_number = "d", "r", "t", -1, 1

    assert WatchVideoLink().get_link(None, ti_key=Key()) == ""


# ------------------------------------------------------------------------------------ locations


def test_a_recorded_path_is_located_without_touching_the_filesystem() -> None:
    """Deciding what a recorded value is reads nothing: opening it is video_sources' job."""
    assert locate(recorded("/nowhere/clip.mp4"), 0) == LocalVideo("/nowhere/clip.mp4", "video/mp4")
    assert locate(recorded("file:///nowhere/clip.webm"), 0) == LocalVideo("/nowhere/clip.webm", "video/webm")
    assert "video suffix" in locate(recorded("/etc/airflow.cfg"), 0).message  # type: ignore[union-attr]
    assert "absolute" in locate(recorded("videos/clip.mp4"), 0).message  # type: ignore[union-attr]


def test_a_nul_in_a_recorded_path_hides_that_video_only() -> None:
    video = recorded("/v/a\x00b.mp4", "/v/b.mp4")
    refused = locate(video, 0)
    assert isinstance(refused, Refused)
    assert "NUL" in refused.message
    assert "\x00" not in refused.message
    assert locate(video, 1) == LocalVideo("/v/b.mp4", "video/mp4")


def test_object_storage_is_opened_with_the_recorded_connection() -> None:
    location = locate(recorded("s3://bucket/clips/a.mp4", conn_id="aws_media"), 0)
    assert location == StoredVideo("s3://aws_media@bucket/clips/a.mp4", "video/mp4", "aws_media")
    named = locate(recorded("s3://aws_other@bucket/clips/a.mov"), 0)
    assert named == StoredVideo("s3://aws_other@bucket/clips/a.mov", "video/quicktime", "aws_other")
    assert locate(recorded("s3://bucket/a.mp4"), 0) == StoredVideo("s3://bucket/a.mp4", "video/mp4", None)
    assert isinstance(locate(recorded("s3://bucket/keys/credentials.json"), 0), Refused)


@settings(max_examples=200, deadline=None)
@given(
    location=st.one_of(
        st.text(max_size=80), st.from_regex(r"(/|\.\./|file://|s3://)[ -~]{0,60}", fullmatch=True)
    )
)
def test_any_recorded_value_gives_an_answer_never_an_exception(location: str) -> None:
    answer = locate(recorded(location), 0)
    if isinstance(answer, LocalVideo):
        assert os.path.isabs(answer.path)
        assert answer.path.endswith((".mp4", ".m4v", ".mov", ".webm"))


# ------------------------------------------------------------------------------------ ranges


@given(size=st.integers(min_value=1, max_value=10**10), data=st.data())
def test_byte_ranges_follow_rfc_9110(size: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(min_value=0, max_value=size * 2))
    last = data.draw(st.integers(min_value=0, max_value=size * 2))
    suffix = data.draw(st.integers(min_value=1, max_value=size * 2))
    if first >= size:
        with pytest.raises(UnsatisfiableRange):
            byte_range(f"bytes={first}-", size)
    else:
        assert byte_range(f"bytes={first}-", size) == (first, size - 1)
        expected = None if last < first else (first, min(last, size - 1))
        assert byte_range(f"bytes={first}-{last}", size) == expected
    assert byte_range(f"bytes=-{suffix}", size) == (max(size - suffix, 0), size - 1)


@given(header=st.text(max_size=40), size=st.integers(min_value=0, max_value=10**6))
def test_any_range_header_is_ignored_answered_or_unsatisfiable(header: str, size: int) -> None:
    try:
        answer = byte_range(header, size)
    except UnsatisfiableRange:
        return
    if answer is not None:
        first, last = answer
        assert 0 <= first <= last < size


@pytest.mark.parametrize(
    "header", [None, "", "items=0-1", "bytes=0-1,4-5", "bytes=5-2", "bytes=a-b", "bytes=-"]
)
def test_ranges_a_server_may_ignore_send_the_whole_file(header: str | None) -> None:
    assert byte_range(header, 100) is None


# ------------------------------------------------------------------------------------ recorded facts


def test_recorded_facts_read_native_json_and_json_strings() -> None:
    video = RecordedVideo.from_xcoms(
        TASK,
        {
            "output_paths": json.dumps(["/v/a.mp4", "/v/a_1.mp4"]),
            "video_request": REQUEST,
            "usage": {"cost": 0.25, "is_byok": False},
            "output_conn_id": None,
            "job_id": "job-1",
            "unavailable_outputs": [1],
        },
        try_number=2,
    )
    assert video is not None
    assert (video.locations, video.cost, video.job_id, video.try_number) == (
        ("/v/a.mp4", "/v/a_1.mp4"),
        0.25,
        "job-1",
        2,
    )
    assert video.missing_outputs == (1,)
    assert video.model == "google/veo-3.1"


@pytest.mark.parametrize(
    "values",
    [
        {"output_paths": ["/v/a.mp4"]},  # not the operator's: no video_request
        {"video_request": REQUEST},  # has not saved a video
        {"output_paths": [], "video_request": REQUEST},
        {"output_paths": "/v/a.mp4", "video_request": REQUEST},
    ],
)
def test_a_task_instance_without_a_saved_video_has_no_page(values: dict[str, object]) -> None:
    assert RecordedVideo.from_xcoms(TASK, values) is None


@pytest.mark.parametrize("cost", [True, "1.2", float("nan"), float("inf"), None, [1]])
def test_a_cost_that_is_not_a_number_shows_as_unknown(cost: object) -> None:
    video = RecordedVideo.from_xcoms(
        TASK, {"output_paths": ["/a.mp4"], "video_request": REQUEST, "usage": {"cost": cost}}
    )
    assert video is not None
    assert video.cost is None
    assert money(video.cost) == "cost unknown"


# ------------------------------------------------------------------------------------ gallery


@given(
    stamp=st.datetimes(timezones=st.just(timezone.utc)),
    dag_run_pk=st.integers(min_value=0, max_value=2**31 - 1),
    task_id=st.text(ID_TEXT, min_size=1, max_size=40),
    map_index=st.integers(min_value=-1, max_value=10**6),
)
def test_gallery_positions_survive_the_url(
    stamp: datetime, dag_run_pk: int, task_id: str, map_index: int
) -> None:
    assert decode_cursor(encode_cursor(stamp, dag_run_pk, task_id, map_index)) == (
        stamp,
        dag_run_pk,
        task_id,
        map_index,
    )


@given(text=st.text(max_size=60))
def test_a_forged_gallery_position_is_a_clear_400(text: str) -> None:
    try:
        decode_cursor(text)
    except InvalidViewRequest as error:
        message = str(error)
    else:
        return  # by chance a well-formed position: harmless, it only pages
    assert message.startswith("after=")


def test_filters_from_the_query_string() -> None:
    filters = GalleryFilter.from_query(
        {"dag_id": " daily ", "model": "google/veo-3.1", "since": "2026-01-02"}
    )
    assert (filters.dag_id, filters.model, filters.since) == ("daily", "google/veo-3.1", date(2026, 1, 2))
    assert filters.recorded_from == datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert GalleryFilter.from_query({"until": "2026-01-02"}).recorded_before == datetime(
        2026, 1, 3, tzinfo=timezone.utc
    )
    assert GalleryFilter.from_query({"dag_id": "x"}, dag_id="fixed").dag_id == "fixed"
    with pytest.raises(InvalidViewRequest, match="since='yesterday' is not a date"):
        GalleryFilter.from_query({"since": "yesterday"})


# ------------------------------------------------------------------------------------ spend


TODAY = date(2026, 3, 31)


def _row(
    day: date,
    dag_id: str,
    spent: float = 0.0,
    *,
    conn_id: str = "openrouter_default",
    jobs: int = 1,
    pending: float = 0.0,
    unpriced: int = 0,
    unkept: int = 0,
) -> SpendRow:
    return SpendRow(day.isoformat(), dag_id, conn_id, jobs, spent, pending, unpriced, unkept)


def test_spend_is_bucketed_per_utc_day_and_dag_over_30_days() -> None:
    rows = [
        _row(TODAY, "daily", 1.5),
        _row(TODAY, "daily", 0.5, conn_id="openrouter_team_b"),  # two connections, one DAG
        _row(TODAY - timedelta(days=29), "weekly", 2.0),
        _row(TODAY - timedelta(days=30), "weekly", 100.0),  # outside the window
        _row(TODAY, "weekly", jobs=2, pending=0.8, unpriced=1),
        _row(TODAY - timedelta(days=1), "daily", 4.0, jobs=3, unkept=2),
    ]
    chart = spend_chart(rows, today=TODAY)
    assert len(chart.days) == 30
    assert (chart.days[0], chart.days[-1]) == (TODAY - timedelta(days=29), TODAY)
    assert chart.amounts[(TODAY, "daily")] == 2.0
    assert chart.amounts[(TODAY - timedelta(days=1), "daily")] == 4.0
    assert chart.amounts[(TODAY - timedelta(days=29), "weekly")] == 2.0
    assert (TODAY, "weekly") not in chart.amounts  # pending is not spent money
    assert chart.pending == {TODAY: 0.8}
    assert (chart.total, chart.pending_total) == (8.0, 0.8)
    assert (chart.jobs, chart.unpriced, chart.unkept) == (8, 1, 2)
    assert chart.series == ("daily", "weekly")
    assert not chart.cut


def test_a_report_cut_at_its_row_limit_leaves_out_its_oldest_day() -> None:
    """The ledger returns groups newest day first: the last day it returned may be partial."""
    rows = [
        _row(TODAY, "a", 1.0),
        _row(TODAY - timedelta(days=3), "a", 2.0),
        _row(TODAY - timedelta(days=3), "b", 4.0),
    ]
    chart = spend_chart(rows, today=TODAY, complete=False)
    assert chart.cut
    assert chart.counted_from == TODAY - timedelta(days=2)
    assert (chart.total, chart.jobs, dict(chart.amounts)) == (1.0, 1, {(TODAY, "a"): 1.0})


@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([f"dag_{i}" for i in range(12)]),
            st.integers(min_value=-40, max_value=0),
            st.floats(min_value=0, max_value=50),
            st.floats(min_value=0, max_value=5),
        ),
        max_size=80,
    )
)
def test_the_chart_adds_up_whatever_the_dags(rows: list[tuple[str, int, float, float]]) -> None:
    chart = spend_chart(
        (_row(TODAY + timedelta(days=offset), dag, cost, pending=held) for dag, offset, cost, held in rows),
        today=TODAY,
    )
    inside = [(cost, held) for _, offset, cost, held in rows if offset > -30]
    assert chart.jobs == len(inside)
    assert math.isclose(chart.total, sum(cost for cost, _ in inside), abs_tol=1e-6)
    assert math.isclose(chart.pending_total, sum(held for _, held in inside), abs_tol=1e-6)
    assert math.isclose(sum(chart.amounts.values()), chart.total, abs_tol=1e-6)
    assert len(chart.series) <= 8
    assert set(name for _, name in chart.amounts) <= set(chart.series)
    if SpendChart.OTHER in chart.series:
        assert chart.series[-1] == SpendChart.OTHER


def test_a_day_the_ledger_did_not_write_is_skipped_not_a_crash() -> None:
    rows = [SpendRow("not a day", "a", "c", 1, 5.0, 0.0, 0, 0), _row(TODAY, "a", 1.0)]
    assert spend_chart(rows, today=TODAY).total == 1.0


def test_the_chart_window_is_the_ledger_query_s() -> None:
    assert spend_window(TODAY) == ("2026-03-02", "2026-03-31")


# ------------------------------------------------------------------------------------ paid, not kept


def _unkept_entry(**values: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "entry_id": "e1",
        "job_id": "job-1",
        "dag_id": "d",
        "run_id": "r",
        "task_id": "t",
        "map_index": 2,
        "cost_usd": 0.42,
        "estimate_usd": 0.4,
        "ended_at": 1_000.0,
        "model": "google/veo-3.1",
        "unkept_reason": None,
        "superseded_by": None,
    }
    entry.update(values)
    return entry


def test_an_unkept_job_says_why_it_was_not_kept() -> None:
    job = UnkeptJob.from_entry(**_unkept_entry(unkept_reason="the disk was full"))
    assert job is not None
    assert job.task == VideoTask("d", "r", "t", 2)
    assert job.why == "the disk was full"
    superseded = UnkeptJob.from_entry(**_unkept_entry(superseded_by="job-2"))
    assert superseded is not None
    assert "superseded by job-2" in superseded.why
    unknown = UnkeptJob.from_entry(**_unkept_entry())
    assert unknown is not None
    assert "no task recorded keeping it" in unknown.why


@pytest.mark.parametrize(
    "values",
    [{"job_id": None}, {"job_id": ""}, {"ended_at": None}, {"ended_at": "yesterday"}, {"ended_at": math.nan}],
)
def test_a_ledger_row_without_a_job_or_an_end_is_not_listed(values: dict[str, object]) -> None:
    assert UnkeptJob.from_entry(**_unkept_entry(**values)) is None


def test_odd_values_in_a_ledger_row_read_as_unknown() -> None:
    job = UnkeptJob.from_entry(**_unkept_entry(map_index="3", cost_usd=True, model=7, estimate_usd="1"))
    assert job is not None
    assert (job.task.map_index, job.cost_usd, job.model, job.estimate_usd) == (-1, None, None, None)


@pytest.mark.parametrize(
    "job_id", ["gen-vid-1", "job; rm -rf / #", "$(reboot)", "it's `x`", "../../etc/passwd", "--help"]
)
def test_the_download_command_passes_the_job_id_as_one_word(job_id: str) -> None:
    job = UnkeptJob.from_entry(**_unkept_entry(job_id=job_id))
    assert job is not None
    *command, path = shlex.split(job.download_command())
    assert command == ["orvideo", "download", *(["--"] if job_id.startswith("-") else []), job_id]
    assert path.startswith("./")
    assert "/" not in path[2:]
    assert path.endswith(".mp4")


@pytest.mark.parametrize(
    ("seconds", "text"), [(-5, "0 s"), (45, "45 s"), (60, "1 min"), (7_300, "2 h"), (3 * 86_400 + 5, "3 d")]
)
def test_an_age_reads_in_the_largest_whole_unit(seconds: float, text: str) -> None:
    assert age_text(seconds) == text


# ------------------------------------------------------------------------------------ HTML


HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>"'


def test_the_player_page_escapes_what_a_dag_author_wrote(tmp_path: Path) -> None:
    task = VideoTask(HOSTILE, HOSTILE, HOSTILE, -1)
    video = RecordedVideo(
        task, (str(tmp_path / "a.mp4"),), request={"prompt": HOSTILE, "model": HOSTILE}, job_id=HOSTILE
    )
    page = render_watch(video, [Unreachable(HOSTILE, HOSTILE)], PageUrls("/orvideo"))
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page


def test_every_output_the_page_cannot_play_gets_its_reason_instead_of_a_player(tmp_path: Path) -> None:
    video = recorded("/w/a.mp4", "s3://b/gone.mp4", "/etc/passwd", host="worker-3")
    notes = [
        Unreachable("/w/a.mp4", "worker-3"),
        Unavailable("s3://b/gone.mp4", "no longer exists in object storage"),
        Refused("/etc/passwd", "does not end in a video suffix"),
    ]
    page = render_watch(video, notes, PageUrls("/orvideo"))
    assert "<video" not in page
    assert page.count('class="note"') == 3
    for note in notes:
        assert note.message in page


def test_the_gallery_escapes_and_keeps_its_filters_on_the_next_page() -> None:
    video = RecordedVideo(TASK, ("/v/a.mp4",), request={"prompt": HOSTILE, "model": "m"}, cost=0.5)
    chart = spend_chart([_row(TODAY, HOSTILE, 1.0, pending=0.5)], today=TODAY)
    page = render_gallery(
        videos=[(video, LocalVideo("/v/a.mp4", "video/mp4"))],
        chart=chart,
        filters=GalleryFilter(model="m", since=date(2026, 3, 1)),
        next_cursor="abc",
        urls=PageUrls("/orvideo"),
        fixed_dag=None,
        dag_options=[HOSTILE],
        model_options=["m"],
    )
    assert "<script" not in page
    assert "<img" not in page
    assert 'href="/orvideo/gallery?model=m&amp;since=2026-03-01&amp;after=abc"' in page
    assert f'src="{PageUrls("/orvideo").stream(TASK, 0)}#t=0.5"' in page
    assert 'class="bar"' in page
    assert 'class="pending"' in page
    assert 'href="/orvideo/unkept"' in page


def test_a_gallery_without_its_ledger_says_so_instead_of_a_chart() -> None:
    page = render_gallery(
        videos=[],
        chart=None,
        spend_note=f"Spend unavailable: {HOSTILE}.",
        filters=GalleryFilter(dag_id="d"),
        next_cursor=None,
        urls=PageUrls("/orvideo"),
        fixed_dag="d",
        dag_options=[],
        model_options=[],
    )
    assert "<script" not in page
    assert 'class="note spend-unavailable"' in page
    assert "spend-chart" not in page
    assert 'href="/orvideo/unkept?dag_id=d"' in page


def test_urls_follow_the_mount_point_of_a_deployment_under_a_sub_path() -> None:
    urls = PageUrls("/airflow/orvideo")
    mapped = VideoTask("d", "r+1", "t", 2)
    assert urls.stream(mapped, 1) == "/airflow/orvideo/stream/d/r%2B1/t/2/1"
    assert urls.task_instance(mapped) == "/airflow/dags/d/runs/r%2B1/tasks/t/mapped/2"
    assert urls.task_instance(TASK).endswith("/tasks/render")


def test_nothing_here_imports_the_web_stack_until_a_page_is_rendered() -> None:
    """The plugin module loads in every Airflow component; the pages are built on first use."""
    code = "import sys, airflow_provider_orvideo.plugins.openrouter_video; print(sorted(m for m in ('fastapi', 'jinja2', 'airflow_provider_orvideo.plugins._video_viewer') if m in sys.modules))"
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True
    )
    assert "airflow_provider_orvideo.plugins._video_viewer" not in out.stdout


# ------------------------------------------------------------------------------------ never a 500


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        (("d", "r", "t", str(10**25)), "map index"),
        (("d", "r", "t", str(2**31)), "above"),
        (("d", "r", "t", "²"), "not a whole number"),
        (("d", "r", "t", "\u0661"), "not a whole number"),
        (("d\x00", "r", "t", "0"), "NUL"),
        (("d", "r\ud800", "t", "0"), "not valid Unicode"),
        (("d" * 251, "r", "t", "0"), "1 to 250"),
    ],
)
def test_url_segments_the_database_cannot_hold_are_a_400(segments: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidViewRequest, match=message):
        VideoTask.from_segments(*segments)


@pytest.mark.parametrize("segment", ["²", "-1", "1e3", str(10**25), "", " 1"])
def test_an_output_number_the_pages_cannot_have_written_is_a_400(segment: str) -> None:
    with pytest.raises(InvalidViewRequest, match="output"):
        output_index(segment)


def test_calendar_extremes_filter_without_overflow() -> None:
    last = GalleryFilter.from_query({"until": "9999-12-31", "since": "0001-01-01"})
    assert last.recorded_before is None
    assert last.recorded_from == datetime(1, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(InvalidViewRequest, match="dag_id"):
        GalleryFilter.from_query({"dag_id": "a\x00"})


@pytest.mark.parametrize(
    "position",
    [
        ["2026-01-01T00:00:00", 10**25, "t", 0],
        ["2026-01-01T00:00:00", 1, "t", 10**25],
        ["2026-01-01T00:00:00", True, "t", 0],
        ["0001-01-01T00:00:00+01:00", 1, "t", 0],
        ["9999-12-31T23:59:59-01:00", 1, "t", 0],
        ["2026-01-01T00:00:00", 1, "t\x00", 0],
    ],
)
def test_a_gallery_position_the_database_cannot_compare_is_a_400(position: list[object]) -> None:
    text = base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")
    with pytest.raises(InvalidViewRequest, match="after="):
        decode_cursor(text)


@pytest.mark.parametrize("header", ["bytes=²-", "bytes=-²", "bytes=0-²", "bytes=\u0661-\u0662"])
def test_unicode_digits_in_a_range_send_the_whole_file(header: str) -> None:
    assert byte_range(header, 100) is None
