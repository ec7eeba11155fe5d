"""Branched ERFNet for joint segmentation and tracking (EmbedTrack, Löffler & Mikut 2022).

One shared ERFNet encoder (Romera et al. 2018) is applied to frame t and frame t-1. Decoders:

* segmentation: D offsets + D bandwidth logits per pixel (EmbedSeg, Lalit et al. 2021, eq. 1-2),
* seediness: 1 logit per pixel (EmbedSeg eq. 4),
* tracking: D offsets t -> t-1 from the concatenated encoder features of the pair
  (EmbedTrack sec. 2.2).

All outputs are *raw* logits; activations (tanh on offsets, sigmoid on bandwidths and seediness)
are applied by the loss and by prediction after TTA/tile averaging (methods.md A5, pitfall E2).

Channel layout of :meth:`BranchedERFNet.segment`: ``[off_(z,)y,x | sig_(z,)y,x | seed]`` (y first,
as EmbedTrack). ``ndim=3`` swaps every 2D layer for its 3D analogue with the factorised 3x1x1 /
1x3x1 / 1x1x3 convolutions of the 3D EmbedSeg variant.

Parameter counts (trainable, incl. BN affine), computed by ``count_parameters``:
``width=1.0`` 2D = 2,514,749 (EmbedTrack's TrackERFNet: ~2.51M, methods.md A1);
``width=0.5`` 2D = 632,797 (the shipped bacteria model: it had 2 shared CPU cores to train on);
``width=1.0`` 3D = 4,318,158.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

BN_EPS = 1e-3  # ERFNet/EmbedSeg use eps=1e-3 in every BatchNorm.


def _layers(ndim: int) -> dict[str, Any]:
    if ndim == 2:
        return {
            "conv": nn.Conv2d,
            "convt": nn.ConvTranspose2d,
            "bn": nn.BatchNorm2d,
            "pool": nn.MaxPool2d,
            "drop": nn.Dropout2d,
        }
    if ndim == 3:
        return {
            "conv": nn.Conv3d,
            "convt": nn.ConvTranspose3d,
            "bn": nn.BatchNorm3d,
            "pool": nn.MaxPool3d,
            "drop": nn.Dropout3d,
        }
    raise ValueError(f"ndim must be 2 or 3, got {ndim}")


def _axis_kernel(ndim: int, axis: int, size: int, other: int = 1) -> tuple[int, ...]:
    return tuple(size if a == axis else other for a in range(ndim))


class Downsampler(nn.Module):
    """Strided 3^D conv concatenated with a 2^D max-pool (ERFNet's downsampler block)."""

    def __init__(self, ndim: int, nin: int, nout: int) -> None:
        super().__init__()
        L = _layers(ndim)
        self.conv = L["conv"](nin, nout - nin, 3, stride=2, padding=1, bias=True)
        self.pool = L["pool"](2, stride=2)
        self.bn = L["bn"](nout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class NonBottleneck1D(nn.Module):
    """Residual block of factorised (one axis at a time) convolutions, two halves, the second dilated."""

    def __init__(self, ndim: int, ch: int, dropprob: float, dilation: int) -> None:
        super().__init__()
        L = _layers(ndim)
        self.first = nn.ModuleList(
            L["conv"](ch, ch, _axis_kernel(ndim, a, 3), padding=_axis_kernel(ndim, a, 1, 0)) for a in range(ndim)
        )
        self.second = nn.ModuleList(
            L["conv"](
                ch,
                ch,
                _axis_kernel(ndim, a, 3),
                padding=_axis_kernel(ndim, a, dilation, 0),
                dilation=_axis_kernel(ndim, a, dilation),
            )
            for a in range(ndim)
        )
        self.bn1 = L["bn"](ch, eps=BN_EPS)
        self.bn2 = L["bn"](ch, eps=BN_EPS)
        self.drop = L["drop"](dropprob) if dropprob > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i, conv in enumerate(self.first):
            y = conv(y)
            y = self.bn1(y) if i == len(self.first) - 1 else y
            y = torch.relu(y)
        for i, conv in enumerate(self.second):
            y = conv(y)
            if i == len(self.second) - 1:
                y = self.bn2(y)
                if self.drop is not None:
                    y = self.drop(y)
            else:
                y = torch.relu(y)
        return torch.relu(y + x)


class Encoder(nn.Module):
    """ERFNet encoder: output stride 8, ``c3`` channels."""

    def __init__(self, ndim: int, in_channels: int, c1: int, c2: int, c3: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [Downsampler(ndim, in_channels, c1), Downsampler(ndim, c1, c2)]
        layers += [NonBottleneck1D(ndim, c2, 0.03, 1) for _ in range(5)]
        layers.append(Downsampler(ndim, c2, c3))
        for _ in range(2):
            layers += [NonBottleneck1D(ndim, c3, 0.3, d) for d in (2, 4, 8, 16)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


class Decoder(nn.Module):
    """ERFNet decoder back to full resolution; can also return its last hidden features."""

    def __init__(self, ndim: int, nin: int, c1: int, c2: int, nout: int) -> None:
        super().__init__()
        L = _layers(ndim)
        self.up1 = nn.Sequential(
            L["convt"](nin, c2, 3, stride=2, padding=1, output_padding=1), L["bn"](c2, eps=BN_EPS), nn.ReLU()
        )
        self.block1 = nn.Sequential(*(NonBottleneck1D(ndim, c2, 0.0, 1) for _ in range(2)))
        self.up2 = nn.Sequential(
            L["convt"](c2, c1, 3, stride=2, padding=1, output_padding=1), L["bn"](c1, eps=BN_EPS), nn.ReLU()
        )
        self.block2 = nn.Sequential(*(NonBottleneck1D(ndim, c1, 0.0, 1) for _ in range(2)))
        self.output_conv = L["convt"](c1, nout, 2, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.block2(self.up2(self.block1(self.up1(x))))
        return self.output_conv(hidden), hidden


def _init_offsets(conv: nn.Module, n_offset: int, n_sigma: int) -> None:
    """Zero offset/bandwidth weights, offset bias 0, bandwidth bias 1 (EmbedSeg ``init_output``)."""
    weight, bias = conv.weight, conv.bias
    if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
        raise TypeError(f"{type(conv).__name__} has no weight and bias to initialise")
    with torch.no_grad():
        weight[:, : n_offset + n_sigma].fill_(0)
        bias[:n_offset].fill_(0)
        bias[n_offset : n_offset + n_sigma].fill_(1)


class BranchedERFNet(nn.Module):
    """EmbedTrack network. ``width`` scales every channel count (1.0 = the paper's 16/64/128)."""

    def __init__(self, ndim: int = 2, in_channels: int = 1, width: float = 1.0) -> None:
        super().__init__()
        _layers(ndim)
        self.ndim = ndim
        self.in_channels = in_channels
        self.width = width
        c1, c2, c3 = (max(in_channels + 1, int(round(c * width))) for c in (16, 64, 128))
        self.embedding_dim = c1
        self.encoder = Encoder(ndim, in_channels, c1, c2, c3)
        self.seg_decoder = Decoder(ndim, c3, c1, c2, 2 * ndim)
        self.seed_decoder = Decoder(ndim, c3, c1, c2, 1)
        self.track_decoder = Decoder(ndim, 2 * c3, c1, c2, ndim)
        _init_offsets(self.seg_decoder.output_conv, ndim, ndim)
        _init_offsets(self.track_decoder.output_conv, ndim, 0)

    @property
    def n_seg_channels(self) -> int:
        return 2 * self.ndim + 1

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        feat: torch.Tensor = self.encoder(x)
        return feat

    def segment(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw ``[offsets, bandwidths, seed]`` (B, 2D+1, ...) and the embedding features."""
        seg, hidden = self.seg_decoder(feat)
        seed, _ = self.seed_decoder(feat)
        return torch.cat([seg, seed], dim=1), hidden

    def track(self, feat_t: torch.Tensor, feat_prev: torch.Tensor) -> torch.Tensor:
        """Raw tracking offsets t -> t-1 (B, D, ...)."""
        out: torch.Tensor
        out, _ = self.track_decoder(torch.cat([feat_t, feat_prev], dim=1))
        return out

    def forward(self, x_t: torch.Tensor, x_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (seg_t, seg_prev, track_t) raw; the encoder sees both frames in one batch."""
        feats = self.encode(torch.cat([x_t, x_prev], dim=0))
        f_t, f_prev = feats.chunk(2, dim=0)
        seg, _ = self.segment(feats)
        seg_t, seg_prev = seg.chunk(2, dim=0)
        return seg_t, seg_prev, self.track(f_t, f_prev)

    def predict_raw(self, x_t: torch.Tensor, x_prev: torch.Tensor, with_embedding: bool = False) -> torch.Tensor:
        """Inference pass for frame t: ``[seg (2D+1) | track (D) | embedding (E, optional)]`` raw.

        The embedding is the segmentation decoder's last hidden layer (stride 2), upsampled
        by nearest neighbour to full resolution.
        """
        feats = self.encode(torch.cat([x_t, x_prev], dim=0))
        f_t, f_prev = feats.chunk(2, dim=0)
        return self.predict_from_features(f_t, f_prev, with_embedding)

    def predict_from_features(
        self, f_t: torch.Tensor, f_prev: torch.Tensor, with_embedding: bool = False
    ) -> torch.Tensor:
        """:meth:`predict_raw` from encoder features, so a movie encodes every frame once
        (frame t's features are frame t+1's ``f_prev``; the encoder is ~2/3 of the cost)."""
        seg, hidden = self.segment(f_t)
        parts = [seg, self.track(f_t, f_prev)]
        if with_embedding:
            parts.append(nn.functional.interpolate(hidden, size=seg.shape[2:], mode="nearest"))
        return torch.cat(parts, dim=1)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the figure quoted in the module docstring)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
