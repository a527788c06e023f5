"""The public surface is chosen: every public module (no part of its path starts with ``_``) is a
row of the "Public API" table (``docs/public-api.md``), and its ``__all__`` is exactly the names of
that row.

Both directions, because each catches a different drift: a name added to ``__all__`` without a row
is a promise nobody decided to make; a row naming what ``__all__`` lacks is a promise the code
does not keep. A new public module fails until it is documented (or made private)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airflow_provider_orvideo"

NOT_NAMES = {"retry_policy"}
"""Backticked words of the table that are not exported names: the hook parameter a row mentions."""


def _public_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(part.startswith("_") for part in parts):
            continue  # private (``_internal``, ``hooks/_transport``, ``plugins/_video_views``, ``__init__``)
        names.append(".".join(parts))
    return names


def _documented_table() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "public-api.md").read_text()
    assert text.startswith("# Public API\n")
    rows = re.findall(r"^\| `(airflow_provider_orvideo[\w.]*)` \| (.*) \|$", text, flags=re.M)
    assert len(rows) == len({module for module, _ in rows}), "a module has two rows in the Public API"
    return {module: set(re.findall(r"`([A-Za-z_]\w*)`", cell)) - NOT_NAMES for module, cell in rows}


def _exported(module_name: str) -> list[str]:
    exported = getattr(importlib.import_module(module_name), "__all__", None)
    assert isinstance(exported, list), f"{module_name} has no __all__"
    return exported


def test_the_private_modules_are_found_and_left_out() -> None:
    modules = _public_modules()
    assert "airflow_provider_orvideo.retry" in modules
    assert "airflow_provider_orvideo.plugins.openrouter_video" in modules
    assert not [m for m in modules if "._video_" in m or "._webhook_" in m or "_internal" in m]


def test_every_public_module_chooses_its_names() -> None:
    for name in _public_modules():
        module = importlib.import_module(name)
        exported = _exported(name)
        assert len(exported) == len(set(exported)), f"{name}.__all__ names something twice"
        for symbol in exported:
            assert hasattr(module, symbol), f"{name}.__all__ names {symbol}, which it does not define"


def test_every_public_module_has_a_row_and_every_row_is_a_public_module() -> None:
    table = _documented_table()
    modules = set(_public_modules())
    undocumented = sorted(modules - set(table))
    assert not undocumented, (
        f"public modules without a row in the Public API (docs/public-api.md) (document or rename to _): {undocumented}"
    )
    not_public = sorted(set(table) - modules)
    assert not not_public, (
        f"the Public API (docs/public-api.md) has rows for modules that are private or gone: {not_public}"
    )


def test_the_table_lists_only_exported_names() -> None:
    for module_name, names in _documented_table().items():
        missing = sorted(names - set(_exported(module_name)))
        assert not missing, (
            f"the Public API (docs/public-api.md) promises {module_name}.{missing}, not in its __all__"
        )


def test_every_exported_name_is_in_the_table() -> None:
    for module_name, names in _documented_table().items():
        unpromised = sorted(set(_exported(module_name)) - names)
        assert not unpromised, (
            f"{module_name}.__all__ exports {unpromised}, which the Public API (docs/public-api.md) does not list: "
            "add them to its row, or take them out of __all__ if they are implementation details"
        )
