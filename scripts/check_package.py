"""Build the wheel and sdist, check them, install the wheel in a fresh venv and ask Airflow about it.

Run by ``make test`` (and so by CI). Every step happens in a temporary directory: the sources are
copied there first (the files git tracks or would track), so nothing is written into the work tree,
stale ``build/`` folders cannot leak into the wheel, and the user's ``AIRFLOW_HOME`` is never
touched. pip's cache is reused, so a second run does not download Airflow again.

Steps (each fails loudly, naming what is wrong):

1. ``python -m build``: sdist, then a wheel built from that sdist (isolated build environments,
   setuptools pinned through ``constraints.txt``); plus a wheel built straight from the sources,
   which must hold the same files with the same bytes.
2. ``twine check --strict`` on both.
3. The wheel holds every file of the package (modules, ``py.typed``), only that package (no
   emulator: it is a distribution of its own), the ``apache_airflow_provider`` entry point, and
   metadata whose version is ``__version__``; the sdist holds the changelog and the same version.
4. The emulator's wheel (``emulator/``, distribution ``orvideo-emulator``): its modules, its
   ``py.typed`` and sample MP4, only its package, the ``orvideo-emulator`` script and the pytest
   plugin's ``pytest11`` entry point.
5. One version: the provider's and the emulator's ``__version__`` are equal, and CHANGELOG.md
   starts with ``## [Unreleased]`` (``--release``: it has this version's dated section).
6. ``pip install -c constraints.txt <wheel>`` into a fresh venv; there, with its own
   ``AIRFLOW_HOME``: the provider's modules import from site-packages with the runtime
   dependencies only, the emulator does not, ``airflow providers list`` shows the provider at
   ``__version__``, ``airflow providers hooks`` the ``openrouter`` connection type and
   ``airflow providers links`` the *Watch video* link (JSON output only). Then the install line
   for built distributions, ``pip install --find-links dist "airflow-provider-orvideo[testing]"``:
   the emulator, its pytest plugin and pytest, whose ``--fixtures`` lists the test kit's.
7. The install line for a checkout, as written (``pip install ./emulator ".[testing]"``, run
   with ``uv pip`` for speed) in another fresh venv: both distributions at ``__version__``, the
   same pytest fixtures.

Usage: ``python scripts/check_package.py [--keep] [--release]`` (``--keep`` leaves the temporary
directory; ``--release`` is step 3 of RELEASING.md).
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_orvideo"
DIST_NAME = "airflow-provider-orvideo"
CONNECTION_TYPE = "openrouter"
ENTRY_POINT_GROUP = "apache_airflow_provider"
ENTRY_POINT_VALUE = f"{PACKAGE}.get_provider_info:get_provider_info"
EXTRA_LINK = f"{PACKAGE}.links.openrouter_video.WatchVideoLink"
PLUGIN_ENTRY_POINT_VALUE = f"{PACKAGE}.plugins.openrouter_video:OpenRouterVideoPlugin"
"""Airflow loads provider-info plugins only with ``lazy_load_providers = False``: the receiver needs the entry point."""
EMULATOR_PACKAGE = "orvideo_emulator"
EMULATOR_DIST_NAME = "orvideo-emulator"
EMULATOR_DIR = "emulator"
# Copied only if git is unavailable (a source tarball): everything but these.
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".*_cache",
    ".demo",
    "test-artifacts",
)


UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv") or "uv"
"""uv (the test extra installs it beside this interpreter): installs into the fresh venvs."""


def uv_install(python: Path, *requirements: str | Path) -> list[str | Path]:
    """``uv pip install`` into the venv of ``python``, with the project's constraints."""
    return [
        UV,
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
        "-c",
        REPO / "constraints.txt",
        *requirements,
    ]


class CheckFailed(Exception):
    pass


def fail(message: str) -> None:
    raise CheckFailed(message)


def step(title: str) -> None:
    print(f"\n=== package check: {title}", flush=True)


