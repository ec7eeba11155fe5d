"""Prediction throughput of the EmbedTrack network: frames/s at 1024×1024, with and without TTA.

Prints one JSON object: CPU figures with ``--threads`` threads (frames/s, seconds per frame, peak
resident memory of a fresh process per configuration), the Zarr size on disk per frame (with and
without the embedding array), the machine's load average while measuring (the CPU is shared), and
CUDA figures when a GPU is present (else ``"cuda": null``).

Run: ``python benchmarks/inference_throughput.py [--model models/bacteria] [--frames 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, emit


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def one(
    model: str, n_frames: int, size: int, tta: bool, device: str, threads: int, embedding: bool
) -> dict[str, float | int | None]:
    """One configuration in this process (called in a fresh subprocess by :func:`main`)."""
    import numpy as np
    import torch
    from scipy import ndimage

    from inference.predict import predict_movie

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.random((size, size)).astype(np.float32), 4)
    frames = [np.roll(base, 3 * t, axis=1) * 255 for t in range(n_frames + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.zarr"
        # frame 0 warms the process up (allocator, kernels) and is not timed
        predict_movie(
            frames[:1], Path(tmp) / "warm.zarr", model, tta=tta, device=device, embedding=embedding, progress=False
        )
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        predict_movie(frames[1:], store, model, tta=tta, device=device, embedding=embedding, progress=False)
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        zarr_bytes = _dir_bytes(store / "pred")
    out: dict[str, float | int | None] = {
        "frames": n_frames,
        "seconds": round(dt, 2),
        "frames_per_s": round(n_frames / dt, 4),
        "s_per_frame": round(dt / n_frames, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "zarr_bytes_per_frame": int(zarr_bytes / n_frames),
    }
    if device == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _subprocess(
    args: argparse.Namespace, tta: bool, device: str, frames: int, embedding: bool = True
) -> dict[str, float | int | None]:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        "--model",
        args.model,
        "--size",
        str(args.size),
        "--threads",
        str(args.threads),
        "--device",
        device,
        "--frames",
        str(frames),
    ]
    cmd += ["--tta"] if tta else []
    cmd += [] if embedding else ["--no-embedding"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(ROOT / "models" / "bacteria"))
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=3, help="timed frames without TTA")
    ap.add_argument("--tta-frames", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--no-embedding", action="store_true")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        # one configuration for the parent process: its JSON line, not a recorded result
        emit(
            "inference_throughput",
            one(args.model, args.frames, args.size, args.tta, args.device, args.threads, not args.no_embedding),
            save=False,
            indent=None,
        )
        return
    import torch

    from inference.model_io import read_config

    cfg = read_config(args.model)
    load0 = os.getloadavg()[0]
    cpu = {
        "threads": args.threads,
        "no_tta": _subprocess(args, False, "cpu", args.frames),
        "tta": _subprocess(args, True, "cpu", args.tta_frames),
    }
    no_emb = _subprocess(args, False, "cpu", 1, embedding=False)
    cuda = None
    if torch.cuda.is_available():
        cuda = {
            "device": torch.cuda.get_device_name(0),
            "no_tta": _subprocess(args, False, "cuda", 10),
            "tta": _subprocess(args, True, "cuda", 5),
        }
    emit(
        "inference_throughput",
        {
            "benchmark": "inference_throughput",
            "image": [args.size, args.size],
            "model": str(args.model),
            "width": cfg["width"],
            "parameters": cfg.get("parameters"),
            "cpu": cpu,
            "cuda": cuda,
            "zarr_bytes_per_frame": {
                "with_embedding": cpu["no_tta"]["zarr_bytes_per_frame"],
                "without_embedding": no_emb["zarr_bytes_per_frame"],
            },
            "goal_cpu_frames_per_s_no_tta": 0.3,
            "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "cpu_count": os.cpu_count(),
        },
    )


if __name__ == "__main__":
    main()
