"""Clips that match the request: an MP4 of the asked duration and frame size, with an AAC track
when audio was asked for, so a downstream task (concatenate, check a duration, cut a thumbnail)
can be tested for real.

Rendered with PyAV (``pip install "orvideo-emulator[render]"``: a wheel with its own FFmpeg, no
system ffmpeg), cheaply: H.264 at 2 frames per second, every frame the same flat colour (chosen
from the prompt) with the prompt's first words written across it in a blocky 5x7 font, silent
audio. Without PyAV, :func:`render_clip` returns ``None`` and the emulator serves its fixed sample.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Mapping
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

FPS = 2
AUDIO_RATE = 48_000
DEFAULT_DURATION = 4
DEFAULT_RESOLUTION = "720p"
DEFAULT_ASPECT_RATIO = "16:9"
MAX_SIDE = 4096
"""Larger frames are not rendered (the sample is served): a request can ask for anything."""
MAX_DURATION = 60

# A 5x7 font: each glyph is seven rows of five bits ("#" = ink). Letters are upper case.
_FONT_ROWS = {
    "A": " ### |#   #|#   #|#####|#   #|#   #|#   #",
    "B": "#### |#   #|#   #|#### |#   #|#   #|#### ",
    "C": " ####|#    |#    |#    |#    |#    | ####",
    "D": "#### |#   #|#   #|#   #|#   #|#   #|#### ",
    "E": "#####|#    |#    |#### |#    |#    |#####",
    "F": "#####|#    |#    |#### |#    |#    |#    ",
    "G": " ####|#    |#    |#  ##|#   #|#   #| ####",
    "H": "#   #|#   #|#   #|#####|#   #|#   #|#   #",
    "I": "#####|  #  |  #  |  #  |  #  |  #  |#####",
    "J": "  ###|   # |   # |   # |#  # |#  # | ##  ",
    "K": "#   #|#  # |# #  |##   |# #  |#  # |#   #",
    "L": "#    |#    |#    |#    |#    |#    |#####",
    "M": "#   #|## ##|# # #|#   #|#   #|#   #|#   #",
    "N": "#   #|##  #|# # #|#  ##|#   #|#   #|#   #",
    "O": " ### |#   #|#   #|#   #|#   #|#   #| ### ",
    "P": "#### |#   #|#   #|#### |#    |#    |#    ",
    "Q": " ### |#   #|#   #|#   #|# # #|#  # | ## #",
    "R": "#### |#   #|#   #|#### |# #  |#  # |#   #",
    "S": " ####|#    |#    | ### |    #|    #|#### ",
    "T": "#####|  #  |  #  |  #  |  #  |  #  |  #  ",
    "U": "#   #|#   #|#   #|#   #|#   #|#   #| ### ",
    "V": "#   #|#   #|#   #|#   #|#   #| # # |  #  ",
    "W": "#   #|#   #|#   #|#   #|# # #|## ##|#   #",
    "X": "#   #|#   #| # # |  #  | # # |#   #|#   #",
    "Y": "#   #|#   #| # # |  #  |  #  |  #  |  #  ",
    "Z": "#####|    #|   # |  #  | #   |#    |#####",
    "0": " ### |#   #|#  ##|# # #|##  #|#   #| ### ",
    "1": "  #  | ##  |  #  |  #  |  #  |  #  | ### ",
    "2": " ### |#   #|    #|   # |  #  | #   |#####",
    "3": "#### |    #|    #| ### |    #|    #|#### ",
    "4": "   # |  ## | # # |#  # |#####|   # |   # ",
    "5": "#####|#    |#### |    #|    #|#   #| ### ",
    "6": " ### |#    |#    |#### |#   #|#   #| ### ",
    "7": "#####|    #|   # |  #  |  #  |  #  |  #  ",
    "8": " ### |#   #|#   #| ### |#   #|#   #| ### ",
    "9": " ### |#   #|#   #| ####|    #|    #| ### ",
    "-": "     |     |     |#####|     |     |     ",
    ".": "     |     |     |     |     | ##  | ##  ",
    " ": "     |     |     |     |     |     |     ",
}
_FONT = {char: [row for row in rows.split("|")] for char, rows in _FONT_ROWS.items()}
_HEIGHTS = {
    "360p": 360,
    "480p": 480,
    "720p": 720,
    "768p": 768,
    "1080p": 1080,
    "1K": 1080,
    "2K": 1440,
    "4K": 2160,
}
"""The short side of each resolution of the API's enum (``1K``/``2K``/``4K`` as 1080/1440/2160)."""


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def frame_size(request: Mapping[str, Any]) -> tuple[int, int]:
    """Width and height for a request: ``size`` if given, else ``resolution`` (the short side)
    and ``aspect_ratio`` (defaults 720p, 16:9), rounded to even numbers as H.264 needs."""
    size = request.get("size")
    if isinstance(size, str) and (match := re.fullmatch(r"(\d+)x(\d+)", size)):
        return _even(int(match[1])), _even(int(match[2]))
    short = _HEIGHTS.get(str(request.get("resolution")), _HEIGHTS[DEFAULT_RESOLUTION])
    ratio = request.get("aspect_ratio") or DEFAULT_ASPECT_RATIO
    match = re.fullmatch(r"(\d+):(\d+)", str(ratio))
    wide, tall = (int(match[1]), int(match[2])) if match else (16, 9)
    if wide >= tall:
        return _even(short * wide / tall), _even(short)
    return _even(short), _even(short * tall / wide)


