"""Extract the video endpoints of OpenRouter's OpenAPI document into the emulator's test data.

    python emulator/scripts/vendor_openapi.py <checkout of github.com/OpenRouterTeam/docs> <commit>

Reads ``openapi/openapi.yaml`` (the file OpenRouter's TypeScript SDK is generated from) and
writes ``emulator/tests/data/openrouter-video-openapi.json``: the ``/videos*`` paths and every
component schema they reach, with the source and commit recorded, for the conformance test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "openrouter-video-openapi.json"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def main() -> None:
    checkout, commit = Path(sys.argv[1]), sys.argv[2]
    document = yaml.safe_load((checkout / "openapi" / "openapi.yaml").read_text())
    paths = {path: spec for path, spec in document["paths"].items() if path.startswith("/videos")}
    schemas = document["components"]["schemas"]
    wanted: set[str] = set()
    todo = _refs(paths)
    while todo:
        name = todo.pop()
        if name in wanted or name not in schemas:
            continue
        wanted.add(name)
        todo |= _refs(schemas[name]) - wanted
    vendored = {
        "x-source": f"https://github.com/OpenRouterTeam/docs/blob/{commit}/openapi/openapi.yaml",
        "x-note": "The /videos paths of OpenRouter's OpenAPI document and the schemas they reach.",
        "openapi": document["openapi"],
        "paths": paths,
        "components": {"schemas": {name: schemas[name] for name in sorted(wanted)}},
    }
    OUT.write_text(json.dumps(vendored, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(paths)} paths, {len(wanted)} schemas)")


if __name__ == "__main__":
    main()
