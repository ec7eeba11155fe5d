"""The train stage: read a CTC sequence's frames, masks and lineage, and train the network on them.

Training writes a model folder, not the store, so it records no run; the folder keeps its own
provenance (the dataset, sequence, frames and command) in ``config.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trackdb.errors import InputError
from trackdb.io import ctc


def run_train(dataset: Path, seq: str, frames: range, out_dir: Path, **options: Any) -> dict[str, Any]:
    """Train on ``DATASET/SEQ`` frames ``frames`` (raw + ``SEQ_GT/TRA`` masks and lineage);
    ``options`` are :func:`inference.train.train`'s keyword arguments."""
    from inference.train import train

    dataset = Path(dataset)
    raw_files = ctc.frame_files(dataset / seq, "t")
    gt_dir = dataset / f"{seq}_GT" / "TRA"
    mask_files = ctc.frame_files(gt_dir, "man_track")
    tracks = ctc.read_man_track(gt_dir / "man_track.txt")
    n = min(len(raw_files), len(mask_files))
    if len(frames) < 2 or frames.start < 0 or frames.stop > n:
        raise InputError(
            f"--frames {frames.start}:{frames.stop} must hold at least 2 of the {n} frames of {dataset / seq} (0:{n})"
        )
    images = [ctc.read_tiff(raw_files[t]) for t in frames]
    masks = [ctc.read_tiff(mask_files[t]) for t in frames]
    parent = {int(lab): int(par) for lab, _, _, par in tracks.tolist()}
    source = {"dataset": str(dataset.resolve()), "seq": seq}
    try:
        return train(images, masks, parent, list(frames), out_dir, source=source, **options)
    except (ValueError, FileNotFoundError) as exc:  # the training room's refusal of these inputs
        raise InputError(str(exc)) from exc
