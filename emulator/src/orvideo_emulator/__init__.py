"""A local emulator of OpenRouter's asynchronous video API, for tests and demos.

``EmulatorServer`` serves the API on 127.0.0.1; ``EmulatorControl`` scripts it (job
outcomes, faults) and reads back what clients sent.
"""

from __future__ import annotations

__version__ = "0.1.0"

from orvideo_emulator.control import EmulatorControl
from orvideo_emulator.server import EmulatorServer

__all__ = ["EmulatorControl", "EmulatorServer", "__version__"]
