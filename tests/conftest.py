"""Shared fixtures: one real emulator per test session, reset before every test that uses it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from orvideo_emulator import EmulatorControl, EmulatorServer

from tests.s3 import s3, s3_endpoint  # noqa: F401 - fixtures: a real S3 server (moto) and a bucket

EMULATOR_API_KEY = "test-emulator-key"


@dataclass(frozen=True)
class Emulator:
    """What a test needs to talk to the emulator and to script it."""

    server: EmulatorServer
    base_url: str
    control: EmulatorControl
    api_key: str


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """Short job timings keep lifecycle tests fast; tests needing others set job defaults."""
    with EmulatorServer(api_key=EMULATOR_API_KEY, pending_seconds=0.2, in_progress_seconds=0.5) as server:
        yield server


@pytest.fixture(scope="session")
def _emulator_control(emulator_server: EmulatorServer) -> Iterator[EmulatorControl]:
    with EmulatorControl(emulator_server.origin) as control:
        yield control


@pytest.fixture(autouse=True)
def _own_spend_ledger(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test books its jobs in a spend ledger of its own (never ``~/airflow``)."""
    monkeypatch.setenv(
        "AIRFLOW__OPENROUTER__LEDGER_PATH", str(tmp_path_factory.mktemp("ledger") / "orvideo_ledger.sqlite")
    )


@pytest.fixture
def emulator(
    emulator_server: EmulatorServer,
    _emulator_control: EmulatorControl,
    monkeypatch: pytest.MonkeyPatch,
) -> Emulator:
    """A clean emulator, also wired up as Airflow's default ``openrouter`` connection (and no
    ``GET /key`` answer cached from another test's emulator state)."""
    from airflow_provider_orvideo.hooks import openrouter_video

    _emulator_control.reset()
    openrouter_video._key_cache.clear()
    connection = {"conn_type": "openrouter", "host": emulator_server.base_url, "password": EMULATOR_API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_DEFAULT", json.dumps(connection))
    return Emulator(
        server=emulator_server,
        base_url=emulator_server.base_url,
        control=_emulator_control,
        api_key=EMULATOR_API_KEY,
    )
