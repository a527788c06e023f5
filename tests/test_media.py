from __future__ import annotations

import base64
from pathlib import Path

import pytest

from airflow_provider_orvideo.exceptions import InvalidVideoRequestError
from airflow_provider_orvideo.media import (
    MediaKind,
    resolve_frame_images,
    resolve_input_references,
    resolve_source,
    sniff_mime,
    to_data_url,
)
from tests.helpers import MP3_BYTES, png_bytes

SAMPLE_MP4 = (
    Path(__file__).resolve().parent.parent / "emulator" / "src" / "orvideo_emulator" / "assets" / "sample.mp4"
)


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (png_bytes(), "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (MP3_BYTES, "audio/mpeg"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"fLaC\x00\x00", "audio/flac"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "audio/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00", "video/quicktime"),
        (b"\x1a\x45\xdf\xa3\x9f", "video/webm"),
        (b"hello, world", None),
        (b"%PDF-1.7", None),
    ],
)
def test_sniff_mime(data: bytes, mime: str | None) -> None:
    assert sniff_mime(data) == mime


def test_sample_video_is_sniffed_as_mp4() -> None:
    assert sniff_mime(SAMPLE_MP4.read_bytes()) == "video/mp4"


def test_https_urls_are_sent_as_is_and_kind_guessed_from_the_name() -> None:
    media = resolve_source("f", "https://cdn.example/a/b.png?token=SECRET")
    assert media.url == "https://cdn.example/a/b.png?token=SECRET"
    assert media.kind is MediaKind.IMAGE
    assert "SECRET" not in media.description
    assert resolve_source("f", "https://cdn.example/render").kind is None


def test_files_become_data_urls_with_the_sniffed_type(tmp_path: Path) -> None:
    disguised = tmp_path / "photo.jpg"  # the name says JPEG, the content is PNG
    disguised.write_bytes(png_bytes())
    for source in (str(disguised), disguised, disguised.as_uri()):
        media = resolve_source("f", source)
        assert media.url.startswith("data:image/png;base64,")
        assert base64.b64decode(media.url.split(",", 1)[1]) == png_bytes()
        assert media.kind is MediaKind.IMAGE


def test_bytes_and_to_data_url() -> None:
    assert resolve_source("f", png_bytes()).url == to_data_url(png_bytes())
    assert resolve_source("f", bytearray(MP3_BYTES)).kind is MediaKind.AUDIO


def test_object_storage_sources_are_read_through_airflow() -> None:
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    path = ObjectStoragePath("memory://bucket/frames/first.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes())
    for source in (path, "memory://bucket/frames/first.png"):
        assert resolve_source("f", source).url == to_data_url(png_bytes())


def test_valid_data_urls_pass_and_trust_the_content() -> None:
    url = "data:image/jpeg;base64," + base64.b64encode(png_bytes()).decode()
    media = resolve_source("f", url)
    assert media.url == url
    assert media.mime == "image/png"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("http://cdn.example/a.png", "plain http URL"),
        ("data:image/png,notbase64", "not of the form"),
        ("data:image/png;base64,@@@@", "valid base64"),
        ("", "is empty"),
        (12345, "is not a media source"),
        ("/no/such/file.png", "cannot be read"),
    ],
)
def test_bad_sources_name_the_field(source: object, fragment: str) -> None:
    with pytest.raises(InvalidVideoRequestError, match=fragment) as info:
        resolve_source("frame_images['first_frame']", source)
    assert "frame_images['first_frame']" in str(info.value)


def test_unrecognised_content_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    with pytest.raises(InvalidVideoRequestError, match="not a recognised image, audio or video file"):
        resolve_source("f", str(notes))


def test_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as handle:
        handle.truncate(40 * 1024 * 1024)  # sparse: nothing is written or read
    with pytest.raises(
        InvalidVideoRequestError, match=r"huge.png is 41,943,040 bytes, 55,924,056 once base64"
    ):
        resolve_source("f", str(huge))


def test_frames_must_be_images_of_known_frame_types(tmp_path: Path) -> None:
    frames = resolve_frame_images({"first_frame": png_bytes(), "last_frame": "https://x.example/end"})
    assert [frame_type for frame_type, _ in frames] == ["first_frame", "last_frame"]
    with pytest.raises(InvalidVideoRequestError, match="'middle_frame' is not a frame type"):
        resolve_frame_images({"middle_frame": png_bytes()})
    with pytest.raises(InvalidVideoRequestError, match="is audio/mpeg, not an image"):
        resolve_frame_images({"first_frame": MP3_BYTES})
    with pytest.raises(InvalidVideoRequestError, match="must be a dict"):
        resolve_frame_images([png_bytes()])


def test_references_map_to_their_kinds() -> None:
    refs = resolve_input_references(
        [
            png_bytes(),
            MP3_BYTES,
            "https://x.example/clip.mp4",
            {"kind": "video", "source": "https://x.example/v"},
        ]
    )
    assert [kind for kind, _ in refs] == [MediaKind.IMAGE, MediaKind.AUDIO, MediaKind.VIDEO, MediaKind.VIDEO]
    with pytest.raises(InvalidVideoRequestError, match="cannot be told from its name"):
        resolve_input_references(["https://x.example/v"])
    with pytest.raises(InvalidVideoRequestError, match="declared audio but its content is image"):
        resolve_input_references([{"kind": "audio", "source": png_bytes()}])
    with pytest.raises(InvalidVideoRequestError, match="must be a list"):
        resolve_input_references("https://x.example/a.png")
