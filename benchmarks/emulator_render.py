"""How long the emulator takes to render a clip that matches a request (issue 13's target: at
most 1 s per job for clips up to 10 s at 1080p).

    python benchmarks/emulator_render.py [--repeat 5]

Each case renders ``--repeat`` times with a new prompt (no cache hit) and prints the median and
worst wall time, the clip's size in bytes, and what PyAV decodes back (frame size, duration,
audio codec).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import av
from orvideo_emulator.render import _render, frame_size, render_clip

CASES = [
    {"duration": 4, "resolution": "720p", "aspect_ratio": "16:9"},
    {"duration": 10, "resolution": "720p", "aspect_ratio": "16:9", "generate_audio": True},
    {"duration": 10, "resolution": "1080p", "aspect_ratio": "16:9"},
    {"duration": 10, "resolution": "1080p", "aspect_ratio": "9:16", "generate_audio": True},
    {"duration": 15, "resolution": "1080p", "aspect_ratio": "16:9", "generate_audio": True},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"PyAV {av.__version__}; {args.repeat} renders per case, a new prompt each time")
    print(f"{'request':58} {'median s':>9} {'max s':>7} {'bytes':>8}  decoded")
    for case in CASES:
        times, size = [], 0
        for attempt in range(args.repeat):
            _render.cache_clear()
            started = time.perf_counter()
            data = render_clip({**case, "prompt": f"Benchmark clip number {attempt} of a red kite"})
            times.append(time.perf_counter() - started)
            assert data is not None
            size = len(data)
        with av.open(io.BytesIO(data)) as container:
            video = container.streams.video[0].codec_context
            audio = [s.codec_context.name for s in container.streams.audio]
            decoded = f"{video.width}x{video.height} {container.duration / 1e6:.2f} s audio={audio or 'none'}"
        assert (video.width, video.height) == frame_size(case)
        label = ", ".join(f"{k}={v}" for k, v in case.items())
        print(f"{label:58} {statistics.median(times):9.3f} {max(times):7.3f} {size:8d}  {decoded}")


if __name__ == "__main__":
    main()
