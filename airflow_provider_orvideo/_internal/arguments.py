"""Check the operator's arguments: when the DAG is parsed, and again after rendering.

Pure and cheap on purpose: the operator calls :func:`check_operator_arguments` from its
``__init__``, which the dag-processor runs all day, so this module imports nothing from Airflow
at module level (the exception class is imported when a problem is found).

* Non-templated arguments (``poll_interval``, ``job_timeout``, ``orphan_policy`` ...) are checked
  once, at parse time, and returned normalised (:class:`OperatorArguments`).
* Templated request fields (``prompt``, ``duration``, ``trace`` ...) are checked by their
  converters in :data:`~airflow_provider_orvideo._internal.request_fields.REQUEST_FIELD_TABLE`:
  at parse time for the values that cannot be templates (no Jinja in them, no ``XComArg`` or
  other lazy Airflow value), and after rendering by :func:`check_rendered_fields` and
  :func:`airflow_provider_orvideo._internal.validation.build_request_from`, before any request.

Every problem is reported at once, each naming the parameter, the value and what is allowed.
Values are shown shortened; bytes and ``data:`` URLs are described by their size, never shown.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_orvideo._internal.field_checks import Pending, shown_item

# Imported from here by lineage.py (is_object_storage_path), the operator and the decorator:
from airflow_provider_orvideo._internal.field_checks import is_object_storage_path as is_object_storage_path
from airflow_provider_orvideo._internal.request_fields import REQUEST_FIELDS as REQUEST_FIELDS
from airflow_provider_orvideo._internal.request_fields import check_request_fields as check_request_fields
from airflow_provider_orvideo.defaults import DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS
from airflow_provider_orvideo.exceptions import NOTHING_SPENT

if TYPE_CHECKING:
    from airflow_provider_orvideo.exceptions import InvalidOperatorArgumentError


MAX_WAIT_SECONDS = 30 * 24 * 3600.0
"""Upper bound of ``job_timeout`` and ``poll_interval`` (30 days): far past any video job, and
small enough that the deferral timeout (``job_timeout + poll_interval + grace``) stays a valid
``timedelta`` (``job_timeout=1e300`` would otherwise fail at ``defer()``, after the paid submit)."""

# -- templates ---------------------------------------------------------------------------------


def is_lazy(value: Any) -> bool:
    """An Airflow value resolved when the task runs (``XComArg``, ``MappedArgument``, ``DagParam``
    ...): anything Airflow's templater would ``resolve()``."""
    try:
        from airflow.sdk.definitions._internal.mixins import ResolveMixin
    except ImportError:  # pragma: no cover - moved in a later Airflow: fall back to the duck type
        pass
    else:
        if isinstance(value, ResolveMixin):
            return True
    if isinstance(value, (str, bytes, int, float, Mapping, list, tuple, os.PathLike)):
        return False
    try:
        return callable(getattr(value, "resolve", None))
    except Exception:
        return False


def template_detector(
    jinja_environment_kwargs: Mapping[str, Any] | None = None, template_ext: Sequence[str] = ()
) -> Pending:
    """A :data:`Pending` for parse time: a str holding a Jinja start marker (the DAG's own
    delimiters when it sets them), a str naming a template file, or a lazy Airflow value."""
    env = jinja_environment_kwargs or {}
    markers = tuple(
        str(env.get(key) or default)
        for key, default in (
            ("variable_start_string", "{{"),
            ("block_start_string", "{%"),
            ("comment_start_string", "{#"),
        )
    )
    extensions = tuple(ext for ext in template_ext if ext)

    def pending(value: Any) -> bool:
        if isinstance(value, str):
            return any(marker in value for marker in markers) or bool(
                extensions and value.endswith(extensions)
            )
        return is_lazy(value)

    return pending


# -- non-templated operator arguments (parse time) ---------------------------------------------


def _number(
    name: str,
    value: Any,
    problems: list[str],
    *,
    allowed: str,
    positive: bool,
    allow_timedelta: bool = False,
) -> float | None:
    """A real number (not a bool; a ``timedelta`` in seconds when allowed), finite, > 0 or >= 0."""
    if allow_timedelta and isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError):
            number = math.inf
    else:
        problems.append(f"{shown_item(name, value)} {allowed}, not {type(value).__name__}")
        return None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        problems.append(f"{shown_item(name, value)} {allowed}")
        return None
    return number


