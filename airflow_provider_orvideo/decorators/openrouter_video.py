"""``@task.openrouter_video``: a TaskFlow function builds the request, the operator renders it.

The function runs on the worker, with the task's arguments (XComs included), and returns the
prompt as a ``str`` or a ``dict`` of request fields; the decorator's own keyword arguments are
:class:`~airflow_provider_orvideo.operators.openrouter_video.OpenRouterVideoOperator` arguments,
and the returned fields override or complete them::

    @task.openrouter_video(model="google/veo-3.1-fast", output_path="/data/{{ ds }}/clip.mp4")
    def clip(subject: str) -> str:
        return f"Slow aerial orbit around {subject}"

Everything after the function is the operator's: validation before any money is spent, the
submit, the deferral, retries that re-attach instead of paying twice, the download.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory

from airflow_provider_orvideo.defaults import dag_leaves_retries_unset, default_retries
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "OpenRouterVideoDecoratedOperator",
    "openrouter_video_task",
]

RETURNABLE_FIELDS: tuple[str, ...] = tuple(
    sorted(f for f in OpenRouterVideoOperator.template_fields if not f.endswith("_conn_id"))
)
"""Keys the function may return: the operator's per-run (templated) fields."""

REQUIRED_FIELDS = ("prompt", "model", "output_path")


def returned_request_fields(returned: Any, function_name: str) -> dict[str, Any]:
    """The request fields a decorated function returned, or a clear error before any POST."""
    if isinstance(returned, str):
        return {"prompt": returned}
    if not isinstance(returned, Mapping):
        raise _invalid(
            f"The @task.openrouter_video function {function_name!r} returned {type(returned).__name__}; "
            "it must return the prompt (str) or a dict of request fields."
        )
    fields = dict(returned)
    for key in fields:
        if key not in RETURNABLE_FIELDS:
            close = difflib.get_close_matches(str(key), RETURNABLE_FIELDS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise _invalid(
                f"The @task.openrouter_video function {function_name!r} returned the unknown key {key!r}."
                f"{hint} Allowed keys: {', '.join(RETURNABLE_FIELDS)}."
            )
    # The operator's own checks (those run at DAG parse on its arguments), on the returned values:
    # they are used as they are, not rendered again.
    from airflow_provider_orvideo._internal.arguments import (
        REQUEST_FIELDS,
        argument_error,
        check_request_fields,
    )

    _, problems = check_request_fields({k: v for k, v in fields.items() if k in REQUEST_FIELDS})
    if problems:
        raise argument_error(
            f"The @task.openrouter_video function {function_name!r} returned invalid request fields", problems
        )
    return fields


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _invalid(message: str) -> Exception:
    from airflow_provider_orvideo.exceptions import NOTHING_SPENT, InvalidVideoRequestError

    return InvalidVideoRequestError(f"{message} {NOTHING_SPENT}")


class OpenRouterVideoDecoratedOperator(DecoratedOperator, OpenRouterVideoOperator):
    """The operator behind ``@task.openrouter_video``: run the function, then render its request.

    ``prompt``, ``model`` and ``output_path`` may be left out of the decorator when the function
    returns them. Returned values are used as they are (not templated again: the function
    already had the context). Fields the function returned are kept by the job's lifecycle (the task state store)
    for the resumed task, so ``execute_complete`` saves to the returned ``output_path``.
    """

    template_fields: Sequence[str] = (
        *DecoratedOperator.template_fields,
        *OpenRouterVideoOperator.template_fields,
    )
    custom_operator_name = "@task.openrouter_video"
    # Show the request the function built (not the decorator's placeholders) in the UI.
    overwrite_rtif_after_execution = True

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        prompt: str = "",
        model: str = "",
        output_path: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            prompt=prompt,
            model=model,
            output_path=output_path,
            **kwargs,
        )

    def execute(self, context: Context) -> Any:
        from airflow.sdk import Asset

        from airflow_provider_orvideo._internal.compat import context_merge, determine_kwargs
        from airflow_provider_orvideo._internal.request_fields import MEDIA_FIELDS

        context_merge(context, self.op_kwargs)
        returned = self.python_callable(
            *self.op_args, **determine_kwargs(self, self.python_callable, context)
        )
        fields = returned_request_fields(returned, self.python_callable.__name__)
        self._apply(fields)
        # An image-to-video or reference-only request needs no prompt (the operator checks the rest).
        now = self._request_fields()
        media = bool(now["frame_images"]) or bool(now["input_references"])
        missing = [
            name
            for name in REQUIRED_FIELDS
            if _missing(getattr(self, name)) and not (name == "prompt" and media)
        ]
        if missing:
            names = " and ".join(missing)
            raise _invalid(
                f"{names} missing: pass {', '.join(f'{n}=...' for n in missing)} to "
                f"@task.openrouter_video(...) or return {'them' if len(missing) > 1 else 'it'} "
                f"from {self.python_callable.__name__!r}."
            )
        # Kept for the resumed task (execute_complete may run in another process), in the
        # lifecycle's store; media fields are not: only the submit reads them, and they may hold
        # bytes (not JSON) or megabytes of data URL.
        self._lifecycle(context).carry_fields({k: v for k, v in fields.items() if k not in MEDIA_FIELDS})
        # The function already ran: go straight to the operator. DecoratedOperator.execute would
        # call it again, and on Airflow 3.0 it pushes the return value through an xcom_push the
        # task SDK's operators no longer have. Assets passed as arguments still become inlets.
        self.inlets.extend(a for a in (*self.op_args, *self.op_kwargs.values()) if isinstance(a, Asset))
        return OpenRouterVideoOperator.execute(self, context)

    def _apply(self, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            setattr(self, name, value)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume with the function's fields: this may be a new instance, which does not run the
        function again."""
        self._apply(self._lifecycle(context).carried_fields())
        return super().execute_complete(context, event)


def openrouter_video_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.openrouter_video(**operator_kwargs)``: see the module docstring.

    The task's XCom return value is the video's path, like the operator's, whatever the
    function's return annotation says (so ``multiple_outputs`` is never inferred from it).
    ``retries`` defaults as for the operator, also for a mapped task (``.expand()``), whose
    retries Airflow takes from the decorator's arguments and the DAG's ``default_args`` only.
    """
    if "retries" not in kwargs and dag_leaves_retries_unset(default_args=kwargs.get("default_args")):
        kwargs["retries"] = default_retries()
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=False,
        decorated_operator_class=OpenRouterVideoDecoratedOperator,
        **kwargs,
    )