def _duration(request: Mapping[str, Any]) -> int:
    duration = request.get("duration")
    return duration if isinstance(duration, int) and not isinstance(duration, bool) else DEFAULT_DURATION


def _caption(prompt: Any) -> str:
    words = re.sub(r"[^A-Z0-9 .-]", " ", str(prompt or "").upper()).split()
    return " ".join(words[:4]) or "ORVIDEO"


def _luma_plane(width: int, height: int, stride: int, background: int, caption: str) -> bytes:
    """The Y plane (rows of ``stride`` bytes): ``background`` with ``caption`` in near white,
    as large as fits nine tenths of the width."""
    plane = bytearray([background]) * (stride * height)
    cell = 6  # 5 columns of glyph, 1 of spacing
    scale = max(1, min(width * 9 // (10 * cell * max(1, len(caption))), height // 20))
    left = max(0, (width - len(caption) * cell * scale) // 2)
    top = max(0, (height - 7 * scale) // 2)
    ink = bytes([235]) * scale
    for index, char in enumerate(caption):
        rows = _FONT.get(char, _FONT[" "])
        for row_index, row in enumerate(rows):
            for column, bit in enumerate(row):
                if bit != "#":
                    continue
                x = left + (index * cell + column) * scale
                if x + scale > width:
                    continue
                for dy in range(scale):
                    y = top + row_index * scale + dy
                    if y < height:
                        plane[y * stride + x : y * stride + x + scale] = ink
    return bytes(plane)


@lru_cache(maxsize=32)
def _render(duration: int, width: int, height: int, audio: bool, prompt: str) -> bytes:
    import av  # the optional dependency: ImportError is handled by render_clip

    digest = hashlib.sha256(prompt.encode()).digest()
    background, blue, red = 40 + digest[0] % 100, digest[1], digest[2]
    # faststart (the index, moov, before the media, so a player can start while it streams)
    # rewrites the file at the end, which FFmpeg does only on a real file.
    scratch = tempfile.TemporaryDirectory(prefix="orvideo-render-")
    path = Path(scratch.name) / "clip.mp4"
    with scratch, av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "stillimage"}
        frame = av.VideoFrame(width, height, "yuv420p")
        luma, u_plane, v_plane = frame.planes
        luma.update(_luma_plane(width, height, luma.line_size, background, _caption(prompt)))
        u_plane.update(bytes([blue]) * u_plane.buffer_size)
        v_plane.update(bytes([red]) * v_plane.buffer_size)
        sound = container.add_stream("aac", rate=AUDIO_RATE) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for index in range(duration * FPS):
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode())  # flush
        if sound is not None:
            samples, chunk = duration * AUDIO_RATE, 1024
            for start in range(0, samples, chunk):
                silence = av.AudioFrame(format="fltp", layout="mono", samples=min(chunk, samples - start))
                silence.planes[0].update(bytes(silence.planes[0].buffer_size))
                silence.sample_rate = AUDIO_RATE
                silence.pts = start
                silence.time_base = Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(silence))
            container.mux(sound.encode())  # flush
        container.close()
        return path.read_bytes()


def render_clip(request: Mapping[str, Any]) -> bytes | None:
    """The MP4 for a submitted request, or ``None`` when PyAV is missing or the frame is larger
    than :data:`MAX_SIDE` (the caller then serves the fixed sample)."""
    width, height = frame_size(request)
    duration = _duration(request)
    if max(width, height) > MAX_SIDE or not 0 < duration <= MAX_DURATION:
        return None
    try:
        return _render(
            duration, width, height, request.get("generate_audio") is True, str(request.get("prompt") or "")
        )
    except ImportError:
        return None