def _wait(name: str, value: Any, problems: list[str], *, allow_timedelta: bool = False) -> float:
    what = "a timedelta or " if allow_timedelta else ""
    allowed = f"must be {what}a finite number of seconds > 0 and <= {MAX_WAIT_SECONDS:,.0f} (30 days)"
    seconds = _number(name, value, problems, allowed=allowed, positive=True, allow_timedelta=allow_timedelta)
    if seconds is None:
        return 0.0
    if seconds > MAX_WAIT_SECONDS:
        problems.append(f"{shown_item(name, value)} {allowed}")
    return seconds


def _delays(value: Any, problems: list[str]) -> tuple[float, ...]:
    name = "initial_poll_delays"
    allowed = "must be a list or tuple of finite numbers of seconds >= 0, e.g. (30, 10, 20)"
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Sequence):
        problems.append(f"{shown_item(name, value)} {allowed}")
        return ()
    delays = []
    for index, delay in enumerate(value):
        seconds = _number(
            f"{name}[{index}]", delay, problems, allowed=f"is not allowed: {name} {allowed}", positive=False
        )
        if seconds is not None:
            delays.append(seconds)
    return tuple(delays)


def _whole(name: str, value: Any, problems: list[str]) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1:
        return int(value)
    problems.append(f"{shown_item(name, value)} must be a whole number >= 1 (an int)")
    return 1


def _flag(name: str, value: Any, problems: list[str]) -> bool:
    if not isinstance(value, bool):
        problems.append(f"{shown_item(name, value)} must be True or False (a bool)")
        return False
    return value


def _orphan_policy(value: Any, problems: list[str]) -> str:
    from airflow_provider_orvideo._internal.submission import OrphanPolicy

    policies = [policy.value for policy in OrphanPolicy]
    for policy in policies:
        if isinstance(value, str) and value == policy:
            return policy  # the plain str, also for a str enum member such as OrphanPolicy.FAIL
    problems.append(
        f"{shown_item('orphan_policy', value)} is not allowed; allowed: {', '.join(map(repr, policies))}"
    )
    return policies[0]


def _callback_url(value: Any, problems: list[str]) -> str | None:
    from airflow_provider_orvideo._internal.callback_urls import check_callback_url

    if value is None or value == "":
        return None if value is None else ""  # None: the connection's; "": no webhooks for this task
    if not isinstance(value, str):
        problems.append(f"{shown_item('callback_url', value)} must be None, '' or a https:// URL (a str)")
        return None
    try:
        return check_callback_url(value)
    except ValueError as error:
        problems.append(f"callback_url is not usable: {error}")
        return None


def _conn_id(value: Any, problems: list[str]) -> str:
    if isinstance(value, str) and value.strip():
        return value
    problems.append(f"{shown_item('openrouter_conn_id', value)} must be a non-empty string (a connection id)")
    return ""


@dataclass(frozen=True)
class OperatorArguments:
    """The non-templated operator arguments, checked and normalised."""

    poll_interval: float
    initial_poll_delays: tuple[float, ...]
    job_timeout: float
    """Seconds."""
    max_cost_usd: float | None
    orphan_policy: str
    airflow_trace: bool
    strict_cost_check: bool
    resubmit_failed_jobs: bool
    deferrable: bool
    overwrite: bool
    openrouter_conn_id: str
    callback_url: str | None = None
    webhook_poll_interval: float = DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS
    budget_preflight: bool = False
    dag_budget_usd: float | None = None
    dag_budget_window: str = "utc_day"
    """``utc_day`` or a rolling window as text (``budgets.Window.text``: ``"6h"``)."""
    on_budget_exceeded: str = "fail"


BUDGET_EXCEEDED_CHOICES = ("fail", "wait")


def _budget_window(value: Any, problems: list[str]) -> str:
    from airflow_provider_orvideo._internal.budgets import parse_window
    from airflow_provider_orvideo.exceptions import InvalidOperatorArgumentError

    try:
        return parse_window(value, field="dag_budget_window").text
    except InvalidOperatorArgumentError as error:
        problems.append(str(error))
        return "utc_day"


