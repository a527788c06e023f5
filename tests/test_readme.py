"""The README's operator reference must follow the code: every parameter, every templated field.

A parameter added to ``OpenRouterVideoOperator.__init__`` without a row in the README's
parameter table (or a row left behind after a parameter is removed) fails here, so the user's
guide cannot drift from the operator.
"""

from __future__ import annotations

import builtins
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo import exceptions
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

README = Path(__file__).resolve().parent.parent / "README.md"


def _section(text: str, heading: str) -> str:
    """The body of the ``heading`` section, up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n") + len(heading) + 1
    following = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, start)
    return text[start : following.start() if following else len(text)]


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _operator_parameters() -> set[str]:
    signature = inspect.signature(OpenRouterVideoOperator.__init__)
    return {
        name
        for name, parameter in signature.parameters.items()
        if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    }


def test_every_operator_parameter_has_a_row_in_the_reference_table() -> None:
    table = _section(_section(_readme(), "## Operator reference"), "### Parameters")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    parameters = _operator_parameters()
    assert parameters - documented == set(), "operator parameters missing from the README table"
    assert documented - parameters == set(), "README rows for parameters the operator does not have"


def test_the_templated_fields_list_matches_the_operator() -> None:
    reference = _section(_readme(), "## Operator reference")
    match = re.search(r"^Templated fields: (.*?`)\.", reference, re.MULTILINE | re.DOTALL)
    assert match, "no 'Templated fields: ...' sentence in the operator reference"
    listed = re.findall(r"`([a-z_]+)`", match.group(1))
    assert listed == list(OpenRouterVideoOperator.template_fields)


def test_every_exception_named_in_the_readme_exists() -> None:
    named = set(re.findall(r"`([A-Z][A-Za-z]+Error)`", _readme()))
    assert named, "the README names no exception"
    missing = sorted(name for name in named if not hasattr(exceptions, name) and not hasattr(builtins, name))
    assert missing == []


def test_quick_start_is_the_first_section_with_the_two_commands() -> None:
    text = _readme()
    first_section = re.search(r"^## (.+)$", text, re.MULTILINE)
    assert first_section
    assert first_section.group(1).startswith("Quick start")
    block = re.search(r"```bash\n(.*?)```", _section(text, "## " + first_section.group(1)), re.DOTALL)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def _checked_before_paying_rows() -> list[tuple[str, str, str]]:
    table = _section(_section(_readme(), "## Operator reference"), "### What is checked before paying")
    rows = re.findall(r"^\| `(.+?)` \| `([A-Za-z]+Error)` \| `(.+?)` \|$", table, re.MULTILINE)
    assert len(rows) >= 10, "the table of checks before paying is missing or unparsable"
    return rows


@pytest.mark.parametrize(("arguments", "error_name", "fragment"), _checked_before_paying_rows())
def test_every_check_in_the_before_paying_table_holds(
    emulator: Any, tmp_path: Path, arguments: str, error_name: str, fragment: str
) -> None:
    """Each row, run as written: the error it names, the text it quotes, and no POST."""
    from tests.helpers import InMemoryTaskStateStore, RecordingTaskInstance, context_with, run_task

    (tmp_path / "afile").write_bytes(b"a file")
    (tmp_path / "taken.mp4").write_bytes(b"a video someone else paid for")
    overrides = eval(f"dict({arguments.replace('{tmp}', str(tmp_path))})")  # the README's own text
    kwargs: dict[str, Any] = {
        "task_id": "render",
        "prompt": "a lighthouse at dusk",
        "model": "google/veo-3.1",
        "duration": 4,
        "output_path": str(tmp_path / "clip.mp4"),
        "poll_interval": 0.05,
        **overrides,
    }
    with pytest.raises(getattr(exceptions, error_name)) as failure:
        run_task(
            OpenRouterVideoOperator(**kwargs), context_with(RecordingTaskInstance(), InMemoryTaskStateStore())
        )
    assert fragment in str(failure.value)
    assert isinstance(failure.value, exceptions.InvalidVideoRequestError)
    assert emulator.control.count("submit", "POST") == 0


def test_the_readme_lists_every_exception_class() -> None:
    """The public exception hierarchy (``exceptions.__all__``) is in the troubleshooting section."""
    troubleshooting = _section(_readme(), "## Troubleshooting")
    missing = [name for name in exceptions.__all__ if name not in troubleshooting]
    assert missing == []


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but ``-`` and ``_`` dropped,
    spaces as ``-``."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_to_a_readme_section_resolves() -> None:
    """A renamed heading must not leave a contents link pointing nowhere (issue 26: ``#webhooks``)."""
    text = _readme()
    outside_code = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    anchors = {_github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", outside_code, re.MULTILINE)}
    links = set(re.findall(r"\]\(#([^)\s]+)\)", outside_code))
    assert links, "the README links to its own sections"
    assert sorted(links - anchors) == []
