"""The HTML of the player page, the gallery and "Paid, not kept" (Jinja2, autoescaped; no
script at all).

Pages are served with a Content-Security-Policy that allows no script: the player is the
browser's own ``<video controls>``, a gallery poster is the video's first frame (``preload=
"metadata"`` with a ``#t=`` fragment), the chart is inline SVG drawn here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from airflow_provider_orvideo.plugins._video_views import (
    SPEND_MAX_GROUPS,
    UNKEPT_SCANNED,
    UNKEPT_SHOWN,
    GalleryFilter,
    Location,
    RecordedVideo,
    Refused,
    SpendChart,
    Unavailable,
    UnkeptJob,
    Unreachable,
    VideoTask,
    age_text,
)

__all__ = ["PageUrls", "render_error", "render_gallery", "render_unkept", "render_watch", "spend_svg"]

PALETTE = ("#2563eb", "#db2777", "#16a34a", "#ea580c", "#7c3aed", "#0891b2", "#ca8a04", "#dc2626", "#64748b")
CHART_WIDTH = 720
CHART_HEIGHT = 200
_AXIS = 28


@dataclass(frozen=True)
class PageUrls:
    """URLs of the pages, absolute paths under the plugin's mount point (``prefix``, e.g.
    ``/orvideo``, or ``/airflow/orvideo`` under a sub-path)."""

    prefix: str

    @staticmethod
    def _segments(task: VideoTask) -> str:
        parts = (task.dag_id, task.run_id, task.task_id, str(task.map_index))
        return "/".join(quote(part, safe="") for part in parts)

    def watch(self, task: VideoTask) -> str:
        return f"{self.prefix}/watch/{self._segments(task)}"

    def stream(self, task: VideoTask, index: int) -> str:
        return f"{self.prefix}/stream/{self._segments(task)}/{index}"

    def gallery(self, query: Mapping[str, str] | None = None) -> str:
        return f"{self.prefix}/gallery" + (f"?{urlencode(dict(query))}" if query else "")

    def unkept(self, dag_id: str | None = None) -> str:
        """The "Paid, not kept" page (of one DAG)."""
        return f"{self.prefix}/unkept" + (f"?{urlencode({'dag_id': dag_id})}" if dag_id else "")

    def task_instance(self, task: VideoTask) -> str:
        """The task instance's page in Airflow's UI."""
        root = self.prefix.rsplit("/", 1)[0]
        parts = (task.dag_id, task.run_id, task.task_id)
        dag, run, task_id = (quote(part, safe="") for part in parts)
        mapped = f"/mapped/{task.map_index}" if task.map_index >= 0 else ""
        return f"{root}/dags/{dag}/runs/{run}/tasks/{task_id}{mapped}"


_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
:root { color-scheme: light dark; --muted: #6b7280; --line: #d1d5db; --card: rgba(127,127,127,.08); }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px 20px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 8px; }
a { color: #2563eb; } .muted { color: var(--muted); }
video { background: #000; max-width: 100%; border-radius: 6px; }
.player video { width: min(960px, 100%); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 12px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.note { border-left: 4px solid #ca8a04; background: var(--card); padding: 8px 12px; max-width: 960px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 14px; }
.card { background: var(--card); border-radius: 8px; padding: 8px; }
.card video, .card .poster { width: 100%; aspect-ratio: 16 / 9; object-fit: contain; display: block; }
.card .poster { display: flex; align-items: center; justify-content: center; background: #1f2937; color: #e5e7eb;
  border-radius: 6px; font-size: 12px; padding: 6px; box-sizing: border-box; text-align: center; }
.card .prompt { display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; margin: 6px 0 2px; }
.card .meta { font-size: 12px; color: var(--muted); }
.cost { font-weight: 600; }
form.filters { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: end; margin: 8px 0 14px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; margin: 6px 0; padding: 0; list-style: none; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
nav.pages { margin: 16px 0; }
table.jobs { border-collapse: collapse; margin: 8px 0; }
table.jobs th, table.jobs td { text-align: left; vertical-align: top; padding: 4px 10px 4px 0;
  border-bottom: 1px solid var(--line); overflow-wrap: break-word; max-width: 24em; }
table.jobs th { color: var(--muted); font-weight: 500; }
table.jobs code { font-size: 12px; overflow-wrap: anywhere; }
</style></head><body>
{% block body %}{% endblock %}
</body></html>"""

