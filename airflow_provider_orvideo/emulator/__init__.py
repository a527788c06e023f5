"""A local emulator of OpenRouter's asynchronous video API, for tests and demos.

``EmulatorServer`` serves the API on 127.0.0.1; ``EmulatorControl`` scripts it (job
outcomes, faults) and reads back what clients sent.
"""

from __future__ import annotations

from airflow_provider_orvideo.emulator.control import EmulatorControl
from airflow_provider_orvideo.emulator.server import EmulatorServer

__all__ = ["EmulatorControl", "EmulatorServer"]
