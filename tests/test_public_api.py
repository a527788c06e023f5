"""The public surface is chosen: every public module says it in ``__all__``, and the README's
"Public API" table names only what those lists hold."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airflow_provider_orvideo"


def _public_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(part.startswith("_") for part in parts) or "emulator" in parts:
            continue  # private (``_internal``, ``hooks/_transport``, ``__init__``) or the emulator
        names.append(".".join(parts))
    return names


def _readme_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Public API", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(airflow_provider_orvideo[\w.]*)` \| (.*) \|$", section, flags=re.M)
    return {module: re.findall(r"`([A-Za-z_][\w]*)`", cell) for module, cell in rows}


def test_every_public_module_chooses_its_names() -> None:
    modules = _public_modules()
    assert "airflow_provider_orvideo.retry" in modules
    for name in modules:
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert isinstance(exported, list), f"{name} has no __all__"
        for symbol in exported:
            assert hasattr(module, symbol), f"{name}.__all__ names {symbol}, which it does not define"


def test_the_readme_lists_only_exported_names() -> None:
    table = _readme_table()
    assert len(table) >= 8
    not_names = {"retry_policy"}  # the hook parameter the row mentions
    for module_name, names in table.items():
        module = importlib.import_module(module_name)
        for name in set(names) - not_names:
            assert name in module.__all__, f"README lists {module_name}.{name}, not in its __all__"
