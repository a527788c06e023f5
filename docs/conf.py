"""Sphinx configuration of the provider's documentation (``make docs``).

The pages are Markdown (MyST), one file per subject, readable on GitHub as they are; the API
reference comes from the docstrings (autodoc). ``make docs`` builds with ``-W --keep-going -n``:
every warning fails the build, a broken link or missing anchor included.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent

# autodoc imports the provider and the test kit; both are installed in the build's venv
# (make install), the paths make a build from a bare checkout find them too.
sys.path[:0] = [str(REPO), str(REPO / "emulator" / "src")]

# Importing Airflow reads (and may write) AIRFLOW_HOME: a docs build must not touch the Airflow
# of the shell that runs it, so it gets a throw-away home under the build directory.
os.environ["AIRFLOW_HOME"] = str(DOCS / "_build" / "airflow-home")
os.environ.pop("AIRFLOW_CONFIG", None)
logging.getLogger("airflow").setLevel(logging.WARNING)  # its INFO lines at import are noise here

from airflow_provider_orvideo import __version__  # noqa: E402

project = "airflow-provider-orvideo"
author = "airflow-provider-orvideo contributors"
copyright = "the airflow-provider-orvideo contributors, Apache License 2.0"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# [text](page.md#a-heading) is checked: MyST gives headings of levels 1-3 GitHub's anchors.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
# A method without a docstring of its own (``execute``) is left out rather than shown with
# Airflow's text for BaseOperator.
autodoc_inherit_docstrings = False

html_theme = "furo"
html_title = f"airflow-provider-orvideo {release}"
html_static_path = ["_static"]
html_css_files = ["tables.css"]

# No intersphinx: the build runs offline (make test, CI). Types from other packages in the
# signatures therefore have no page to link to; nitpicky mode (-n) would report each. Only
# names from outside this project are ignored here: a reference to one of ours must resolve.
nitpick_ignore_regex = [
    ("py:.*", r"(?!airflow_provider_orvideo\b|orvideo_emulator\b).*"),
]

OURS = ("airflow_provider_orvideo", "orvideo_emulator")


def _public(name: str) -> bool:
    """Whether a dotted name of ours is public: no part starts with ``_``, and a name defined in a
    module is in its ``__all__`` (the rule of docs/public-api.md)."""
    import importlib

    parts = name.split(".")
    if any(part.startswith("_") for part in parts):
        return False
    for cut in range(len(parts) - 1, 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        exported = getattr(module, "__all__", None)
        return exported is None or parts[cut] in exported
    return True


def resolve_our_names(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """The docstrings' references that Sphinx's Python domain leaves unresolved, resolved the
    way a reader would:

    - a short name (``:class:`OpenRouterVideoTrigger```, written in another module) links to the
      one documented object of ours with that name;
    - a member without a docstring of its own (``OpenRouterVideoError.request_left``) links to
      its class, which describes it;
    - a name of ours that is not public (``_internal``, not in its module's ``__all__``) has no
      page by design and is shown as text.

    Anything else stays unresolved, so nitpicky mode (``-n``) reports it: a public name of ours
    without documentation, or a misspelt one.
    """
    from sphinx.util.nodes import make_refnode

    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"].lstrip("~.")
    objects = env.get_domain("py").objects

    def link(name: str) -> Any:
        entry = objects[name]
        return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)

    if not target.startswith(OURS):
        matches = [name for name in objects if name.startswith(OURS) and name.endswith("." + target)]
        return link(matches[0]) if len(matches) == 1 else None
    if not _public(target):
        return contnode
    parent = target.rpartition(".")[0]
    if parent in objects and objects[parent].objtype in ("class", "exception"):
        return link(parent)
    return None


# Files of the repository outside docs/ that the site shows as pages of its own (a stub page with
# an include). The pages link to the files themselves, as GitHub shows them; the site links the
# pages instead, anchors included.
INCLUDED = {
    REPO / "CHANGELOG.md": "changelog",
    REPO / "benchmarks" / "README.md": "benchmarks",
}


def link_included_files(app: Any, doctree: Any) -> None:
    """``[...](../CHANGELOG.md#unreleased)`` -> the ``changelog`` page's ``#unreleased``."""
    from sphinx import addnodes

    for node in doctree.findall(addnodes.pending_xref):
        if node.get("refdomain") == "doc" and node.get("reftype") == "myst":
            page = INCLUDED.get(Path(app.srcdir, node["reftarget"] + ".md").resolve())
            if page is not None:
                node["reftarget"] = page


def setup(app: Any) -> None:
    app.connect("missing-reference", resolve_our_names)
    # Before Sphinx's own doctree-read handlers (priority 500), which record what is linked.
    app.connect("doctree-read", link_included_files, priority=400)
