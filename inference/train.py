"""Training of the EmbedTrack network on Cell Tracking Challenge data (masks + lineage).

Recipe (EmbedTrack sec. 3, methods.md A3): object-centred crops of frame pairs (t, t-1), random
dihedral augmentation (rot90 × flip), percentile normalisation, Adam (lr 5e-4, wd 1e-4) with a
one-cycle schedule, mixed precision on CUDA, medoid centres, fixed seed. Deviation: the one-cycle
position is ``max(step/steps, elapsed/time_limit)``, so a run given a wall-clock budget still ends
with the annealed learning rate (we train on 2 shared CPU cores).

:func:`train` takes the frames as arrays (raw images, tracking masks, lineage); reading them from
a CTC folder is the caller's: ``trackdb train DATASET --seq 01 --frames 0:40 --out MODEL_DIR``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from inference.loss import DEFAULT_PIXEL_SCALE, FrameTargets, SpatialEmbeddingLoss, instance_iou
from inference.model import BranchedERFNet, count_parameters
from inference.model_io import model_config, save_model
from inference.normalise import DEFAULT_PERCENTILES, normalise_percentile


# ----------------------------------------------------------------------------------- data
@dataclass
class TrainingFrames:
    """Consecutive frames in memory: normalised images, label masks, medoids and lineage."""

    images: list[np.ndarray]  # float32, normalised
    masks: list[np.ndarray]  # int32
    centres: list[dict[int, np.ndarray]]  # label -> medoid (D,) in pixels
    parent: dict[int, int]  # CTC man_track parent (0 = none)
    frames: list[int]


def medoid(coords: np.ndarray, max_points: int = 1500) -> np.ndarray:
    """Pixel of the set minimising the summed distance to all others (EmbedTrack CENTER="medoid").

    O(n²); above ``max_points`` the candidates are a fixed, evenly strided subset."""
    c = coords.astype(np.float64)
    cand = c if len(c) <= max_points else c[:: int(math.ceil(len(c) / max_points))]
    total = np.zeros(len(cand))
    for i in range(0, len(c), 2048):
        total += np.sqrt(((cand[:, None, :] - c[None, i : i + 2048, :]) ** 2).sum(-1)).sum(1)
    return np.asarray(cand[int(np.argmin(total))])


def frame_medoids(mask: np.ndarray) -> dict[int, np.ndarray]:
    """label -> medoid (pixel coordinates) for every object of a label image."""
    out: dict[int, np.ndarray] = {}
    for lab, sl in enumerate(ndimage.find_objects(mask), start=1):
        if sl is None:
            continue
        coords = np.argwhere(mask[sl] == lab) + np.array([s.start for s in sl])
        out[lab] = medoid(coords)
    return out


def training_frames(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    parent: Mapping[int, int],
    frames: Sequence[int],
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> TrainingFrames:
    """The frames :func:`train` samples from: images normalised, the masks' medoids found.

    Raises ValueError unless there are at least 2 consecutive frames, one image and one mask of
    the same shape per frame.
    """
    idx = [int(t) for t in frames]
    if len(idx) < 2 or len(images) != len(idx) or len(masks) != len(idx):
        raise ValueError(
            f"need one image and one mask per frame and at least 2 frames, got {len(images)} images, "
            f"{len(masks)} masks, {len(idx)} frames"
        )
    if np.any(np.diff(idx) != 1):
        raise ValueError(f"frames must be consecutive (the model learns one-frame motion), got {idx}")
    norm, labels, centres = [], [], []
    for t, img, msk in zip(idx, images, masks, strict=True):
        if img.shape != msk.shape:
            raise ValueError(f"frame {t}: image {img.shape} and mask {msk.shape} differ")
        m = np.asarray(msk).astype(np.int32)
        norm.append(normalise_percentile(img, *percentiles, what=f"frame {t}"))
        labels.append(m)
        centres.append(frame_medoids(m))
    return TrainingFrames(norm, labels, centres, {int(k): int(v) for k, v in parent.items()}, idx)


def dihedral_array(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """rot90 ``k`` times in the last two axes, then flip the second-last axis."""
    a = np.rot90(a, k, axes=(-2, -1))
    return a[..., ::-1, :] if flip else a


def dihedral_points(p: np.ndarray, k: int, flip: bool, size: int) -> np.ndarray:
    """The point transform matching :func:`dihedral_array` on a square crop of side ``size``."""
    p = np.array(p, dtype=np.float64, copy=True)
    for _ in range(k % 4):  # np.rot90: new[i, j] = old[j, size-1-i]
        y, x = p[..., -2].copy(), p[..., -1].copy()
        p[..., -2], p[..., -1] = size - 1 - x, y
    if flip:
        p[..., -2] = size - 1 - p[..., -2]
    return p


def _prev_centre(seqd: TrainingFrames, i: int, lab: int) -> np.ndarray:
    prev = seqd.centres[i - 1]
    if lab in prev:
        return prev[lab]
    par = seqd.parent.get(lab, 0)
    if par in prev:
        return prev[par]
    return np.full(seqd.images[0].ndim, np.nan)


def sample_pair(
    seqd: TrainingFrames, i: int, crop: int, rng: np.random.Generator, augment: bool
) -> tuple[np.ndarray, np.ndarray, FrameTargets, FrameTargets]:
    """An object-centred crop of frame pair (i, i-1) (indices into ``seqd``) and its targets."""
    img, msk = seqd.images[i], seqd.masks[i]
    shape = np.array(img.shape)
    labs = list(seqd.centres[i])
    if labs:
        c = seqd.centres[i][labs[int(rng.integers(len(labs)))]] + rng.uniform(-crop / 4, crop / 4, 2)
    else:
        c = rng.uniform(0, 1, 2) * shape
    o = np.clip(np.round(c - crop / 2).astype(int), 0, np.maximum(shape - crop, 0))
    sl = tuple(slice(int(a), int(a) + crop) for a in o)
    k, flip = (int(rng.integers(4)), bool(rng.integers(2))) if augment else (0, False)
    x_t = dihedral_array(img[sl], k, flip)
    x_p = dihedral_array(seqd.images[i - 1][sl], k, flip)
    if augment:  # mild intensity jitter, the same for both frames
        gain, shift = rng.uniform(0.85, 1.15), rng.uniform(-0.08, 0.08)
        x_t, x_p = x_t * gain + shift, x_p * gain + shift

    def targets(m: np.ndarray, cdict: dict[int, np.ndarray], with_prev: bool) -> FrameTargets:
        mc = np.ascontiguousarray(dihedral_array(m[sl], k, flip))
        ids = np.unique(mc)
        ids = ids[ids > 0]
        cen = np.array([cdict[int(j)] for j in ids]).reshape(-1, 2) - o
        cen = dihedral_points(cen, k, flip, crop)
        prev = None
        if with_prev:
            pr = np.array([_prev_centre(seqd, i, int(j)) for j in ids]).reshape(-1, 2) - o
            prev = torch.from_numpy(dihedral_points(pr, k, flip, crop))
        return FrameTargets(
            torch.from_numpy(mc.astype(np.int64)), torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(cen), prev
        )

    return (
        np.ascontiguousarray(x_t),
        np.ascontiguousarray(x_p),
        targets(msk, seqd.centres[i], True),
        targets(seqd.masks[i - 1], seqd.centres[i - 1], False),
    )


def make_batch(
    seqd: TrainingFrames, idx: list[int], crop: int, rng: np.random.Generator, augment: bool
) -> tuple[torch.Tensor, torch.Tensor, list[FrameTargets], list[FrameTargets]]:
    xs, ps, tt, tp = [], [], [], []
    for i in idx:
        x, p, a, b = sample_pair(seqd, i, crop, rng, augment)
        xs.append(x)
        ps.append(p)
        tt.append(a)
        tp.append(b)
    return (torch.from_numpy(np.stack(xs))[:, None].float(), torch.from_numpy(np.stack(ps))[:, None].float(), tt, tp)


def one_cycle_lr(progress: float, max_lr: float, pct_start: float = 0.3) -> float:
    """Cosine one-cycle (Smith 2018; PyTorch ``OneCycleLR`` defaults: start max/25, end start/1e4)."""
    lo, end = max_lr / 25.0, max_lr / 25.0 / 1e4
    p = min(max(progress, 0.0), 1.0)
    if p < pct_start:
        return lo + (max_lr - lo) * (1 - math.cos(math.pi * p / pct_start)) / 2
    q = (p - pct_start) / (1 - pct_start)
    return end + (max_lr - end) * (1 + math.cos(math.pi * q)) / 2


# ------------------------------------------------------------------------------- training
@torch.no_grad()
def validate(model: BranchedERFNet, batches: list[Any], device: torch.device, pixel_scale: float) -> float:
    """Mean GT-centred instance IoU (EmbedSeg ``cluster_with_gt``) on fixed validation crops."""
    model.eval()
    ious: list[float] = []
    for x, p, tt, _ in batches:
        seg_t, _, _ = model(x.to(device), p.to(device))
        for b in range(len(tt)):
            ious += instance_iou(seg_t[b], tt[b], pixel_scale)
    model.train()
    return float(np.mean(ious)) if ious else 0.0


def train(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    parent: Mapping[int, int],
    frames: Sequence[int],
    out_dir: str | Path,
    *,
    width: float = 0.5,
    crop: int = 128,
    batch: int = 4,
    steps: int = 2000,
    lr: float = 5e-4,
    weight_decay: float = 1e-4,
    val_pairs: int = 3,
    val_every: int = 100,
    checkpoint_every: int = 50,
    seed: int = 0,
    device: str | None = None,
    resume: bool = True,
    time_limit_s: float | None = None,
    num_threads: int | None = None,
    pixel_scale: float = DEFAULT_PIXEL_SCALE,
    command: str | None = None,
    init_from: str | Path | None = None,
    progress: bool = True,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on consecutive frames; writes a model folder to ``out_dir``.

    ``images`` are the raw frames (normalised here, as prediction does), ``masks`` their tracking
    label images, ``parent`` the lineage (label -> parent label, 0 = none: CTC ``man_track``),
    ``frames`` the movie index of each frame (consecutive). ``source`` (e.g. the dataset folder
    and sequence) and ``command`` are recorded in the model folder as its provenance.
    The last ``val_pairs`` frame pairs of the range are held out for validation IoU. The best
    validated weights are the model folder's ``weights.pt``; ``checkpoint.pt`` (weights, optimiser,
    RNG state, elapsed time) makes the run resumable. ``init_from`` (a model folder) starts from
    its weights with a fresh optimiser and schedule: a fine-tune continues a CPU-starved run
    without redoing its steps. Returns the metrics written to metrics.json.
    """
    from tqdm import tqdm

    if crop % 8:
        raise ValueError(f"crop must be a multiple of 8, got {crop}")
    init_cfg = _check_init(Path(init_from), width) if init_from is not None else None
    seqd = training_frames(images, masks, parent, frames)
    if num_threads:
        torch.set_num_threads(num_threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_pairs = len(seqd.frames) - 1
    val_pairs = min(val_pairs, max(n_pairs - 1, 0))
    train_idx = list(range(1, n_pairs + 1 - val_pairs))
    val_idx = list(range(n_pairs + 1 - val_pairs, n_pairs + 1)) or train_idx[-1:]
    vrng = np.random.default_rng(seed + 1)
    val_batches = [make_batch(seqd, [i] * 4, crop, vrng, augment=False) for i in val_idx]
    areas = np.concatenate([np.bincount(m.ravel())[1:] for m in seqd.masks])
    areas = areas[areas > 0]
    min_object_size = int(max(1, 0.5 * np.percentile(areas, 1))) if len(areas) else 1

    model = BranchedERFNet(ndim=2, in_channels=1, width=width).to(dev)
    loss_fn = SpatialEmbeddingLoss(ndim=2, pixel_scale=pixel_scale)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, elapsed, best, history = 0, 0.0, -1.0, []
    base_steps = 0
    if init_from is not None and init_cfg is not None:
        model.load_state_dict(torch.load(Path(init_from) / "weights.pt", map_location=dev, weights_only=True))
        base_steps = int(init_cfg.get("trained_steps", 0))
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.is_file():
        st = torch.load(ckpt, map_location=dev, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, elapsed, best, history = st["step"], st["elapsed"], st["best"], st["history"]
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
    cfg = model_config(
        model,
        pixel_scale=pixel_scale,
        normalise_percentiles=list(DEFAULT_PERCENTILES),
        crop=crop,
        **dict(source or {}),
        frames=[seqd.frames[0], seqd.frames[-1] + 1],
        min_object_size=min_object_size,
        embedding_dim=model.embedding_dim,
        parameters=count_parameters(model),
        **({"init_from": str(init_from), "init_steps": base_steps} if init_from is not None else {}),
    )

    def progress_frac() -> float:
        f = step / steps
        if time_limit_s:
            f = max(f, elapsed / time_limit_s)
        return f

    def save_checkpoint() -> None:
        tmp = out / "checkpoint.pt.tmp"
        torch.save(
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "elapsed": elapsed,
                "best": best,
                "history": history,
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
            },
            tmp,
        )
        tmp.replace(ckpt)

    def metrics(val: float) -> dict[str, Any]:
        return {
            "steps": step,
            "elapsed_s": round(elapsed, 1),
            "best_val_iou": round(best, 4),
            "last_val_iou": round(val, 4),
            "history": history[-50:],
            "train_pairs": len(train_idx),
            "val_frames": [seqd.frames[i] for i in val_idx],
            "parameters": count_parameters(model),
            "device": str(dev),
        }

    model.train()
    bar = tqdm(total=steps, initial=step, disable=not progress, desc="train", unit="step")
    running: dict[str, float] = {}
    while progress_frac() < 1.0:
        t0 = time.perf_counter()
        lr_now = one_cycle_lr(progress_frac(), lr)
        for g in opt.param_groups:
            g["lr"] = lr_now
        idx = [train_idx[int(j)] for j in rng.integers(len(train_idx), size=batch)]
        x, p, tt, tp = make_batch(seqd, idx, crop, rng, augment=True)
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
            seg_t, seg_p, trk = model(x.to(dev), p.to(dev))
        loss, terms = loss_fn(seg_t, seg_p, trk, tt, tp)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        step += 1
        elapsed += time.perf_counter() - t0
        for k, v in {"loss": float(loss.detach()), **terms}.items():
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()}, refresh=False)
        last = progress_frac() >= 1.0
        if step % val_every == 0 or last:
            t1 = time.perf_counter()
            val = validate(model, val_batches, dev, pixel_scale)
            elapsed += time.perf_counter() - t1
            history.append(
                {
                    "step": step,
                    "elapsed_s": round(elapsed, 1),
                    "lr": lr_now,
                    "val_iou": round(val, 4),
                    **{k: round(v, 4) for k, v in running.items()},
                }
            )
            print(json.dumps(history[-1]), file=sys.stderr, flush=True)  # progress, not results
            if val > best:
                best = val
                save_model(out, model, {**cfg, "trained_steps": base_steps + step}, metrics(val), command)
        if step % checkpoint_every == 0 or last:
            save_checkpoint()
    bar.close()
    if not (out / "weights.pt").is_file():
        save_model(out, model, {**cfg, "trained_steps": base_steps + step}, metrics(best), command)
    final = metrics(history[-1]["val_iou"] if history else best)
    (out / "metrics.json").write_text(json.dumps(final, indent=2, sort_keys=True))
    return final


def _check_init(folder: Path, width: float) -> dict[str, Any]:
    """The config of the model folder a fine-tune starts from, refused before anything is written."""
    cfg_path, w_path = folder / "config.json", folder / "weights.pt"
    for f in (cfg_path, w_path):
        if not f.is_file():
            raise FileNotFoundError(f"--init-from {folder}: missing {f.name}")
    cfg: dict[str, Any] = json.loads(cfg_path.read_text())
    if float(cfg.get("width", -1)) != float(width) or int(cfg.get("ndim", 2)) != 2:
        raise ValueError(
            f"--init-from {folder}: width {cfg.get('width')} / ndim {cfg.get('ndim')} "
            f"do not match this run (width {width}, ndim 2)"
        )
    return cfg
