"""The "Test your pipeline offline" page (``docs/testing.md``), run as a DAG author would: a fresh
project with only the page's files (``pyproject.toml`` table, ``dags/product_videos.py``,
``tests/test_product_videos.py``), ``pytest`` in a process of its own, the plugin loaded through
its ``pytest11`` entry point."""

from __future__ import annotations

import re

import pytest

from tests.test_docs import page

pytest_plugins = ["pytester"]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", page("testing"), re.MULTILINE | re.DOTALL)


def test_the_testing_page_example_passes_in_a_fresh_project(pytester: pytest.Pytester) -> None:
    (toml,) = _blocks("toml")
    dag, test_file = _blocks("python")
    pytester.makefile(".toml", pyproject=toml)
    (pytester.path / "dags").mkdir()
    (pytester.path / "dags" / "product_videos.py").write_text(dag)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_product_videos.py").write_text(test_file)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=600)
    result.assert_outcomes(passed=3)
    assert "airflow_dag_runner" in test_file
    assert "openrouter_emulator" in test_file


def test_a_dag_that_does_not_exist_is_reported_with_what_the_folder_holds(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\nairflow_dags_folder = "dags"\n')
    (pytester.path / "dags").mkdir()
    (pytester.path / "dags" / "broken.py").write_text(
        "from airflow.sdk import DAG\nraise RuntimeError('typo')\n"
    )
    pytester.makepyfile(
        test_missing="""
import pytest

def test_missing(airflow_dag_runner):
    with pytest.raises(LookupError, match=r"no DAG 'nope'.*found \\[\\].*broken.py.*typo"):
        airflow_dag_runner.run("nope")
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)


def test_a_failed_run_says_why_first_and_videos_are_found_wherever_they_were_written(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``assert_success()`` leads with each failed try's exception (class and message), before
    the states and the log; ``result.videos`` finds a video saved outside ``ORVIDEO_OUTPUT_DIR``."""
    elsewhere = tmp_path_factory.mktemp("hard_coded")
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\nairflow_dags_folder = "dags"\n')
    (pytester.path / "dags").mkdir()
    (pytester.path / "dags" / "videos.py").write_text(
        f"""
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG("videos", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    OpenRouterVideoOperator(
        task_id="hard_coded", prompt="a fox", model="google/veo-3.1", duration=4,
        output_path="{elsewhere}/fox.mp4",
    )
    OpenRouterVideoOperator(
        task_id="too_dear", prompt="a fox", model="google/veo-3.1", duration=4, max_cost_usd=0.01,
        output_path="{elsewhere}/dear.mp4",
    )
"""
    )
    pytester.makepyfile(
        test_videos="""
import pytest

def test_videos(airflow_dag_runner, openrouter_emulator):
    result = airflow_dag_runner.run("videos")
    assert result.files == {}
    assert [p.endswith("fox.mp4") for p in result.videos["hard_coded"]] == [True]
    with pytest.raises(AssertionError) as failed:
        result.assert_success()
    message = str(failed.value)
    first_lines = message.splitlines()[:3]
    assert first_lines[0] == "DAG videos ended 'failed'."
    assert first_lines[1] == "Failed tries (last first):"
    assert first_lines[2].startswith("  too_dear try 1: VideoCostLimitError: Estimated cost $"), first_lines
    assert message.index("VideoCostLimitError") < message.index("--- end of the run's log ---")
    assert result.failures[-1]["exception"] == "airflow_provider_orvideo.exceptions.VideoCostLimitError"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=1)


def test_the_plugin_is_registered_and_documents_its_ini_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    text = "\n".join(result.outlines)
    for option in (
        "airflow_dags_folder",
        "openrouter_conn_id",
        "openrouter_poll_scale",
        "openrouter_job_seconds",
    ):
        assert option in text, option


def test_plugin_module_imports_neither_airflow_nor_the_provider() -> None:
    """Loaded in every pytest session of a project that installs it: it must stay cheap."""
    import subprocess
    import sys

    code = (
        "import sys, orvideo_emulator.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'airflow_provider_orvideo')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