def run(
    cmd: list[str | Path],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    capture: bool = False,
    label: str | None = None,
) -> str:
    """Run a command; on failure print its output and stop."""
    shown = label or " ".join(str(part) for part in cmd)
    print(f"$ {shown}", flush=True)
    result = subprocess.run(
        [str(part) for part in cmd],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(result.stdout, flush=True)
        fail(f"command failed with exit code {result.returncode}: {shown}")
    if not capture:
        # Keep the CI log readable: build and pip chatter only matters on failure.
        tail = [
            line for line in result.stdout.splitlines() if line.strip() and not line.startswith("WARNING:")
        ][-1:]
        for line in tail:
            print(f"  {line}")
    return result.stdout


def source_version() -> str:
    text = (REPO / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if match is None:
        fail(f"no __version__ = '...' line in {PACKAGE}/__init__.py")
        raise AssertionError  # unreachable, for type checkers
    return match.group(1)


def copy_sources(dest: Path) -> None:
    """Copy what git tracks or would track (untracked, not ignored) files included."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO, dest, ignore=COPY_IGNORE)
        return
    dest.mkdir(parents=True)
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if not source.is_file():  # deleted in the work tree but still in the index
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def only(paths: list[Path], what: str) -> Path:
    if len(paths) != 1:
        fail(f"expected exactly one {what}, found {[p.name for p in paths]}")
    return paths[0]


def wheel_files(wheel: Path) -> dict[str, str]:
    """Every file of a wheel with the sha256 of its bytes."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            info.filename: hashlib.sha256(archive.read(info)).hexdigest()
            for info in archive.infolist()
            if not info.is_dir()
        }


def read_from_wheel(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode("utf-8")


def build(src: Path, out: Path, env: dict[str, str]) -> tuple[Path, Path, Path]:
    step("build sdist and wheel (python -m build)")
    # No --sdist/--wheel: build makes the sdist, then the wheel from that sdist, as a release would.
    run([sys.executable, "-m", "build", "--outdir", out / "dist", src], cwd=src, env=env)
    sdist = only(sorted((out / "dist").glob("*.tar.gz")), "sdist")
    wheel = only(sorted((out / "dist").glob("*.whl")), "wheel")
    run([sys.executable, "-m", "build", "--wheel", "--outdir", out / "from-tree", src], cwd=src, env=env)
    tree_wheel = only(sorted((out / "from-tree").glob("*.whl")), "wheel built from the sources")
    print(f"  built {sdist.name} ({sdist.stat().st_size} bytes), {wheel.name} ({wheel.stat().st_size} bytes)")
    return sdist, wheel, tree_wheel


def check_metadata(sdist: Path, wheel: Path, env: dict[str, str]) -> None:
    step("twine check --strict")
    run(
        [sys.executable, "-m", "twine", "check", "--strict", sdist, wheel],
        cwd=sdist.parent,
        env=env,
        capture=True,
    )
    print("  PASSED (sdist and wheel)")


def check_wheel(wheel: Path, tree_wheel: Path, src: Path, version: str) -> None:
    step(f"wheel contents ({wheel.name})")
    files = wheel_files(wheel)
    names = set(files)
    dist_info = f"{DIST_NAME.replace('-', '_')}-{version}.dist-info"

    problems: list[str] = []
    expected = {
        path.relative_to(src).as_posix()
        for path in (src / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    missing = sorted(expected - names)
    if missing:
        problems.append(f"package files missing from the wheel (a folder without __init__.py?): {missing}")
    for required in (f"{PACKAGE}/py.typed", f"{PACKAGE}/get_provider_info.py", f"{PACKAGE}/__init__.py"):
        if required not in names:
            problems.append(f"{required} is not in the wheel")
    emulator_files = sorted(name for name in names if "emulator" in name or name.endswith(".mp4"))
    if emulator_files:
        problems.append(
            f"the provider wheel carries emulator files (they belong in {EMULATOR_DIST_NAME}): {emulator_files}"
        )
    strays = sorted({name.split("/")[0] for name in names} - {PACKAGE, dist_info})
    if strays:
        problems.append(
            f"unexpected top-level entries in the wheel (only {PACKAGE}/ belongs there): {strays}"
        )

    metadata = email.parser.Parser().parsestr(read_from_wheel(wheel, f"{dist_info}/METADATA"))
    if metadata["Name"] != DIST_NAME:
        problems.append(f"wheel metadata Name is {metadata['Name']!r}, expected {DIST_NAME!r}")
    if metadata["Version"] != version:
        problems.append(f"wheel metadata Version is {metadata['Version']!r}, __version__ is {version!r}")
    entry_points = read_from_wheel(wheel, f"{dist_info}/entry_points.txt")
    group = re.search(rf"^\[{ENTRY_POINT_GROUP}\]\s*$(.*?)(?=^\[|\Z)", entry_points, re.MULTILINE | re.DOTALL)
    if group is None or not re.search(
        rf"^provider_info\s*=\s*{re.escape(ENTRY_POINT_VALUE)}\s*$", group.group(1), re.MULTILINE
    ):
        problems.append(
            f"entry point [{ENTRY_POINT_GROUP}] provider_info = {ENTRY_POINT_VALUE} missing; entry_points.txt:\n"
            f"{entry_points}"
        )
    if f"[airflow.plugins]\nopenrouter_video = {PLUGIN_ENTRY_POINT_VALUE}" not in entry_points:
        problems.append(
            f"entry point [airflow.plugins] openrouter_video missing; entry_points.txt:\n{entry_points}"
        )

    tree_files = wheel_files(tree_wheel)
    if tree_files != files:
        only_sdist = sorted(set(files) - set(tree_files))
        only_tree = sorted(set(tree_files) - set(files))
        differ = sorted(n for n in set(files) & set(tree_files) if files[n] != tree_files[n])
        problems.append(
            "the wheel built from the sdist differs from the wheel built from the sources "
            f"(a file the sdist leaves out?): only from sdist {only_sdist}, only from sources {only_tree}, "
            f"different bytes {differ}"
        )
    if problems:
        fail("wheel check failed:\n  - " + "\n  - ".join(problems))
    modules = sum(1 for name in names if name.endswith(".py"))
    print(
        f"  {len(names)} files ({modules} modules), py.typed, no emulator, "
        f"get_provider_info entry point, Version {version}; the sdist builds the same wheel"
    )


def emulator_version(src: Path) -> str:
    text = (src / EMULATOR_DIR / "src" / EMULATOR_PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if match is None:
        fail(f"no __version__ = '...' line in {EMULATOR_PACKAGE}/__init__.py")
        raise AssertionError  # unreachable, for type checkers
    return match.group(1)


def check_emulator_wheel(src: Path, out: Path, env: dict[str, str]) -> Path:
    step(f"emulator wheel ({EMULATOR_DIST_NAME}, built from {EMULATOR_DIR}/)")
    run(
        [sys.executable, "-m", "build", "--outdir", out / "emulator-dist", src / EMULATOR_DIR],
        cwd=src,
        env=env,
    )
    wheel = only(sorted((out / "emulator-dist").glob("*.whl")), "emulator wheel")
    sdist = only(sorted((out / "emulator-dist").glob("*.tar.gz")), "emulator sdist")
    run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel], cwd=out, env=env, capture=True)
    version = emulator_version(src)
    files = wheel_files(wheel)
    names = set(files)
    dist_info = f"{EMULATOR_DIST_NAME.replace('-', '_')}-{version}.dist-info"
    package_root = src / EMULATOR_DIR / "src"
    expected = {
        path.relative_to(package_root).as_posix()
        for path in (package_root / EMULATOR_PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    problems: list[str] = []
    missing = sorted(expected - names)
    if missing:
        problems.append(f"emulator files missing from its wheel: {missing}")
    mp4s = sorted(name for name in names if name.endswith(".mp4"))
    if not mp4s:
        problems.append(f"no sample MP4 in the {EMULATOR_DIST_NAME} wheel")
    with zipfile.ZipFile(wheel) as archive:
        problems += [f"{name} is not an MP4" for name in mp4s if archive.read(name)[4:8] != b"ftyp"]
    if f"{EMULATOR_PACKAGE}/py.typed" not in names:
        problems.append(f"{EMULATOR_PACKAGE}/py.typed is not in its wheel")
    strays = sorted({name.split("/")[0] for name in names} - {EMULATOR_PACKAGE, dist_info})
    if strays:
        problems.append(f"unexpected top-level entries in the emulator wheel: {strays}")
    entry_points = read_from_wheel(wheel, f"{dist_info}/entry_points.txt")
    for group, line in (
        ("console_scripts", f"orvideo-emulator = {EMULATOR_PACKAGE}.__main__:main"),
        ("pytest11", f"orvideo_emulator = {EMULATOR_PACKAGE}.pytest_plugin"),
    ):
        if f"[{group}]" not in entry_points or line not in entry_points:
            problems.append(f"entry point [{group}] {line} missing; entry_points.txt:\n{entry_points}")
    if problems:
        fail("emulator wheel check failed:\n  - " + "\n  - ".join(problems))
    print(f"  {len(names)} files, {', '.join(mp4s)}, py.typed, console script and pytest11 entry point")
    return wheel


def check_sdist(sdist: Path, version: str) -> None:
    step(f"sdist contents ({sdist.name})")
    root = f"{DIST_NAME.replace('-', '_')}-{version}"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
        pkg_info_member = archive.extractfile(f"{root}/PKG-INFO")
        if pkg_info_member is None:
            fail("the sdist has no PKG-INFO")
            raise AssertionError  # unreachable
        pkg_info = email.parser.Parser().parsestr(pkg_info_member.read().decode("utf-8"))
    problems = [
        f"{name} is not in the sdist"
        for name in ("CHANGELOG.md", "README.md", "pyproject.toml", f"{PACKAGE}/py.typed")
        if f"{root}/{name}" not in names
    ]
    if pkg_info["Version"] != version:
        problems.append(f"sdist PKG-INFO Version is {pkg_info['Version']!r}, __version__ is {version!r}")
    if problems:
        fail("sdist check failed:\n  - " + "\n  - ".join(problems))
    print(f"  {len(names)} entries, CHANGELOG.md, README.md, pyproject.toml, Version {version}")


def provider_imports_script() -> str:
    """Python run in the fresh venv: where the package is, and that everything it registers imports."""
    return f"""
import importlib, importlib.metadata, json, sys
import {PACKAGE}
from {PACKAGE}.get_provider_info import get_provider_info

info = get_provider_info()
targets = set()


def walk(node, key=""):
    if isinstance(node, dict):
        for k, v in node.items():
            walk(v, k)
    elif isinstance(node, list):
        for item in node:
            walk(item, key)
    elif isinstance(node, str) and node.startswith("{PACKAGE}."):
        if key == "python-modules":
            targets.add((node, None))
        elif key.endswith("class-name"):
            module, _, attr = node.rpartition(".")
            targets.add((module, attr))


walk(info)
for module, attr in sorted(targets, key=lambda t: (t[0], t[1] or "")):
    loaded = importlib.import_module(module)
    if attr is not None:
        getattr(loaded, attr)
print(json.dumps({{
    "file": {PACKAGE}.__file__,
    "version": {PACKAGE}.__version__,
    "metadata_version": importlib.metadata.version("{DIST_NAME}"),
    "provider_info_versions": info.get("versions"),
    "imported": len(targets),
}}))
"""


def check_install(wheel: Path, emulator_wheel: Path, out: Path, version: str) -> None:
    step("install the wheel in a fresh venv (not editable) and ask Airflow")
    venv = out / "venv"
    home = out / "airflow-home"
    home.mkdir()
    work = out / "cwd"  # never the repository: its sources must not shadow the installed package
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env["AIRFLOW_HOME"] = str(home)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PIP_CONSTRAINT", None)
    python = venv / "bin" / "python"
    started = time.monotonic()
    run([sys.executable, "-m", "venv", venv], cwd=work, env=env)
    run(
        uv_install(python, wheel),
        cwd=work,
        env=env,
        label=f"pip install {wheel.name}  (run with uv pip, as every install below: same resolution, seconds)",
    )
    print(f"  installed in {time.monotonic() - started:.0f} s")

    report = json.loads(
        run(
            [python, "-c", provider_imports_script()],
            cwd=work,
            env=env,
            capture=True,
            label=f"{python} -c <import {PACKAGE} and every module and class its provider info registers>",
        )
    )
    site = venv.resolve()
    if not Path(report["file"]).resolve().is_relative_to(site):
        fail(f"{PACKAGE} was imported from {report['file']}, not from the fresh venv {site}")
    versions = {
        version,
        report["version"],
        report["metadata_version"],
        *(report["provider_info_versions"] or []),
    }
    if versions != {version} or report["provider_info_versions"] != [version]:
        fail(
            f"versions disagree: __version__ {version}, installed {report['version']}, "
            f"metadata {report['metadata_version']}, provider info {report['provider_info_versions']}"
        )
    print(
        f"  {PACKAGE} {report['version']} imported from the venv's site-packages; "
        f"{report['imported']} registered modules/classes import with the runtime dependencies only"
    )
    absent = run(
        [
            python,
            "-c",
            f"import importlib.util; print(importlib.util.find_spec({EMULATOR_PACKAGE!r}) is None)",
        ],
        cwd=work,
        env=env,
        capture=True,
    )
    if absent.strip() != "True":
        fail(f"{EMULATOR_PACKAGE} is importable after installing the provider wheel alone")

    airflow = venv / "bin" / "airflow"
    providers = json.loads(run([airflow, "providers", "list", "-o", "json"], cwd=work, env=env, capture=True))
    ours = [p for p in providers if p.get("package_name") == DIST_NAME]
    if not ours:
        fail(
            f"`airflow providers list` does not show {DIST_NAME}; it shows {[p.get('package_name') for p in providers]}"
        )
    if ours[0].get("version") != version:
        fail(f"`airflow providers list` shows {DIST_NAME} {ours[0].get('version')}, expected {version}")

    hooks = json.loads(run([airflow, "providers", "hooks", "-o", "json"], cwd=work, env=env, capture=True))
    connection = [h for h in hooks if h.get("connection_type") == CONNECTION_TYPE]
    if not connection:
        fail(
            f"`airflow providers hooks` does not list the {CONNECTION_TYPE!r} connection type; "
            f"it lists {[h.get('connection_type') for h in hooks]}"
        )
    if connection[0].get("package_name") != DIST_NAME or not str(connection[0].get("class")).startswith(
        f"{PACKAGE}."
    ):
        fail(f"the {CONNECTION_TYPE!r} connection type is not registered by {DIST_NAME}: {connection[0]}")
    links = json.loads(run([airflow, "providers", "links", "-o", "json"], cwd=work, env=env, capture=True))
    if not any(str(link.get("extra_link_class_name")) == EXTRA_LINK for link in links):
        fail(f"`airflow providers links` does not list {EXTRA_LINK}; it lists {links}")
    print(
        f"  OK: `airflow providers list` shows {DIST_NAME} {version}; `airflow providers hooks` shows "
        f"connection type {CONNECTION_TYPE!r} ({connection[0]['class']}); `airflow providers links` "
        f"lists {EXTRA_LINK}"
    )

    # The install line (docs/getting-started.md) for built distributions: both wheels in one folder, the extra that
    # brings the emulator, its pytest plugin and pytest resolved from there.
    dists = emulator_wheel.parent
    if wheel.parent != dists:
        shutil.copy2(wheel, dists / wheel.name)
    run(
        uv_install(python, "--find-links", dists, f"{DIST_NAME}[testing]"),
        cwd=work,
        env=env,
        label=f'pip install --find-links dist "{DIST_NAME}[testing]"',
    )
    usage = run([python, "-m", EMULATOR_PACKAGE, "--help"], cwd=work, env=env, capture=True)
    if "--port" not in usage:
        fail(f"`python -m {EMULATOR_PACKAGE} --help` does not document --port:\n{usage}")
    check_test_kit(venv, work, env)
    print(
        f'  OK: pip install --find-links dist "{DIST_NAME}[testing]" installs {EMULATOR_DIST_NAME}, its '
        "pytest plugin and pytest; `python -m orvideo_emulator --help` runs"
    )


def check_test_kit(venv: Path, work: Path, env: dict[str, str]) -> None:
    """The testing extra gives a pytest with the plugin's fixtures (``airflow_dag_runner``)."""
    fixtures = run(
        [venv / "bin" / "pytest", "--fixtures", "-p", "no:cacheprovider"], cwd=work, env=env, capture=True
    )
    if "airflow_dag_runner" not in fixtures or "openrouter_emulator" not in fixtures:
        fail(
            f"the testing extra's pytest does not offer airflow_dag_runner and openrouter_emulator:\n{fixtures[-2000:]}"
        )


def check_checkout_install(src: Path, out: Path, version: str) -> None:
    """The install line (docs/getting-started.md) for a checkout, as written: ``pip install ./emulator ".[testing]"``."""
    step('install from a checkout: pip install ./emulator ".[testing]"')
    venv = out / "venv-checkout"
    work = out / "cwd-checkout"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env["AIRFLOW_HOME"] = str(out / "airflow-home-checkout")
    env.pop("PIP_CONSTRAINT", None)
    python = venv / "bin" / "python"
    started = time.monotonic()
    run([sys.executable, "-m", "venv", venv], cwd=work, env=env)
    run(
        uv_install(python, "./emulator", ".[testing]"),
        cwd=src,
        env=env,
        label='pip install ./emulator ".[testing]"  (run with uv pip)',
    )
    installed = run(
        [
            python,
            "-c",
            f"import importlib.metadata as m; print(m.version({DIST_NAME!r}), m.version({EMULATOR_DIST_NAME!r}))",
        ],
        cwd=work,
        env=env,
        capture=True,
    ).split()
    if installed != [version, version]:
        fail(
            f"from a checkout: installed {DIST_NAME}/{EMULATOR_DIST_NAME} {installed}, expected {version} for both"
        )
    check_test_kit(venv, work, env)
    print(
        f"  OK in {time.monotonic() - started:.0f} s: both distributions {version}, pytest with the plugin's fixtures"
    )


def check_versions(src: Path, version: str, *, release: bool) -> None:
    """One version for both distributions, and a changelog that knows it: ``## [Unreleased]``
    first while developing; with ``--release`` (RELEASING.md) a ``## [<version>] - <date>`` section."""
    step("versions: provider, emulator, changelog")
    emulator = emulator_version(src)
    if emulator != version:
        fail(f"{DIST_NAME} is {version} but {EMULATOR_DIST_NAME} is {emulator}: release them together")
    changelog = (src / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", changelog, re.MULTILINE)
    if not headings or headings[0] != "Unreleased":
        fail(f"CHANGELOG.md must start with '## [Unreleased]'; its headings: {headings[:3]}")
    if release and not re.search(
        rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.MULTILINE
    ):
        fail(
            f"releasing {version}, but CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' section (RELEASING.md, step 2)"
        )
    print(f"  OK: {DIST_NAME} {version} == {EMULATOR_DIST_NAME} {emulator}; CHANGELOG.md is in order")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--release",
        action="store_true",
        help="also require the changelog section of this version (RELEASING.md)",
    )
    args = parser.parse_args()

    started = time.monotonic()
    out = Path(tempfile.mkdtemp(prefix="orvideo-package-check-"))
    print(f"package check: working in {out}", flush=True)
    ok = False
    try:
        version = source_version()
        src = out / "src"
        copy_sources(src)
        build_env = dict(os.environ)
        # The isolated build environments take setuptools at the version constraints.txt pins.
        build_env["PIP_CONSTRAINT"] = str(REPO / "constraints.txt")
        sdist, wheel, tree_wheel = build(src, out, build_env)
        check_metadata(sdist, wheel, build_env)
        check_wheel(wheel, tree_wheel, src, version)
        check_sdist(sdist, version)
        check_versions(src, version, release=args.release)
        emulator_wheel = check_emulator_wheel(src, out, build_env)
        check_install(wheel, emulator_wheel, out, version)
        check_checkout_install(src, out, version)
        ok = True
    except CheckFailed as error:
        print(f"\nPACKAGE CHECK FAILED: {error}", file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"package check: left {out} for inspection")
        else:
            shutil.rmtree(out, ignore_errors=True)
            if not ok:
                print("package check: run `python scripts/check_package.py --keep` to inspect its files")
    print(f"package check: {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