_WATCH = """{% extends "base" %}{% block body %}
<h1>{{ video.task.task_id }}{% if video.task.map_index >= 0 %} [{{ video.task.map_index }}]{% endif %}</h1>
<div class="muted">DAG {{ video.task.dag_id }} &middot; run {{ video.task.run_id }}
 &middot; <a href="{{ urls.task_instance(video.task) }}" target="_top">task instance in Airflow</a>
 &middot; <a href="{{ urls.gallery({'dag_id': video.task.dag_id}) }}">all videos of this DAG</a></div>
{% for output in outputs %}
<section class="player" id="output-{{ output.index }}">
{% if outputs|length > 1 %}<h2>Output {{ output.index }}</h2>{% endif %}
{% if output.note %}<p class="note" data-output="{{ output.index }}">{{ output.note }}</p>
{% else %}<video controls preload="metadata" data-output="{{ output.index }}" src="{{ output.url }}"></video>{% endif %}
</section>
{% endfor %}
{% for index in video.missing_outputs %}<p class="note">Output {{ index }} of the job was paid but OpenRouter no longer had it when the task downloaded.</p>{% endfor %}
<dl class="facts">
<dt>Prompt</dt><dd>{{ request.prompt }}</dd>
<dt>Model</dt><dd>{{ request.model }}</dd>
<dt>Duration</dt><dd>{{ duration }}</dd>
<dt>Resolution</dt><dd>{{ resolution }}</dd>
<dt>Aspect ratio</dt><dd>{{ request.aspect_ratio or "model default" }}</dd>
<dt>Audio</dt><dd>{{ audio }}</dd>
<dt>Cost</dt><dd class="cost">{{ cost }}</dd>
<dt>Job id</dt><dd>{{ video.job_id or "unknown" }}</dd>
<dt>DAG</dt><dd>{{ video.task.dag_id }}</dd>
<dt>DAG run</dt><dd>{{ video.task.run_id }}</dd>
<dt>Task</dt><dd>{{ video.task.task_id }}{% if video.task.map_index >= 0 %} (map index {{ video.task.map_index }}){% endif %}</dd>
<dt>Try</dt><dd>{{ video.try_number or "unknown" }}</dd>
<dt>Saved</dt><dd>{{ saved }}</dd>
<dt>Saved to</dt><dd>{% for location in video.locations %}{{ location }}{% if not loop.last %}<br>{% endif %}{% endfor %}{% if video.host %} (host {{ video.host }}){% endif %}</dd>
</dl>
{% endblock %}"""

