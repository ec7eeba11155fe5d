"""Tiled, batched, optionally test-time-augmented prediction of a movie into Zarr.

Writes, in the movie's Zarr group (DESIGN.md, "Zarr layout"), ``pred/``:

* ``seediness (T,[Z,]Y,X) f16`` — sigmoid seediness (EmbedSeg eq. 4),
* ``offsets (T,D,…) f16`` — pixels from a pixel to its predicted instance centre (e = p + offset),
* ``sigma (T,D,…) f16`` — per-axis clustering bandwidth as a Gaussian std in pixels,
  σ = 1 / (pixel_scale · sqrt(2 · exp(10 · sigmoid(s)))), so φ = exp(-Σ_d Δ_d² / (2 σ_d²)),
* ``track_offsets (T,D,…) f16`` — pixels from a pixel at t to the centre of its cell at t-1
  (zero at t = 0),
* ``embedding (T,C,…) f16`` (optional) — the segmentation decoder's last features (raw),
* ``done (T,) bool`` — completion marker, written after a frame's chunks.

Chunks are one frame × 512² (64³ in 3D). A frame is written one frame-chunk at a time, then marked
done; a re-run skips done frames and never rewrites them, so a frame is either complete (done) or
absent (its possibly partial chunks are not trusted and are redone).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch

from inference.model_io import load_model, model_id, read_config
from inference.normalise import DEFAULT_PERCENTILES, normalise_percentile
from inference.pred_store import child_array, child_group
from inference.tiling import pad_to_stride, predict_tiled
from inference.tta import VARIANTS, augment, deaugment, output_groups

ARRAYS = ("seediness", "offsets", "sigma", "track_offsets", "embedding", "done")
FrameSource = Sequence[np.ndarray] | Callable[[int], np.ndarray] | Iterable[np.ndarray]


class _Indexable(Protocol):
    """What a frame source needs to be read frame by frame."""

    def __len__(self) -> int: ...
    def __getitem__(self, t: int, /) -> Any: ...


def raw_to_outputs(raw: np.ndarray, ndim: int, pixel_scale: float) -> dict[str, np.ndarray]:
    """Activations of averaged raw logits (C, *S) -> the ``pred/*`` arrays of one frame (float32)."""
    D = ndim
    S = np.exp(10.0 / (1.0 + np.exp(-raw[D : 2 * D].astype(np.float64))))
    out = {
        "offsets": np.tanh(raw[:D]) / pixel_scale,
        "sigma": (1.0 / (pixel_scale * np.sqrt(2.0 * S))).astype(np.float32),
        "seediness": 1.0 / (1.0 + np.exp(-raw[2 * D])),
        "track_offsets": -np.tanh(raw[2 * D + 1 : 3 * D + 1]) / pixel_scale,
    }
    if raw.shape[0] > 3 * D + 1:
        out["embedding"] = raw[3 * D + 1 :]
    return out


class FrameNetwork(Protocol):
    """What :class:`FramePredictor` needs of a network (:class:`inference.model.BranchedERFNet` has it)."""

    ndim: int
    embedding_dim: int

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...
    def predict_from_features(
        self, f_t: torch.Tensor, f_prev: torch.Tensor, with_embedding: bool = False
    ) -> torch.Tensor: ...


class FramePredictor:
    """Raw blended (and optionally TTA-averaged) network output for one frame pair."""

    def __init__(
        self,
        model: FrameNetwork,
        device: torch.device,
        tile: int,
        overlap: int,
        tta: bool,
        batch: int,
        embedding: bool,
    ) -> None:
        self.model, self.device = model, device
        self.tile, self.overlap, self.tta, self.batch = tile, overlap, tta, batch
        self.embedding = embedding
        self.ndim = model.ndim
        self.n_channels = 3 * model.ndim + 1 + (model.embedding_dim if embedding else 0)
        self.vectors, self.pairs = output_groups(model.ndim)
        self.amp = device.type == "cuda"
        if self.ndim == 2 and device.type == "cpu" and isinstance(model, torch.nn.Module):
            # Module.to accepts memory_format (torch docs), torch's overloads for it omit the keyword
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._cache: dict[tuple[Any, ...], torch.Tensor] = {}
        self._cache_frame: int | None = None

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        if self.ndim == 2 and self.device.type == "cpu":
            return x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            return self.model.encode(self._prep(x))

    @torch.inference_mode()
    def _heads(self, f_t: torch.Tensor, f_prev: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            out = self.model.predict_from_features(f_t, f_prev, with_embedding=self.embedding)
        return out.float()

    def __call__(
        self, img_t: np.ndarray, img_prev: np.ndarray, t: int | None = None, t_prev: int | None = None
    ) -> np.ndarray:
        """(C, *S) raw outputs for normalised float32 frames of spatial shape S.

        With frame indices, encoder features of frame ``t`` are kept and reused when the next
        call's ``t_prev`` is ``t`` (same tiles and variants), so each frame is encoded once."""
        use_cache = t is not None and t_prev is not None and self._cache_frame == t_prev
        same = t is not None and t == t_prev
        new_cache: dict[tuple[Any, ...], torch.Tensor] = {}
        pt, crop = pad_to_stride(img_t, self.ndim)
        pp, _ = pad_to_stride(img_prev, self.ndim)
        variants = VARIANTS if self.tta else VARIANTS[:1]

        def fn(tiles: list[tuple[slice, ...]]) -> list[np.ndarray]:
            results = [torch.zeros(0)] * len(tiles)
            work = [(i, v) for i in range(len(tiles)) for v in variants]

            def aug_shape(i: int, k: int) -> tuple[int, ...]:
                sh = [s.stop - s.start for s in tiles[i]]
                if k % 2:  # a quarter turn swaps the last two axes
                    sh[-2], sh[-1] = sh[-1], sh[-2]
                return tuple(sh)

            shapes = {aug_shape(i, k) for i, (k, _) in work}
            for shape in sorted(shapes):  # batch only tiles of the same (augmented) shape
                items = [(i, v) for i, v in work if aug_shape(i, v[0]) == shape]
                for j in range(0, len(items), self.batch):
                    part = items[j : j + self.batch]
                    keys = [(tuple((s.start, s.stop) for s in tiles[i]), k, f) for i, (k, f) in part]
                    xt = torch.stack(
                        [augment(torch.from_numpy(np.ascontiguousarray(pt[tiles[i]])), k, f) for i, (k, f) in part]
                    )[:, None].to(self.device)
                    ft = self._encode(xt)
                    if same:
                        fp = ft
                    elif use_cache and all(key in self._cache for key in keys):
                        fp = torch.cat([self._cache[key] for key in keys])
                    else:
                        xp = torch.stack(
                            [augment(torch.from_numpy(np.ascontiguousarray(pp[tiles[i]])), k, f) for i, (k, f) in part]
                        )[:, None].to(self.device)
                        fp = self._encode(xp)
                    if t is not None:
                        for b, key in enumerate(keys):
                            new_cache[key] = ft[b : b + 1]
                    raw = self._heads(ft, fp)
                    for b, (i, (k, f)) in enumerate(part):
                        r = deaugment(raw[b : b + 1], k, f, self.vectors, self.pairs)[0].cpu()
                        results[i] = r if results[i].numel() == 0 else results[i] + r
            return [(r / len(variants)).numpy() for r in results]

        full = predict_tiled(fn, pt.shape, self.n_channels, self.tile, self.overlap, self.batch)
        self._cache, self._cache_frame = new_cache, t
        return full[(slice(None), *crop)]


def _frame_accessor(frames: FrameSource, n_frames: int | None) -> tuple[Callable[[int], np.ndarray], int]:
    if callable(frames):
        if n_frames is None:
            raise ValueError("a callable frame source needs n_frames")
        return frames, int(n_frames)
    seq: _Indexable
    if isinstance(frames, np.ndarray) or (hasattr(frames, "__len__") and hasattr(frames, "__getitem__")):
        seq = cast(_Indexable, frames)  # a sequence, array, Zarr or dask array: read frame by frame
    else:
        seq = list(frames)  # a one-shot iterable: materialised (use a callable for huge movies)
    return (lambda t: np.asarray(seq[t])), len(seq)


def _percentiles(cfg: dict[str, Any]) -> tuple[float, float]:
    """The model's normalisation percentiles (low, high)."""
    lo, hi = cfg.get("normalise_percentiles", DEFAULT_PERCENTILES)
    return lo, hi


def _check_frame(img: np.ndarray, t: int, ndim: int, shape: tuple[int, ...] | None) -> None:
    if img.ndim != ndim:
        raise ValueError(f"frame {t} has {img.ndim} dimensions, the model expects {ndim}D frames")
    if shape is not None and tuple(img.shape) != shape:
        raise ValueError(f"frame {t} has shape {img.shape}, frame 0 has {shape}")


def _open_arrays(
    group_path: str | Path, T: int, shape: tuple[int, ...], D: int, emb_dim: int, attrs: dict[str, Any], overwrite: bool
) -> dict[str, Any]:
    """Create or reopen ``pred/*``; a mismatched existing store raises before anything is written."""
    import zarr

    root = zarr.open_group(str(group_path), mode="a")
    if overwrite and "pred" in root:
        del root["pred"]
    chunk_sp = tuple(min(n, 512 if len(shape) == 2 else 64) for n in shape)
    specs: dict[str, tuple[tuple[int, ...], tuple[int, ...], str]] = {
        "seediness": ((T, *shape), (1, *chunk_sp), "float16"),
        "offsets": ((T, D, *shape), (1, D, *chunk_sp), "float16"),
        "sigma": ((T, D, *shape), (1, D, *chunk_sp), "float16"),
        "track_offsets": ((T, D, *shape), (1, D, *chunk_sp), "float16"),
        "done": ((T,), (1,), "bool"),
    }
    if emb_dim:
        specs["embedding"] = ((T, emb_dim, *shape), (1, emb_dim, *chunk_sp), "float16")
    if "pred" in root:
        g = child_group(root, "pred")
        old = dict(g.attrs)
        if old.get("model_id") != attrs["model_id"]:
            raise ValueError(
                f"{group_path}/pred was written by model {old.get('model_id')!r}, not "
                f"{attrs['model_id']!r}; pass overwrite=True or use another store"
            )
        for name, (shp, _, dtype) in specs.items():
            stored = child_array(g, name) if name in g else None
            if stored is None or tuple(stored.shape) != shp or str(stored.dtype) != dtype:
                have = None if stored is None else tuple(stored.shape)
                raise ValueError(
                    f"{group_path}/pred/{name} has shape {have}, expected {shp} "
                    f"({dtype}); the movie or the options differ from the stored run"
                )
        return {name: child_array(g, name) for name in specs}
    g = root.create_group("pred")
    arrays = {
        name: g.create_array(name, shape=shp, chunks=ch, dtype=dtype, fill_value=0)
        for name, (shp, ch, dtype) in specs.items()
    }
    g.attrs.update(attrs)
    return arrays


def predict_movie(
    frames: FrameSource,
    zarr_group_path: str | Path,
    model_dir: str | Path,
    *,
    tile: int = 1024,
    overlap: int = 128,
    tta: bool = False,
    batch: int = 4,
    device: str | torch.device | None = None,
    embedding: bool = True,
    n_frames: int | None = None,
    spacing: Sequence[float] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict every frame of a movie into ``<zarr_group_path>/pred``; resumable.

    ``frames``: a sequence (list, array (T, [Z,] Y, X), lazy reader with ``len`` and indexing),
    a callable ``t -> frame`` with ``n_frames``, or an iterable (materialised). Frame t is
    predicted with frame t-1 as the tracking partner (frame 0 with itself; its track offsets are
    zero). Returns {"frames_written", "frames_skipped", "seconds", "model_id"}.
    """
    from tqdm import tqdm

    cfg = read_config(model_dir)  # clear error before touching the store
    get, T = _frame_accessor(frames, n_frames)
    ndim = int(cfg["ndim"])
    if T < 1:
        raise ValueError("no frames to predict")
    first = np.asarray(get(0))
    _check_frame(first, 0, ndim, None)
    if isinstance(frames, np.ndarray) and frames.ndim != ndim + 1:
        raise ValueError(f"frames array has shape {frames.shape}; expected (T, {'Z, ' * (ndim == 3)}Y, X)")
    shape = tuple(first.shape)
    lo0, hi0 = _percentiles(cfg)
    normalise_percentile(first, lo0, hi0, what="frame 0")  # a constant first frame fails before any write
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, cfg = load_model(model_dir, dev)
    pixel_scale = float(cfg["pixel_scale"])
    lo, hi = _percentiles(cfg)
    attrs = {
        "model_id": model_id(model_dir),
        "model_dir": str(Path(model_dir).resolve()),  # absolute: readers may run from any folder
        "min_object_size": cfg.get("min_object_size"),
        "axis_order": "tzyx" if ndim == 3 else "tyx",
        "vector_axis_order": "zyx"[3 - ndim :],
        "spacing": list(spacing) if spacing else [1.0] * ndim,
        "offset_units": "pixels",
        "sigma": "Gaussian std in pixels per axis",
        "track_offsets": "p(t) + track_offsets = centre of the cell at t-1",
        "tta": tta,
        "tile": tile,
        "overlap": overlap,
        "pixel_scale": pixel_scale,
        "format_version": 1,
    }
    arrays = _open_arrays(zarr_group_path, T, shape, ndim, model.embedding_dim if embedding else 0, attrs, overwrite)
    done = np.asarray(arrays["done"][:], dtype=bool)
    predictor = FramePredictor(model, dev, tile, overlap, tta, batch, embedding)
    written, skipped, t0 = 0, int(done.sum()), time.perf_counter()
    cache: dict[int, np.ndarray] = {}

    def normalised(t: int) -> np.ndarray:
        if t not in cache:
            img = np.asarray(get(t))
            _check_frame(img, t, ndim, shape)
            if len(cache) > 2:
                cache.clear()
            cache[t] = normalise_percentile(img, lo, hi, what=f"frame {t}")
        return cache[t]

    for t in tqdm(range(T), disable=not progress, desc="predict", unit="frame"):
        if done[t]:
            continue
        xt = normalised(t)
        xp = normalised(t - 1) if t > 0 else xt
        outs = raw_to_outputs(predictor(xt, xp, t, max(t - 1, 0)), ndim, pixel_scale)
        if t == 0:
            outs["track_offsets"] = np.zeros_like(outs["track_offsets"])
        for name in ("seediness", "offsets", "sigma", "track_offsets", "embedding"):
            if name in arrays:
                arrays[name][t] = outs[name].astype(np.float16)
        arrays["done"][t] = True  # the completion marker comes last
        written += 1
    return {
        "frames_written": written,
        "frames_skipped": skipped,
        "seconds": round(time.perf_counter() - t0, 3),
        "model_id": attrs["model_id"],
    }
