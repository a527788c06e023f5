"""``python -m orvideo_emulator``: run the emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal

from orvideo_emulator.server import EmulatorServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orvideo_emulator",
        description="Serve a local emulator of OpenRouter's video generation API.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--api-key", default="emulator-key", help="the only Bearer key accepted")
    parser.add_argument(
        "--pending-seconds",
        type=float,
        default=1.0,
        help="how long each job stays pending after its submission",
    )
    parser.add_argument(
        "--in-progress-seconds", type=float, default=2.0, help="how long each job then renders (in_progress)"
    )
    parser.add_argument(
        "--webhook-secret",
        default=None,
        help="sign webhooks sent to a job's callback_url with this secret (X-OpenRouter-Signature); "
        "without it they are sent unsigned",
    )
    args = parser.parse_args(argv)

    # Blocked before the server threads start, so they inherit the mask and only sigwait
    # below receives the signals: shutdown always runs here, in the main thread.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = EmulatorServer(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        pending_seconds=args.pending_seconds,
        in_progress_seconds=args.in_progress_seconds,
        webhook_secret=args.webhook_secret,
    ).start()
    print(f"OpenRouter emulator listening on {server.base_url}", flush=True)
    signal.sigwait(stop_signals)
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
