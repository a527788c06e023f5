"""The version lives in one place, and everything that shows it reads it from there.

The built wheel's metadata, the installed provider and ``airflow providers list`` are checked
against ``__version__`` by ``scripts/check_package.py`` (run by ``make test``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.version import Version

import airflow_provider_orvideo
from airflow_provider_orvideo.get_provider_info import get_provider_info

REPO = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_version_is_pep440() -> None:
    assert str(Version(airflow_provider_orvideo.__version__)) == airflow_provider_orvideo.__version__


def test_provider_info_version_is_package_version() -> None:
    assert get_provider_info()["versions"][0] == airflow_provider_orvideo.__version__


def test_pyproject_reads_version_from_package() -> None:
    pyproject = _pyproject()
    project = pyproject["project"]
    assert isinstance(project, dict)
    assert "version" not in project, "set the version in airflow_provider_orvideo/__init__.py only"
    assert "version" in project["dynamic"]
    tool = pyproject["tool"]
    assert isinstance(tool, dict)
    assert tool["setuptools"]["dynamic"]["version"] == {"attr": "airflow_provider_orvideo.__version__"}


def test_pyproject_registers_provider_entry_point() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    entry_points = project["entry-points"]["apache_airflow_provider"]
    assert entry_points == {"provider_info": "airflow_provider_orvideo.get_provider_info:get_provider_info"}


def test_the_plugin_is_registered_once_by_entry_point() -> None:
    """Airflow loads the ``airflow.plugins`` entry point on every install. A ``plugins`` entry in
    ``provider-info`` would load only with ``lazy_load_providers = False``, and then a second time
    under the same name, which Airflow reports as a plugin import error: so there is none."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    plugin = "airflow_provider_orvideo.plugins.openrouter_video:OpenRouterVideoPlugin"
    assert project["entry-points"]["airflow.plugins"] == {"openrouter_video": plugin}
    assert "plugins" not in get_provider_info()


def test_changelog_has_current_version_and_unreleased() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", changelog, re.MULTILINE)
    assert headings[0] == "Unreleased"
    assert airflow_provider_orvideo.__version__ in headings, (
        f"CHANGELOG.md has no '## [{airflow_provider_orvideo.__version__}]' section"
    )