_GALLERY = """{% extends "base" %}{% block body %}
<h1>{% if fixed_dag %}Videos of {{ fixed_dag }}{% else %}Videos{% endif %}</h1>
<section class="spend">
{% if chart %}<h2>Spend per DAG per day, last {{ chart.days|length }} days (UTC)</h2>
<div><span class="cost spent-total">{{ money(chart.total) }}</span> spent on {{ chart.jobs }} job{{ "" if chart.jobs == 1 else "s" }}{% if chart.pending_total %}
 &middot; <span class="pending-total">{{ money(chart.pending_total) }} pending</span> <span class="muted">(estimates of jobs still rendering or not priced yet, not billed money)</span>{% endif %}{% if chart.unpriced %}
 &middot; <span class="unpriced">{{ chart.unpriced }} job{{ "" if chart.unpriced == 1 else "s" }} without a cost figure</span>{% endif %}
 &middot; <a class="unkept" href="{{ unkept_url }}">{% if chart.unkept %}{{ chart.unkept }} paid, not kept{% else %}paid, not kept{% endif %}</a></div>
{% if chart.cut %}<p class="note spend-cut">Days before {{ chart.counted_from.isoformat() }} are not counted: the spend ledger holds more than {{ "{:,}".format(max_groups) }} groups of a day, a DAG and a connection in this window.</p>{% endif %}
{% if filters.model %}<p class="muted">Spend counts every model (the spend ledger reports per DAG and connection); the videos below are of {{ filters.model }}.</p>{% endif %}
{{ svg }}
<ul class="legend">{% for name in chart.series %}<li><i style="background: {{ colour(loop.index0) }}"></i>{{ name }}
 {{ money(series_totals[name]) }}</li>{% endfor %}{% if chart.pending_total %}<li><i class="pending" style="background: transparent; outline: 1px dashed currentColor"></i>pending (estimates) {{ money(chart.pending_total) }}</li>{% endif %}</ul>
{% else %}<h2>Spend</h2>
<p class="note spend-unavailable">{{ spend_note }}</p>
<div><a class="unkept" href="{{ unkept_url }}">Paid, not kept</a></div>{% endif %}
</section>
<form class="filters" method="get" action="{{ action }}">
{% if not fixed_dag %}<label>DAG <input name="dag_id" value="{{ filters.dag_id or '' }}" list="dag-ids" size="22"></label>
<datalist id="dag-ids">{% for dag in dag_options %}<option value="{{ dag }}">{% endfor %}</datalist>{% endif %}
<label>Model <input name="model" value="{{ filters.model or '' }}" list="models" size="22"></label>
<datalist id="models">{% for model in model_options %}<option value="{{ model }}">{% endfor %}</datalist>
<label>From <input type="date" name="since" value="{{ filters.since or '' }}"></label>
<label>To <input type="date" name="until" value="{{ filters.until or '' }}"></label>
<button type="submit">Filter</button> <a href="{{ action }}">clear</a>
</form>
{% if not cards %}<p class="muted">No saved videos{% if filters.dag_id or filters.model or filters.since or filters.until %} match these filters{% endif %}.</p>{% endif %}
<div class="grid">
{% for card in cards %}<article class="card" data-dag-id="{{ card.video.task.dag_id }}" data-run-id="{{ card.video.task.run_id }}">
<a href="{{ card.watch }}">{% if card.poster %}<video class="poster-frame" preload="metadata" muted playsinline src="{{ card.poster }}"></video>{% else %}<span class="poster">{{ card.note }}</span>{% endif %}</a>
<div class="prompt" title="{{ card.video.request.prompt }}">{{ card.video.request.prompt }}</div>
<div class="meta"><span class="cost">{{ money(card.video.cost) }}</span> &middot; {{ card.video.model or "unknown model" }}</div>
<div class="meta">{{ card.video.task.dag_id }} &middot; {{ card.saved }}</div>
</article>{% endfor %}
</div>
{% if next_url %}<nav class="pages"><a href="{{ next_url }}" rel="next">Older videos &rarr;</a></nav>{% endif %}
{% endblock %}"""

_UNKEPT = """{% extends "base" %}{% block body %}
<h1>Paid, not kept{% if dag_id %} in {{ dag_id }}{% endif %}</h1>
<div class="muted"><a href="{{ gallery_url }}">videos{% if dag_id %} of {{ dag_id }}{% endif %}</a>{% if dag_id %} &middot; <a href="{{ urls.unkept() }}">every DAG</a>{% endif %}</div>
<p>Jobs OpenRouter completed, and billed, whose video no task kept (a task that failed or was cleared
after the job ended, or a job a changed request replaced), newest first. OpenRouter serves a video only for
a while after its job ends: fetch one with the command beside it.</p>
{% if rows %}<table class="jobs">
<thead><tr><th>Job</th><th>DAG</th><th>Run</th><th>Task</th><th>Map index</th><th>Cost</th><th>Age</th><th>Why not kept</th><th>Fetch it</th></tr></thead>
<tbody>{% for row in rows %}<tr class="unkept-job" data-job-id="{{ row.job.job_id }}" data-dag-id="{{ row.job.task.dag_id }}">
<td><code>{{ row.job.job_id }}</code>{% if row.job.model %}<div class="muted">{{ row.job.model }}</div>{% endif %}</td>
<td>{{ row.job.task.dag_id }}</td>
<td>{{ row.job.task.run_id }}</td>
<td><a href="{{ row.task_url }}" target="_top">{{ row.job.task.task_id }}</a></td>
<td>{{ row.job.task.map_index if row.job.task.map_index >= 0 else "" }}</td>
<td class="cost">{{ row.cost }}</td>
<td title="{{ row.ended }}">{{ row.age }}</td>
<td>{{ row.job.why }}</td>
<td><code class="command">{{ row.command }}</code></td>
</tr>{% endfor %}</tbody></table>
{% else %}<p class="muted">None{% if not searched_all %} among the newest {{ "{:,}".format(scanned) }}{% endif %}.</p>{% endif %}
{% if rows|length >= shown %}<p class="muted">The newest {{ shown }} are listed.</p>{% endif %}
{% if not searched_all %}<p class="note">Only the newest {{ "{:,}".format(scanned) }} unkept jobs were searched for the DAGs you may read; older ones are not listed.</p>{% endif %}
{% endblock %}"""