def _choice(name: str, value: Any, choices: Sequence[str], problems: list[str]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    problems.append(f"{shown_item(name, value)} must be one of {', '.join(map(repr, choices))}")
    return choices[0]


def argument_error(header: str, problems: Sequence[str]) -> InvalidOperatorArgumentError:
    """One :class:`InvalidOperatorArgumentError` listing every problem."""
    from airflow_provider_orvideo.exceptions import InvalidOperatorArgumentError

    lines = "\n".join(f"  - {problem}" for problem in problems)
    return InvalidOperatorArgumentError(f"{header}:\n{lines}\n{NOTHING_SPENT}")


def check_operator_arguments(
    *,
    poll_interval: Any,
    initial_poll_delays: Any,
    job_timeout: Any,
    max_cost_usd: Any,
    orphan_policy: Any,
    airflow_trace: Any,
    strict_cost_check: Any,
    resubmit_failed_jobs: Any,
    deferrable: Any,
    overwrite: Any,
    openrouter_conn_id: Any,
    callback_url: Any = None,
    webhook_poll_interval: Any = DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS,
    budget_preflight: Any = False,
    dag_budget_usd: Any = None,
    dag_budget_window: Any = "utc_day",
    on_budget_exceeded: Any = "fail",
    request_fields: Mapping[str, Any] | None = None,
    jinja_environment_kwargs: Mapping[str, Any] | None = None,
    template_ext: Sequence[str] = (),
    task_id: str | None = None,
    operator_name: str = "OpenRouterVideoOperator",
) -> OperatorArguments:
    """Check the operator's arguments when the DAG is parsed; return the non-templated ones
    normalised, or raise one :class:`InvalidOperatorArgumentError` naming every problem.

    ``request_fields`` (templated) are checked only where they cannot be templates; see
    :func:`template_detector`.
    """
    problems: list[str] = []
    max_cost = None
    if max_cost_usd is not None:
        max_cost = _number(
            "max_cost_usd",
            max_cost_usd,
            problems,
            allowed="must be None or a finite number of USD > 0",
            positive=True,
        )
    checked = OperatorArguments(
        overwrite=_flag("overwrite", overwrite, problems),
        airflow_trace=_flag("airflow_trace", airflow_trace, problems),
        max_cost_usd=max_cost,
        strict_cost_check=_flag("strict_cost_check", strict_cost_check, problems),
        resubmit_failed_jobs=_flag("resubmit_failed_jobs", resubmit_failed_jobs, problems),
        orphan_policy=_orphan_policy(orphan_policy, problems),
        openrouter_conn_id=_conn_id(openrouter_conn_id, problems),
        deferrable=_flag("deferrable", deferrable, problems),
        poll_interval=_wait("poll_interval", poll_interval, problems),
        initial_poll_delays=_delays(initial_poll_delays, problems),
        job_timeout=_wait("job_timeout", job_timeout, problems, allow_timedelta=True),
        callback_url=_callback_url(callback_url, problems),
        webhook_poll_interval=_wait("webhook_poll_interval", webhook_poll_interval, problems),
        budget_preflight=_flag("budget_preflight", budget_preflight, problems),
        dag_budget_usd=None
        if dag_budget_usd is None
        else _number(
            "dag_budget_usd",
            dag_budget_usd,
            problems,
            allowed="must be None or a finite number of USD > 0",
            positive=True,
        ),
        dag_budget_window=_budget_window(dag_budget_window, problems),
        on_budget_exceeded=_choice(
            "on_budget_exceeded", on_budget_exceeded, BUDGET_EXCEEDED_CHOICES, problems
        ),
    )
    if request_fields:
        _, field_problems = check_request_fields(
            request_fields, template_detector(jinja_environment_kwargs, template_ext)
        )
        problems.extend(field_problems)
    if problems:
        task = f" (task {task_id!r})" if task_id else ""
        raise argument_error(f"Invalid arguments for {operator_name}{task}", problems)
    return checked


# -- the download operator (a job submitted elsewhere) -------------------------------------------


@dataclass(frozen=True)
class DownloadArguments:
    """The non-templated arguments of ``OpenRouterVideoDownloadOperator``, checked and normalised."""

    overwrite: bool
    deferrable: bool
    poll_interval: float
    job_timeout: float
    """Seconds."""


def _job_id(value: Any, problems: list[str]) -> str:
    """A job id as OpenRouter gave it: a str, surrounding whitespace (a template's stray newline)
    stripped, not empty, with no whitespace or control character inside (a pasted sentence, two
    ids on one line), which no id has."""
    allowed = "must be the id of an OpenRouter video job (a non-empty str without spaces)"
    if not isinstance(value, str):
        problems.append(f"{shown_item('job_id', value)} {allowed}, not {type(value).__name__}")
        return ""
    job_id = value.strip()
    if not job_id or any(c.isspace() or not c.isprintable() for c in job_id):
        problems.append(f"{shown_item('job_id', value)} {allowed}")
    return job_id


def check_download_arguments(
    *,
    job_id: Any,
    openrouter_conn_id: Any,
    overwrite: Any,
    deferrable: Any,
    poll_interval: Any,
    job_timeout: Any,
    jinja_environment_kwargs: Mapping[str, Any] | None = None,
    template_ext: Sequence[str] = (),
    task_id: str | None = None,
    operator_name: str = "OpenRouterVideoDownloadOperator",
) -> DownloadArguments:
    """The download operator's arguments at DAG parse, by the main operator's checkers: the
    non-templated ones normalised, ``job_id`` where it cannot be a template (see
    :func:`template_detector`); or one :class:`InvalidOperatorArgumentError` naming every problem."""
    problems: list[str] = []
    if not template_detector(jinja_environment_kwargs, template_ext)(job_id):
        _job_id(job_id, problems)
    _conn_id(openrouter_conn_id, problems)
    checked = DownloadArguments(
        overwrite=_flag("overwrite", overwrite, problems),
        deferrable=_flag("deferrable", deferrable, problems),
        poll_interval=_wait("poll_interval", poll_interval, problems),
        job_timeout=_wait("job_timeout", job_timeout, problems, allow_timedelta=True),
    )
    if problems:
        task = f" (task {task_id!r})" if task_id else ""
        raise argument_error(f"Invalid arguments for {operator_name}{task}", problems)
    return checked


def check_rendered_download(job_id: Any, openrouter_conn_id: Any, header: str) -> str:
    """After rendering: the job id (returned stripped) and the connection id, before any request."""
    problems: list[str] = []
    checked = _job_id(job_id, problems)
    _conn_id(openrouter_conn_id, problems)
    if problems:
        raise argument_error(header, problems)
    return checked


def check_rendered_fields(values: Mapping[str, Any], header: str) -> dict[str, Any]:
    """After rendering (nothing is a template any more): every request field's type and shape,
    all problems at once, before any media is read or request made."""
    normalised, problems = check_request_fields(values)
    if problems:
        raise argument_error(header, problems)
    return normalised


def operator_attributes(
    given: Mapping[str, Any],
    *,
    jinja_environment_kwargs: Mapping[str, Any] | None,
    template_ext: Sequence[str],
    task_id: str | None,
    operator_name: str,
) -> dict[str, Any]:
    """The attributes an operator keeps from its arguments (``given``: every parameter of its
    ``__init__`` by name): the request fields and the output location as given (templated: checked
    again after rendering), every other argument checked and normalised by
    :func:`check_operator_arguments`, or one :class:`InvalidOperatorArgumentError` naming each
    problem. Warns about ``max_consecutive_poll_failures``, deprecated and ignored."""
    import dataclasses
    import warnings

    from airflow_provider_orvideo.defaults import default_deferrable

    if given.get("max_consecutive_poll_failures") is not None:
        warnings.warn(
            f"{operator_name}(max_consecutive_poll_failures={given['max_consecutive_poll_failures']!r}) is "
            "deprecated and ignored: a paid job is now polled through any run of failed polls until "
            "job_timeout. Remove the argument.",
            DeprecationWarning,
            stacklevel=5,
        )
    kept = {name: given[name] for name in (*REQUEST_FIELDS, "output_path", "output_conn_id")}
    arguments = {field.name: given[field.name] for field in dataclasses.fields(OperatorArguments)}
    if arguments["deferrable"] is None:
        arguments["deferrable"] = default_deferrable()
    checked = check_operator_arguments(
        **arguments,
        request_fields={name: given[name] for name in REQUEST_FIELDS},
        jinja_environment_kwargs=jinja_environment_kwargs,
        template_ext=template_ext,
        task_id=task_id,
        operator_name=operator_name,
    )
    normalised = {field.name: getattr(checked, field.name) for field in dataclasses.fields(checked)}
    return {**kept, **normalised, "initial_poll_delays": list(checked.initial_poll_delays)}


def check_partial_arguments(
    given: Mapping[str, Any], defaults: Mapping[str, Any], *, operator_name: str
) -> None:
    """``Operator.partial(...)`` at DAG parse: the non-templated arguments it was given, checked
    as :func:`check_operator_arguments` checks a plain operator's (the rest, and the request
    fields, are checked when each mapped task instance is created and rendered)."""
    import dataclasses

    from airflow_provider_orvideo.defaults import default_deferrable

    names = [field.name for field in dataclasses.fields(OperatorArguments)]
    if not any(name in given for name in names):
        return
    arguments = {name: given.get(name, defaults.get(name)) for name in names}
    if arguments["deferrable"] is None:
        arguments["deferrable"] = default_deferrable()
    task_id = given.get("task_id")
    check_operator_arguments(
        **arguments,
        task_id=task_id if isinstance(task_id, str) else None,
        operator_name=f"{operator_name}.partial",
    )
