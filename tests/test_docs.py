"""The documentation must follow the code: every parameter, every templated field, every check.

The user's guide is ``docs/*.md`` (one page per subject; ``make docs`` builds the site) and the
README's quick start. A parameter added to ``OpenRouterVideoOperator.__init__`` without a row in
the operator reference's parameter table (or a row left behind after a parameter is removed)
fails here, so the guide cannot drift from the operator; the rows of "What is checked before
paying" run as written; every relative link of the README and the pages reaches a file and a
heading, as GitHub shows them (``make docs`` checks the same for the site, without GitHub's view).
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
from airflow_provider_orvideo.operators.openrouter_video_download import OpenRouterVideoDownloadOperator

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
INCLUDE_STUBS = {"changelog.md", "benchmarks.md"}
"""Pages that only include a file from outside docs/ (CHANGELOG.md, benchmarks/README.md)."""


def _section(text: str, heading: str) -> str:
    """The body of the ``heading`` section, up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n") + len(heading) + 1
    following = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, start)
    return text[start : following.start() if following else len(text)]


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def page(name: str) -> str:
    """The text of ``docs/<name>.md``."""
    return (DOCS / f"{name}.md").read_text(encoding="utf-8")


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def _parameters(operator: type) -> set[str]:
    signature = inspect.signature(operator.__init__)
    return {
        name
        for name, parameter in signature.parameters.items()
        if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    }


def _table_rows(table: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))


def test_every_operator_parameter_has_a_row_in_the_reference_table() -> None:
    documented = _table_rows(_section(page("operator"), "## Parameters"))
    parameters = _parameters(OpenRouterVideoOperator)
    assert parameters - documented == set(), "operator parameters missing from docs/operator.md's table"
    assert documented - parameters == set(), "docs/operator.md rows for parameters the operator does not have"


def test_the_templated_fields_list_matches_the_operator() -> None:
    match = re.search(r"^Templated fields: (.*?`)\.", page("operator"), re.MULTILINE | re.DOTALL)
    assert match, "no 'Templated fields: ...' sentence in the operator reference"
    listed = re.findall(r"`([a-z_]+)`", match.group(1))
    assert listed == list(OpenRouterVideoOperator.template_fields)


def test_every_download_operator_parameter_has_a_row_and_its_templated_fields_are_listed() -> None:
    text = page("download-operator")
    documented = _table_rows(_section(text, "## Parameters"))
    assert documented == _parameters(OpenRouterVideoDownloadOperator)
    match = re.search(r"\bTemplated: (.*?);", text, re.DOTALL)
    assert match, "no 'Templated: ...;' sentence on the download operator's page"
    assert re.findall(r"`([a-z_]+)`", match.group(1)) == list(OpenRouterVideoDownloadOperator.template_fields)


def test_every_exception_named_in_the_docs_exists() -> None:
    for path in [README, *_pages()]:
        named = set(re.findall(r"`([A-Z][A-Za-z]+Error)`", path.read_text(encoding="utf-8")))
        missing = sorted(
            name for name in named if not hasattr(exceptions, name) and not hasattr(builtins, name)
        )
        assert missing == [], path.name
    assert re.search(r"`[A-Z][A-Za-z]+Error`", page("troubleshooting")), "the docs name no exception"


def _quick_start_block(text: str) -> str:
    first_section = re.search(r"^## (Quick start.*)$", text, re.MULTILINE)
    assert first_section
    block = re.search(r"```bash\n(.*?)```", _section(text, "## " + first_section.group(1)), re.DOTALL)
    assert block
    return block.group(1)


def test_quick_start_is_the_first_section_with_the_two_commands() -> None:
    text = _readme()
    first_section = re.search(r"^## (.+)$", text, re.MULTILINE)
    assert first_section
    assert first_section.group(1).startswith("Quick start")
    block = _quick_start_block(text)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    assert _quick_start_block(page("getting-started")) == block, "getting started has another quick start"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_the_readme_example_is_the_first_dag_of_getting_started_and_parses(tmp_path: Path) -> None:
    """The README's example DAG (the getting started page's first DAG, the same text) imports
    as a DAG with its two tasks: no import error, no network."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag

    (example,) = _python_blocks(_readme())
    assert example in _python_blocks(_section(page("getting-started"), "## A first DAG"))
    (tmp_path / "first_video.py").write_text(example)
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    assert sorted(bag.dags["first_video"].task_ids) == ["publish", "render_video"]


def test_the_readme_links_every_page() -> None:
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", _readme()))
    pages = {path.name for path in _pages()} - INCLUDE_STUBS - {"index.md"}
    assert sorted(pages - linked) == [], "docs pages the README does not link"


def _checked_before_paying_rows() -> list[tuple[str, str, str]]:
    table = _section(page("operator"), "## What is checked before paying")
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
    overrides = eval(f"dict({arguments.replace('{tmp}', str(tmp_path))})")  # the page's own text
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


def test_the_troubleshooting_page_lists_every_exception_class() -> None:
    """The public exception hierarchy (``exceptions.__all__``) is on the troubleshooting page."""
    troubleshooting = page("troubleshooting")
    missing = [name for name in exceptions.__all__ if name not in troubleshooting]
    assert missing == []


# -- links --------------------------------------------------------------------------------------


def _outside_code(text: str) -> str:
    """``text`` without fenced code blocks and inline code spans (their text is no link)."""
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", "``", text, flags=re.DOTALL)


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but ``-`` and ``_`` dropped,
    spaces as ``-``."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file, as GitHub numbers repeated ones (``-1``, ``-2``)."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(
        r"^#{1,6} (.+?)#*$", _outside_code(path.read_text(encoding="utf-8")), re.MULTILINE
    ):
        anchor = _github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def _relative_links(path: Path) -> list[str]:
    links = re.findall(
        r"!?\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)", _outside_code(path.read_text(encoding="utf-8"))
    )
    return [link for link in links if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", link)]


def test_the_link_check_sees_what_it_checks() -> None:
    links = _relative_links(README)
    assert "docs/operator.md" in links
    assert "what-is-checked-before-paying" in _anchors(DOCS / "operator.md")
    assert "#output-paths-and-the-overwrite-rule" in _relative_links(DOCS / "operator.md")
    assert any(link.startswith("../benchmarks/README.md#") for link in _relative_links(DOCS / "webhooks.md"))


@pytest.mark.parametrize("path", [README, *_pages()], ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_a_file_and_heading(path: Path) -> None:
    """A renamed heading or a moved page must not leave a link pointing nowhere (issue 26:
    ``#webhooks``): every relative link of README.md and docs/*.md names an existing file and,
    for a Markdown file, an existing heading."""
    broken = []
    for link in _relative_links(path):
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{link}: no heading with anchor #{anchor} in {file.relative_to(ROOT)}")
    assert broken == []
