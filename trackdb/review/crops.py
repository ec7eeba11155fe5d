"""A crop of one frame as a PNG: the pixels, every selected cell's outline and id drawn over them.

The crop is enlarged by an integer factor (nearest neighbour, so pixels stay pixels) and the
outlines are traced at display resolution, one pixel wide however small the cell. Colours say
how a cell relates to the one under review: the cell itself, its mother(s) and daughters in the
solution, everyone else.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trackdb.store.review import CellMask

DISPLAY_PX = 360  # the most a crop's side takes on screen (integer enlargement, so up to 2x less)
ROLE_COLOURS: dict[str, tuple[int, int, int]] = {
    "focus": (255, 221, 0),
    "mother": (255, 80, 200),
    "daughter": (0, 220, 255),
    "other": (90, 230, 90),
}


@dataclass(frozen=True)
class CropBox:
    """The frame region shown, ``[lo, hi)`` in ``(y, x)``, and the display scale."""

    lo: tuple[int, int]
    hi: tuple[int, int]
    scale: int

    @classmethod
    def around(
        cls, centroid: tuple[float, ...], lo: tuple[int, ...], hi: tuple[int, ...], shape: tuple[int, ...]
    ) -> CropBox:
        """A square window centred on a cell, large enough for the cell and its neighbours'
        motion (three times its longer side, at least 64 px), shifted to stay inside the frame."""
        extent = max(hi[-2] - lo[-2], hi[-1] - lo[-1])
        side = int(min(max(64, 3 * extent), shape[-2], shape[-1]))
        y0 = int(round(centroid[-2] - side / 2))
        x0 = int(round(centroid[-1] - side / 2))
        y0 = min(max(0, y0), shape[-2] - side)
        x0 = min(max(0, x0), shape[-1] - side)
        return cls((y0, x0), (y0 + side, x0 + side), max(1, DISPLAY_PX // side))


def _normalise(img: np.ndarray) -> np.ndarray:
    """uint8 grey levels, stretched between the crop's 1st and 99.5th percentiles."""
    data = img.astype(np.float32)
    lo, hi = np.percentile(data, [1.0, 99.5]) if data.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((data - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)


def _labels(cells: list[CellMask], box: CropBox, z: int | None) -> np.ndarray:
    """Index image of the crop (0 = background, i + 1 = ``cells[i]``)."""
    (y0, x0), (y1, x1) = box.lo, box.hi
    out = np.zeros((y1 - y0, x1 - x0), np.int32)
    for i, c in enumerate(cells):
        mask = c.mask
        if z is not None:  # 3D: the slice of the reviewed cell's centre
            k = z - c.lo[0]
            if not 0 <= k < mask.shape[0]:
                continue
            mask = mask[k]
        cy, cx = c.lo[-2], c.lo[-1]
        sy0, sx0 = max(y0, cy), max(x0, cx)
        sy1, sx1 = min(y1, cy + mask.shape[0]), min(x1, cx + mask.shape[1])
        if sy0 >= sy1 or sx0 >= sx1:
            continue
        part = mask[sy0 - cy : sy1 - cy, sx0 - cx : sx1 - cx]
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0][part] = i + 1
    return out


def _outline(labels: np.ndarray) -> np.ndarray:
    """Pixels of a label image whose 4-neighbourhood leaves their label (inner boundary)."""
    pad = np.pad(labels, 1, mode="edge")
    inner = pad[1:-1, 1:-1]
    edge = np.zeros(labels.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= pad[dy : dy + labels.shape[0], dx : dx + labels.shape[1]] != inner
    return edge & (labels > 0)


def render_crop(
    frame: np.ndarray,
    cells: list[CellMask],
    box: CropBox,
    roles: Mapping[int, str],
    *,
    z: int | None = None,
) -> bytes:
    """PNG bytes of ``frame`` inside ``box`` with ``cells`` outlined in the colour of their role
    (``roles``: node id → ``focus`` / ``mother`` / ``daughter``; others are ``other``) and labelled
    with their node ids. ``z``: the slice shown of a 3D frame."""
    (y0, x0), (y1, x1) = box.lo, box.hi
    plane = frame[z] if z is not None else frame
    grey = np.repeat(np.repeat(_normalise(plane[y0:y1, x0:x1]), box.scale, 0), box.scale, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    labels = np.repeat(np.repeat(_labels(cells, box, z), box.scale, 0), box.scale, 1)
    edge = _outline(labels)
    colours = np.array([(0, 0, 0)] + [ROLE_COLOURS[roles.get(c.node_id, "other")] for c in cells], np.uint8)
    rgb[edge] = colours[labels[edge]]
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(11, 4 * box.scale))
    present = np.zeros(len(cells) + 1, bool)
    present[np.unique(labels)] = True
    for i, c in enumerate(cells):
        if not present[i + 1]:
            continue
        cy = min(max(c.centroid[-2], y0), y1 - 1)
        cx = min(max(c.centroid[-1], x0), x1 - 1)
        xy = ((cx - x0 + 0.5) * box.scale, (cy - y0 + 0.5) * box.scale)
        draw.text(
            xy,
            str(c.node_id),
            fill=ROLE_COLOURS[roles.get(c.node_id, "other")],
            font=font,
            anchor="mm",
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
