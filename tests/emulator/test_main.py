"""``python -m orvideo_emulator`` as a real separate process."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import pytest


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_module_entry_point(stop_signal: signal.Signals) -> None:
    command = [sys.executable, "-m", "orvideo_emulator", "--port", "0", "--api-key", "k"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"OpenRouter emulator listening on (http://127\.0\.0\.1:(\d+)/api/v1)\n", line)
        assert match, line
        assert int(match[2]) > 0
        models = httpx.get(f"{match[1]}/videos/models", timeout=5)
        assert models.status_code == 200
        assert models.json()["data"]
        submitted = httpx.post(
            f"{match[1]}/videos",
            json={"model": "google/veo-3.1", "prompt": "p"},
            headers={"Authorization": "Bearer k"},
            timeout=5,
        )
        assert submitted.status_code == 202
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert (stdout, stderr) == ("", "")


def test_help_documents_every_option_with_its_default() -> None:
    usage = subprocess.run(
        [sys.executable, "-m", "orvideo_emulator", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(usage.split())
    for option, default in [
        ("--port", "0"),
        ("--host", "127.0.0.1"),
        ("--api-key", "emulator-key"),
        ("--pending-seconds", "1.0"),
        ("--in-progress-seconds", "2.0"),
    ]:
        assert re.search(rf"{option} \S+ .*?\(default: {re.escape(default)}\)", flat), (option, usage)
