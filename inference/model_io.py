"""Model folders: weights + config + training command + metrics, loadable offline.

A model folder holds ``weights.pt`` (a plain ``state_dict``, loaded with ``weights_only=True``),
``config.json`` (architecture, coordinate scale, normalisation, clustering defaults and the format
version), ``command.txt`` and ``metrics.json``. Nothing is fetched from the network.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from inference.model import BranchedERFNet

FORMAT = "trackdb-embedtrack"
FORMAT_VERSION = 1
REQUIRED_FILES = ("config.json", "weights.pt")


def model_config(model: BranchedERFNet, **extra: Any) -> dict[str, Any]:
    """The architecture part of ``config.json`` plus any extra keys."""
    cfg: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ndim": model.ndim,
        "in_channels": model.in_channels,
        "width": model.width,
    }
    cfg.update(extra)
    return cfg


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_model(
    model_dir: str | Path,
    model: BranchedERFNet,
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    command: str | None = None,
) -> Path:
    """Write a model folder; every file is replaced atomically."""
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "weights.pt.tmp"
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, tmp)
    os.replace(tmp, d / "weights.pt")
    _atomic_write(d / "config.json", json.dumps(config, indent=2, sort_keys=True).encode())
    if metrics is not None:
        _atomic_write(d / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True).encode())
    if command is not None:
        _atomic_write(d / "command.txt", (command.rstrip() + "\n").encode())
    return d


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a model folder, checked for presence and format version."""
    d = Path(model_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"model folder {d} does not exist")
    for name in REQUIRED_FILES:
        if not (d / name).is_file():
            raise FileNotFoundError(f"model folder {d} lacks {name}")
    try:
        cfg: dict[str, Any] = json.loads((d / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{d / 'config.json'} is not valid JSON: {exc}") from exc
    if cfg.get("format") != FORMAT:
        raise ValueError(f"{d} is not a trackdb EmbedTrack model folder (format={cfg.get('format')!r})")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{d} has model format version {cfg.get('format_version')!r}; this trackdb "
            f"reads version {FORMAT_VERSION}. Retrain or convert the model."
        )
    return cfg


def model_id(model_dir: str | Path) -> str:
    """Short content hash of the weights: identifies predictions in Zarr attributes."""
    h = hashlib.sha256((Path(model_dir) / "weights.pt").read_bytes()).hexdigest()
    return h[:16]


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[BranchedERFNet, dict[str, Any]]:
    """Model in eval mode on ``device`` and its config; clear errors on missing files/versions."""
    cfg = read_config(model_dir)
    model = BranchedERFNet(ndim=int(cfg["ndim"]), in_channels=int(cfg["in_channels"]), width=float(cfg["width"]))
    state = torch.load(Path(model_dir) / "weights.pt", map_location="cpu", weights_only=True)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"weights in {model_dir} do not match its config.json: {exc}") from exc
    return model.to(device).eval(), cfg
