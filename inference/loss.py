"""Spatial-embedding loss of EmbedSeg/EmbedTrack with the tracking term.

Per image and ground-truth instance k with mask M_k and (medoid) centre C_k
(EmbedSeg, Lalit et al. 2021, eqs. 1-5; EmbedTrack, Löffler & Mikut 2022, sec. 2.3):

* embedding  e_i = x_i + tanh(o_i)            (x_i: pixel coordinate in *units*, see ``pixel_scale``)
* bandwidth  s_k = mean_{i in M_k} sigmoid(σ_i),  S_k = exp(10 s_k)  (per axis; EmbedTrack's sigmoid
  bounds S in [1, e^10], methods.md pitfall E3)
* φ_k(i)     = exp(-Σ_d S_k,d (e_i,d - C_k,d)^2)
* instance   L_inst = mean_k  LovaszHinge(2φ_k - 1, M_k)
* variance   L_var  = mean_k mean_{i in M_k} mean_d (sigmoid(σ_i,d) - s_k,d.detach())^2
* seed       L_seed = mean_{bg} q_i^2 + w_fg · mean_k mean_{i in M_k} (q_i - φ_k(i).detach())^2
* tracking   t_i = x_i - tanh(u_i) is the pixel's vote for its previous-frame centre P_k (the mother's
  centre for daughters); ψ_k(i) = exp(-Σ_d S_k,d (t_i,d - P_k,d)^2) with the same S_k;
  L_track = mean_k LovaszHinge(2ψ_k - 1, M_k) over instances that have a predecessor.

Total = w_inst L_inst + w_var L_var + w_seed L_seed (frames t and t-1) + w_track L_track, averaged over
the batch. Defaults are EmbedTrack's weights (w_fg=1, w_inst=1, w_var=10, w_seed=1, w_track=1).
Deviation: the seed term averages instance means instead of summing them, so crops with many cells
do not outweigh the background term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# One unit of embedding space is 255 pixels (a 256 grid, as EmbedTrack's crops; EmbedSeg uses 1023,
# methods.md A2). Why not 1023: the initial bandwidth S = exp(10·sigmoid(1)) ≈ 1480 then gives a
# φ = 0.5 radius of 5.5 px instead of 22 px, close to bacteria widths; with 1023 the bandwidth
# logits had to travel for thousands of Adam steps before touching cells separated (measured on
# the synthetic test movie: val IoU 0.82 vs 0.89 after 150 steps). tanh bounds offsets to ±255 px.
DEFAULT_PIXEL_SCALE = 1.0 / 255.0


def lovasz_hinge_batched(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary Lovász hinge (Berman et al. 2018, eq. 10) for K rows at once -> (K,) losses.

    ``logits`` (K, N) in (-1, 1) for 2φ-1, ``labels`` (K, N) in {0, 1}.
    """
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    gt_sorted = torch.gather(labels, 1, perm)
    gts = gt_sorted.sum(dim=1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim=1)
    union = gts + (1.0 - gt_sorted).cumsum(dim=1)
    jaccard = 1.0 - intersection / union.clamp_min(1e-12)
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    return (torch.relu(errors_sorted) * grad).sum(dim=1)


@dataclass
class FrameTargets:
    """Ground truth of one image: instance ids, their centres and (optional) previous centres.

    ``instances`` (*S) int64, 0 = background. ``ids`` (K,) present in ``instances``;
    ``centres`` (K, D) and ``prev_centres`` (K, D) in *pixel* coordinates of the image
    (may lie outside it); NaN rows in ``prev_centres`` mean "no predecessor".
    """

    instances: torch.Tensor
    ids: torch.Tensor
    centres: torch.Tensor
    prev_centres: torch.Tensor | None = None


