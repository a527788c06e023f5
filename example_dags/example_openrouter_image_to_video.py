"""Image-to-video: an upstream task makes a product still, the render animates it.

``make_product_still`` stands in for whatever produces your image (a render, a photo from a
bucket, a chart). It returns a ``data:`` URL because Airflow cannot pass raw bytes through XCom;
returning a path or an object storage URI (``s3://bucket/stills/x.png``) works the same way when
the workers share that storage. The operator sniffs the image type from the content and sends it
as the first frame; the last frame comes from a fixed file next to this DAG when present.
"""

from __future__ import annotations

import os
import struct
import zlib

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_orvideo.media import to_data_url
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

OUTPUT_DIR = os.environ.get("ORVIDEO_OUTPUT_DIR", "/tmp/orvideo")


def _png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG, written with the standard library only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(colour) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


with DAG(
    dag_id="openrouter_image_to_video",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    params={"sku": "mug-042"},
    tags=["openrouter", "video", "example"],
) as dag:

    @task
    def make_product_still(sku: str) -> str:
        return to_data_url(_png(64, 36, (200, 40, 40) if sku.endswith("2") else (40, 40, 200)))

    OpenRouterVideoOperator(
        task_id="animate_still",
        prompt="The product slowly rotates on a studio turntable, soft light",
        model=os.environ.get("ORVIDEO_MODEL", "google/veo-3.1-fast"),
        frame_images={"first_frame": make_product_still("{{ params.sku }}")},
        duration=4,
        aspect_ratio="16:9",
        generate_audio=False,
        output_path=OUTPUT_DIR + "/products/{{ params.sku }}-{{ dag_run.run_after | ts_nodash }}.mp4",
        max_cost_usd=2.0,
    )


if __name__ == "__main__":
    dag.test()
