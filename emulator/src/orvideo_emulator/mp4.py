"""The downloadable video: the bundled sample MP4, optionally padded to an exact size.

Padding is one trailing top-level ``free`` box, so a file of any requested size stays a valid
MP4 that players and box parsers accept. Bytes are produced lazily by range so that a
multi-gigabyte output costs no more memory than one chunk.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import cache
from importlib.resources import files

_BOX_HEADER = 8
_LARGE_BOX_HEADER = 16
_MAX_32BIT_BOX = 0xFFFFFFFF


@cache
def sample_bytes() -> bytes:
    """The committed sample (H.264, 320x180, 2 s); read once per process."""
    return files("orvideo_emulator").joinpath("assets/sample.mp4").read_bytes()


def output_size_error(size: int, sample_size: int) -> str | None:
    """Why ``size`` can't be produced, or None: padding needs room for at least a box header."""
    if size == sample_size or size >= sample_size + _BOX_HEADER:
        return None
    return f"output_size must be {sample_size} (the sample) or at least {sample_size + _BOX_HEADER} bytes"


def _free_box_header(box_size: int) -> bytes:
    """A ``free`` box header; a 64-bit ``largesize`` one when the box won't fit in 32 bits."""
    if box_size <= _MAX_32BIT_BOX:
        return struct.pack(">I4s", box_size, b"free")
    return struct.pack(">I4sQ", 1, b"free", box_size)


class VideoFile:
    """A virtual file: sample, then (if padded) a free-box header, then zeros."""

    def __init__(self, sample: bytes, size: int | None = None) -> None:
        total = len(sample) if size is None else size
        if error := output_size_error(total, len(sample)):
            raise ValueError(error)
        pad = total - len(sample)
        header = _free_box_header(pad) if pad else b""
        self.size = total
        self._parts: list[tuple[bytes | None, int]] = [(sample, len(sample)), (header, len(header))]
        self._parts.append((None, pad - len(header)))

    def iter_range(self, start: int, end: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield bytes ``start..end`` (end exclusive) in chunks of at most ``chunk_size``."""
        zeros = bytes(chunk_size)
        offset = 0
        for data, length in self._parts:
            lo, hi = max(start, offset), min(end, offset + length)
            for pos in range(lo, hi, chunk_size):
                stop = min(pos + chunk_size, hi)
                if data is None:
                    yield zeros[: stop - pos]
                else:
                    yield data[pos - offset : stop - offset]
            offset += length