def coordinate_grid(shape: tuple[int, ...], pixel_scale: float, device: torch.device) -> torch.Tensor:
    """(D, N) pixel coordinates times ``pixel_scale``, (z,) y, x order."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in shape]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)
    return grid.reshape(len(shape), -1) * pixel_scale


class SpatialEmbeddingLoss(torch.nn.Module):
    """EmbedTrack loss; see the module docstring for the equations."""

    def __init__(
        self,
        ndim: int = 2,
        pixel_scale: float = DEFAULT_PIXEL_SCALE,
        w_inst: float = 1.0,
        w_var: float = 10.0,
        w_seed: float = 1.0,
        w_track: float = 1.0,
        fg_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.ndim = ndim
        self.pixel_scale = pixel_scale
        self.w_inst, self.w_var, self.w_seed = w_inst, w_var, w_seed
        self.w_track, self.fg_weight = w_track, fg_weight

    def image_terms(
        self, seg: torch.Tensor, tgt: FrameTargets, track: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Loss terms of one image: ``seg`` (2D+1, *S) raw, ``track`` (D, *S) raw or None."""
        D = self.ndim
        shape = tuple(seg.shape[1:])
        seg = seg.float().reshape(seg.shape[0], -1)
        xy = coordinate_grid(shape, self.pixel_scale, seg.device)
        emb = xy + torch.tanh(seg[:D])
        sig = torch.sigmoid(seg[D : 2 * D])
        seed = torch.sigmoid(seg[2 * D])
        inst = tgt.instances.reshape(-1).to(seg.device)
        zero = seg.sum() * 0.0
        terms = {"inst": zero, "var": zero, "seed": zero, "track": zero}
        bg = inst == 0
        if bg.any():
            terms["seed"] = (seed[bg] ** 2).mean()
        ids = tgt.ids.to(seg.device)
        if len(ids) == 0:
            return terms
        masks = (inst[None, :] == ids[:, None]).float()  # (K, N)
        counts = masks.sum(dim=1).clamp_min(1.0)
        s_k = (masks @ sig.T) / counts[:, None]  # (K, D)
        var = ((sig.T[None, :, :] - s_k.detach()[:, None, :]) ** 2).mean(dim=2)  # (K, N)
        terms["var"] = ((var * masks).sum(dim=1) / counts).mean()
        bw = torch.exp(10.0 * s_k)  # (K, D)
        centres = tgt.centres.to(seg.device).float() * self.pixel_scale
        phi = torch.exp(-(bw[:, :, None] * (emb[None] - centres[:, :, None]) ** 2).sum(dim=1))
        terms["inst"] = lovasz_hinge_batched(2.0 * phi - 1.0, masks).mean()
        fg_err = ((seed[None, :] - phi.detach()) ** 2 * masks).sum(dim=1) / counts
        terms["seed"] = terms["seed"] + self.fg_weight * fg_err.mean()
        if track is not None and tgt.prev_centres is not None:
            prev = tgt.prev_centres.to(seg.device).float()
            valid = ~torch.isnan(prev).any(dim=1)
            if valid.any():
                tvote = xy - torch.tanh(track.float().reshape(D, -1))
                pc = prev[valid] * self.pixel_scale
                psi = torch.exp(-(bw[valid][:, :, None] * (tvote[None] - pc[:, :, None]) ** 2).sum(dim=1))
                terms["track"] = lovasz_hinge_batched(2.0 * psi - 1.0, masks[valid]).mean()
        return terms

    def forward(
        self,
        seg_t: torch.Tensor,
        seg_prev: torch.Tensor,
        track: torch.Tensor,
        targets_t: list[FrameTargets],
        targets_prev: list[FrameTargets],
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Batch loss and its terms (floats, for logging)."""
        total = seg_t.sum() * 0.0
        logs = {"inst": 0.0, "var": 0.0, "seed": 0.0, "track": 0.0}
        B = seg_t.shape[0]
        for b in range(B):
            for seg, tgt, trk in ((seg_t[b], targets_t[b], track[b]), (seg_prev[b], targets_prev[b], None)):
                t = self.image_terms(seg, tgt, trk)
                total = (
                    total
                    + (
                        self.w_inst * t["inst"]
                        + self.w_var * t["var"]
                        + self.w_seed * t["seed"]
                        + self.w_track * t["track"]
                    )
                    / B
                )
                for k in logs:
                    logs[k] += float(t[k].detach()) / B
        return total, logs


@torch.no_grad()
def instance_iou(seg: torch.Tensor, tgt: FrameTargets, pixel_scale: float = DEFAULT_PIXEL_SCALE) -> list[float]:
    """Validation IoU per instance with the GT-centred clustering of EmbedSeg (``cluster_with_gt``):
    centre = mean embedding inside M_k, S = exp(10·mean bandwidth); pixels with φ > 0.5."""
    D = (seg.shape[0] - 1) // 2
    shape = tuple(seg.shape[1:])
    seg = seg.float().reshape(seg.shape[0], -1)
    emb = coordinate_grid(shape, pixel_scale, seg.device) + torch.tanh(seg[:D])
    sig = torch.sigmoid(seg[D : 2 * D])
    inst = tgt.instances.reshape(-1).to(seg.device)
    out = []
    for k in tgt.ids.tolist():
        m = inst == k
        c = emb[:, m].mean(dim=1, keepdim=True)
        bw = torch.exp(10.0 * sig[:, m].mean(dim=1, keepdim=True))
        pred = torch.exp(-(bw * (emb - c) ** 2).sum(dim=0)) > 0.5
        inter = (pred & m).sum().item()
        union = (pred | m).sum().item()
        out.append(inter / max(union, 1))
    return out
