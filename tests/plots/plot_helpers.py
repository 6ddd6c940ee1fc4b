"""Seed 004's acceptance scenario, a simulated 50-epoch training run, and image readers.

Epochs 1..50. Train loss falls as `2 e^(-epoch/10) + 0.05`; eval loss follows it 0.1
higher and, past epoch 30, rises by 0.02 per epoch (overfitting: its best epoch is 30);
eval accuracy is `1 - eval loss / 3`. Every value is a float computed once here, so a
test compares what a figure holds with these lists exactly.
"""

from __future__ import annotations

import math
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

EPOCHS = list(range(1, 51))
TRAIN_LOSS = [2.0 * math.exp(-e / 10) + 0.05 for e in EPOCHS]
EVAL_LOSS = [t + 0.1 + 0.02 * max(0, e - 30) for e, t in zip(EPOCHS, TRAIN_LOSS, strict=True)]
ACCURACY = [1.0 - v / 3.0 for v in EVAL_LOSS]


def points(values: list[float]) -> list[dict[str, Any]]:
    return [{"step": e, "value": v} for e, v in zip(EPOCHS, values, strict=True)]


def simulated_series() -> list[dict[str, Any]]:
    """The run as `get_series` answers it: sorted by metric, then split."""
    return [
        {"metric": m, "split": s, "points": points(v), "total": 50, "downsampled": False}
        for m, s, v in (
            ("accuracy", "eval", ACCURACY),
            ("loss", "eval", EVAL_LOSS),
            ("loss", "train", TRAIN_LOSS),
        )
    ]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header (the IHDR chunk follows the 8-byte signature)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def decoded_shape(path: Path) -> tuple[int, ...]:
    """The decoded image's (rows, columns, channels), read by matplotlib itself."""
    from matplotlib.image import imread

    return tuple(imread(path).shape)


def svg_root(path: Path) -> ET.Element:
    """The parsed SVG document's root element (the file must be well-formed XML)."""
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root
