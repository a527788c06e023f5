"""Adversarial output paths: each bad one fails before the submit POST, each odd-but-valid one is
normalised once and the video lands at exactly the path the task returns.

Every case counts the POSTs the emulator received.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.exceptions import InvalidOutputPathError
from tests.adversarial.conftest import is_mp4, run_tries, video_operator

# (case id, output_path built from tmp_path, message fragments)
REFUSED: list[tuple[str, Any, list[str]]] = [
    ("empty string", lambda t: "", ["is empty"]),
    ("renders to whitespace", lambda t: "  \n", ["is empty"]),
    ("trailing slash", lambda t: f"{t}/videos/", ["names a directory"]),
    ("dot as the file name", lambda t: f"{t}/videos/.", ["names a directory"]),
    ("dot-dot as the file name", lambda t: f"{t}/videos/..", ["names a directory"]),
    ("an existing directory", lambda t: str(t), ["is an existing directory"]),
    ("file URI with a host", lambda t: f"file://tmp{t}/clip.mp4", ["names the host 'tmp'", "file:///path"]),
    ("file URI with another host", lambda t: f"file://render-01{t}/x.mp4", ["names the host 'render-01'"]),
    ("home directory", lambda t: "~/videos/clip.mp4", ["starts with '~'", "absolute path"]),
    ("relative path", lambda t: "videos/clip.mp4", ["is relative", "working directory"]),
    ("dot-relative path", lambda t: "./clip.mp4", ["is relative"]),
    ("an int", lambda t: 123, ["output_path=123 is of type int", "as a string"]),
    ("a list", lambda t: [f"{t}/a.mp4"], ["is of type list"]),
    ("None", lambda t: None, ["output_path=None is required"]),
    ("a NUL character", lambda t: f"{t}/clip\x00.mp4", ["contains a NUL character"]),
    ("parent is a file", lambda t: f"{t}/afile/clip.mp4", ["cannot be created", "afile is a file"]),
    ("grandparent is a file", lambda t: f"{t}/afile/sub/clip.mp4", ["afile is a file"]),
    ("a named pipe", lambda t: f"{t}/fifo.mp4", ["exists and is not a regular file"]),
    ("a name too long for the temporary file", lambda t: f"{t}/{'n' * 230}.mp4", ["has a name of 234 bytes"]),
    (
        "a directory name too long",
        lambda t: f"{t}/{'d' * 256}/clip.mp4",
        ["has a name of 256 bytes; at most 255"],
    ),
]


@pytest.mark.parametrize(("make_path", "fragments"), [pytest.param(p, f, id=i) for i, p, f in REFUSED])
def test_bad_output_path_fails_before_paying(
    emulator: Any, tmp_path: Path, make_path: Any, fragments: list[str]
) -> None:
    (tmp_path / "afile").write_bytes(b"not a directory")
    os.mkfifo(tmp_path / "fifo.mp4")
    output_path = make_path(tmp_path)
    tries = run_tries(emulator, lambda _: video_operator(output_path=output_path), tries=2)
    assert len(tries.results) == 1, "a bad output path is not retried"
    error = tries.last
    assert isinstance(error, InvalidOutputPathError)
    message = str(error)
    assert message.startswith(f"output_path={output_path!r} ")
    for fragment in fragments:
        assert fragment in message
    assert "Nothing was submitted to OpenRouter and nothing was billed." in message
    assert tries.posts == 0
    assert emulator.control.requests() == [], "refused before any request, even the model list"


def test_read_only_filesystem_fails_before_paying(emulator: Any, tmpfs: Any) -> None:
    disk = tmpfs("1m")
    disk.remount("ro")
    tries = run_tries(emulator, lambda _: video_operator(output_path=f"{disk.path}/clip.mp4"))
    assert isinstance(tries.last, InvalidOutputPathError)
    assert "is on a read-only filesystem" in str(tries.last)
    assert tries.posts == 0


# (case id, output_path from tmp_path, where the video must land, relative to tmp_path)
NORMALISED: list[tuple[str, Any, str]] = [
    ("dot-dot through a directory not yet there", lambda t: f"{t}/new/../clip.mp4", "clip.mp4"),
    ("dot-dot into a new directory", lambda t: f"{t}/a/b/../c/clip.mp4", "a/c/clip.mp4"),
    ("doubled slashes", lambda t: f"{t}//videos///clip.mp4", "videos/clip.mp4"),
    ("dot segments", lambda t: f"{t}/./videos/./clip.mp4", "videos/clip.mp4"),
    ("file URI without a host", lambda t: f"file://{t}/clip.mp4", "clip.mp4"),
    ("file URI with localhost", lambda t: f"file://localhost{t}/uri/clip.mp4", "uri/clip.mp4"),
    ("percent-encoded file URI", lambda t: f"file://{t}/my%20clip.mp4", "my clip.mp4"),
    ("surrounding whitespace from a template", lambda t: f"\n  {t}/clip.mp4 \n", "clip.mp4"),
    ("a pathlib.Path", lambda t: t / "path" / "clip.mp4", "path/clip.mp4"),
    ("no suffix", lambda t: f"{t}/clip", "clip"),
]


@pytest.mark.parametrize(("make_path", "lands_at"), [pytest.param(p, w, id=i) for i, p, w in NORMALISED])
def test_valid_output_path_is_normalised_once_and_returned(
    emulator: Any, tmp_path: Path, make_path: Any, lands_at: str
) -> None:
    tries = run_tries(emulator, lambda _: video_operator(output_path=make_path(tmp_path)))
    expected = str(tmp_path / lands_at)
    assert tries.last == expected, "the task returns the one normalised form"
    assert is_mp4(expected)
    assert tries.ti is not None
    assert tries.ti.xcom["output_paths"] == [expected]
    assert tries.posts == 1
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]
    assert leftovers == []