_ERROR = """{% extends "base" %}{% block body %}<h1>{{ heading }}</h1><p>{{ message }}</p>{% endblock %}"""


@cache
def _environment() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.DictLoader(
            {"base": _BASE, "watch": _WATCH, "gallery": _GALLERY, "unkept": _UNKEPT, "error": _ERROR}
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.globals.update(money=money, colour=colour)
    return environment


def money(amount: float | None) -> str:
    return "cost unknown" if amount is None else f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _when(moment: datetime | None) -> str:
    return "unknown" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _note(location: Location) -> str | None:
    return location.message if isinstance(location, (Unreachable, Unavailable, Refused)) else None


def render_watch(video: RecordedVideo, locations: Sequence[Location], urls: PageUrls) -> str:
    request = dict(video.request)
    duration = request.get("duration")
    resolution = request.get("resolution") or request.get("size")
    audio = request.get("generate_audio")
    outputs = [
        {"index": index, "note": _note(location), "url": urls.stream(video.task, index)}
        for index, location in enumerate(locations)
    ]
    return str(
        _environment()
        .get_template("watch")
        .render(
            title=f"{video.task.task_id} - {video.task.dag_id}",
            video=video,
            request={"prompt": "", "model": "", "aspect_ratio": None, **request},
            outputs=outputs,
            duration=f"{duration} s requested" if duration else "model default",
            resolution=resolution or "model default",
            audio="model default" if audio is None else ("yes" if audio else "no"),
            cost=money(video.cost),
            saved=_when(video.recorded_at),
            urls=urls,
        )
    )


def render_gallery(
    *,
    videos: Sequence[tuple[RecordedVideo, Location]],
    chart: SpendChart | None,
    spend_note: str | None = None,
    filters: GalleryFilter,
    next_cursor: str | None,
    urls: PageUrls,
    fixed_dag: str | None,
    dag_options: Sequence[str],
    model_options: Sequence[str],
) -> str:
    cards = [
        {
            "video": video,
            "watch": urls.watch(video.task),
            "poster": None if _note(location) else urls.stream(video.task, 0) + "#t=0.5",
            "note": _note(location),
            "saved": _when(video.recorded_at),
        }
        for video, location in videos
    ]
    action = (
        f"{urls.prefix}/gallery/dag/{quote(fixed_dag, safe='')}" if fixed_dag else f"{urls.prefix}/gallery"
    )
    next_url = f"{action}?{urlencode(filters.query(after=next_cursor))}" if next_cursor else None
    series_totals: dict[str, float] = {}
    if chart is not None:
        for (_, name), amount in chart.amounts.items():
            series_totals[name] = series_totals.get(name, 0.0) + amount
    return str(
        _environment()
        .get_template("gallery")
        .render(
            title=f"Videos of {fixed_dag}" if fixed_dag else "Videos",
            chart=chart,
            spend_note=spend_note or "Spend unavailable.",
            svg=spend_svg(chart) if chart is not None else "",
            series_totals=series_totals,
            max_groups=SPEND_MAX_GROUPS,
            unkept_url=urls.unkept(filters.dag_id),
            filters=filters,
            cards=cards,
            next_url=next_url,
            action=action,
            fixed_dag=fixed_dag,
            dag_options=dag_options,
            model_options=model_options,
        )
    )


def render_unkept(
    *, jobs: Sequence[UnkeptJob], searched_all: bool, dag_id: str | None, now: datetime, urls: PageUrls
) -> str:
    rows = [
        {
            "job": job,
            "task_url": urls.task_instance(job.task),
            "cost": money(job.cost_usd)
            if job.cost_usd is not None
            else (f"about {money(job.estimate_usd)} (estimate)" if job.estimate_usd else money(None)),
            "age": age_text(now.timestamp() - job.ended_at) + " ago",
            "ended": _when(datetime.fromtimestamp(job.ended_at, timezone.utc)),
            "command": job.download_command(),
        }
        for job in jobs
    ]
    return str(
        _environment()
        .get_template("unkept")
        .render(
            title=f"Paid, not kept - {dag_id}" if dag_id else "Paid, not kept",
            rows=rows,
            searched_all=searched_all,
            scanned=UNKEPT_SCANNED,
            shown=UNKEPT_SHOWN,
            dag_id=dag_id,
            gallery_url=urls.gallery({"dag_id": dag_id} if dag_id else None),
            urls=urls,
        )
    )


def render_error(heading: str, message: str) -> str:
    return str(_environment().get_template("error").render(title=heading, heading=heading, message=message))


def spend_svg(chart: SpendChart) -> Any:
    """Stacked bars: one per day, one colour per DAG, and the day's pending estimates as a dashed
    outline on top; each segment names its DAG (or "pending") and amount."""
    from markupsafe import Markup, escape

    peak = max((chart.day_total(day) + chart.pending.get(day, 0.0) for day in chart.days), default=0.0)
    scale = (CHART_HEIGHT - _AXIS - 8) / peak if peak > 0 else 0.0
    slot = (CHART_WIDTH - 60) / max(len(chart.days), 1)
    bar = max(slot * 0.72, 1.0)
    baseline = CHART_HEIGHT - _AXIS
    parts = [
        f'<svg class="spend-chart" role="img" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" aria-label="Spend per DAG per day">',
        f'<line x1="56" y1="{baseline}" x2="{CHART_WIDTH}" y2="{baseline}" stroke="currentColor" stroke-opacity=".4"/>',
        f'<text x="52" y="14" text-anchor="end" font-size="11" fill="currentColor">{escape(money(peak) if peak else "$0")}</text>',
        f'<text x="52" y="{baseline}" text-anchor="end" font-size="11" fill="currentColor">$0</text>',
    ]
    for position, day in enumerate(chart.days):
        x = 60 + position * slot
        top = float(baseline)
        for number, name in enumerate(chart.series):
            amount = chart.amounts.get((day, name), 0.0)
            if amount <= 0:
                continue
            height = max(amount * scale, 1.0)
            top -= height
            label = escape(f"{name}: {money(amount)} on {day.isoformat()}")
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{colour(number)}" data-dag-id="{escape(name)}" data-day="{day.isoformat()}" '
                f'data-usd="{amount:.6f}"><title>{label}</title></rect>'
            )
        pending = chart.pending.get(day, 0.0)
        if pending > 0:  # estimates, not money billed: an outline above the day's bar
            height = max(pending * scale, 1.0)
            top -= height
            label = escape(
                f"pending (estimates of jobs still rendering or not priced yet): {money(pending)} on {day.isoformat()}"
            )
            parts.append(
                f'<rect class="pending" x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="currentColor" fill-opacity=".12" stroke="currentColor" stroke-opacity=".6" '
                f'stroke-dasharray="3 2" data-day="{day.isoformat()}" data-usd="{pending:.6f}"><title>{label}</title></rect>'
            )
        if position % 5 == 0 or position == len(chart.days) - 1:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{CHART_HEIGHT - 10}" text-anchor="middle" font-size="10" '
                f'fill="currentColor">{day.strftime("%m-%d")}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
