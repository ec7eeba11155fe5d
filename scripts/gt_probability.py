"""Write a probability map derived from CTC ground truth (until the shipped model replaces it).

Smoothed masks with touching cells, noise, merged and split cells (``inference.synthetic``),
reproducible from the seed, as a Zarr array (T, Y, X) float32 chunked one frame at a time.

    python scripts/gt_probability.py DATASET/01_GT/TRA OUT.zarr [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inference.synthetic import prob_from_labels  # noqa: E402
from trackdb.io import ctc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("tra", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    files = ctc.frame_files(args.tra, "man_track")
    first = ctc.read_tiff(files[0])
    arr = zarr.create_array(
        str(args.out), shape=(len(files), *first.shape), chunks=(1, *first.shape), dtype=np.float32, overwrite=True
    )
    for t, f in enumerate(files):
        arr[t] = prob_from_labels(ctc.read_tiff(f), seed=args.seed + t)
    print(f"wrote {args.out} {arr.shape}")


if __name__ == "__main__":
    main()
