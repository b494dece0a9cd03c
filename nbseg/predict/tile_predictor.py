"""The per-tile function of a prediction: normalise the tiles, run every model on every TTA variant of
them, average the softmax, and add an uncertainty channel.

The tile images of one call (tiles x TTA variants of the same shape) go through each model in forward
passes of up to ``forward_images`` images, variants and tiles together; each pass's probabilities are
turned back and added to the running sum of their tiles in place.
"""
from __future__ import annotations

import numpy as np

from ..choices import check_choice
from .ensemble import UNCERTAINTY_CHOICES, EnsembleInfo, foreground_of
from .inference import forward_images, inference_copy
from .tta import tta_variants


class TilePredictor:
    """The per-tile function for :func:`nbseg.model.tiling.sliding_window`: raw tiles in; out, the mean
    probabilities of classes 1..K-1 over models x TTA variants, then an uncertainty channel.

    Parameters
    ----------
    ensemble : list of (model, meta)
    bounds : list of (low, span)
        Per model: the image's normalisation (see :func:`intensity_bounds`).
    info : EnsembleInfo
    tta : {"none", "flips", "all"}
    device : torch.device
    precision : {"fp32", "bf16", "fp16"}
    uncertainty : {"entropy", "mutual_info", "std"}
        ``"entropy"``: entropy of the mean probabilities (spread between passes plus the net's own
        doubt), ``"mutual_info"``: the spread part alone, ``"std"``: standard deviation of the
        foreground probability over passes (deepflash2), times 2. All scaled to [0, 1].
    images : int, optional
        Tile images (tiles x TTA variants) per forward pass, at most; None: as many as a call holds.
        Settable (``predict_image`` sets it from the batch, or from the memory plan).

    Attributes
    ----------
    images : int or None
    """

    def __init__(self, ensemble, *, bounds, info: EnsembleInfo, tta: str, device, precision: str,
                 uncertainty: str = "entropy", images: int | None = None):
        import torch

        check_choice(uncertainty, UNCERTAINTY_CHOICES, what="uncertainty")
        self.nets = [inference_copy(model, device) for model, _ in ensemble]
        self.bounds = [(torch.as_tensor(low, dtype=torch.float32, device=device),
                        torch.as_tensor(1.0 / span, dtype=torch.float32, device=device)) for low, span in bounds]
        self.variants = tta_variants(tta, info.spatial_dims, planar=info.slices)
        self.info, self.device, self.precision, self.uncertainty = info, device, precision, uncertainty
        self.images = images

    @property
    def n_passes(self) -> int:
        return len(self.nets) * len(self.variants)

    def default_images(self, tile, batch_size: int) -> int:
        """Images per forward pass without a memory bound (:func:`~.inference.forward_images`)."""
        return forward_images(self.device, tile, batch_size)

    def __call__(self, batch):
        """``(B, C, *tile)`` tensor -> ``(B, K, *tile)`` float32 tensor on the CPU."""
        import torch

        n, spatial = batch.shape[0], tuple(batch.shape[2:])
        shape = (1, -1) + (1,) * self.info.spatial_dims
        with torch.inference_mode():
            x = batch.to(self.device, non_blocking=True)
            total = torch.zeros((n, self.info.n_classes) + spatial, device=self.device)
            spread = self._spread_sum(n, spatial)
            for net, (low, scale) in zip(self.nets, self.bounds):
                normed = (x - low.view(shape)).mul_(scale.view(shape))
                align = getattr(net, "align", None)  # nbseg's U-Net: its input shift comes before the flips
                normed = align(normed) if align is not None else normed
                for group in self._groups(spatial):
                    self._run(net, normed, group, total, spread, aligned=align is not None)
                del normed
            mean = total.div_(self.n_passes)
            out = torch.empty((n, self.info.n_classes) + spatial, device=self.device)
            out[:, :-1] = mean[:, 1:]  # class 0 is left out: 1 minus the others; storing it would cost a volume
            out[:, -1] = self._uncertainty(mean, spread)
            return out.cpu()

    def _groups(self, spatial) -> list:
        """The TTA variants in groups whose turned tiles share a shape (odd quarter turns of a non-square tile)."""
        if spatial[-1] == spatial[-2] or all(v.keeps_shape for v in self.variants):
            return [self.variants]
        return [[v for v in self.variants if v.keeps_shape], [v for v in self.variants if not v.keeps_shape]]

    def _run(self, net, normed, variants, total, spread, aligned: bool) -> None:
        """Every variant of every tile of ``normed`` through ``net``, in passes of ``self.images`` images;
        each probability turned back and added to ``total`` (and ``spread``) in place."""
        import torch

        n = normed.shape[0]
        layout = torch.channels_last_3d if normed.ndim == 5 else torch.channels_last
        step = max(1, min(self.images or n * len(variants), n * len(variants)))
        for start in range(0, n * len(variants), step):
            pieces = _pieces(start, min(start + step, n * len(variants)), n, variants)
            parts = [variant.forward(normed[a:b]) for variant, a, b in pieces]
            x = (torch.cat(parts) if len(parts) > 1 else parts[0]).contiguous(memory_format=layout)
            del parts
            probs = self._probabilities(net, x, aligned=aligned)
            del x
            offset = 0
            for variant, a, b in pieces:
                part = variant.inverse(probs[offset:offset + b - a])
                offset += b - a
                total[a:b].add_(part)
                self._add_spread(spread, part, a, b)

    def _probabilities(self, net, x, aligned: bool = False):
        import torch

        from ..runtime import autocast

        with autocast(self.device, self.precision):
            logits = net(x, aligned=True) if aligned else net(x)
        return torch.softmax(logits.float(), dim=1)

    def _spread_sum(self, n: int, spatial):
        import torch

        if self.uncertainty == "entropy":
            return None
        lead = (2, n) if self.uncertainty == "std" else (n,)
        return torch.zeros(lead + tuple(spatial), device=self.device)

    def _add_spread(self, spread, probs, a: int, b: int) -> None:
        if self.uncertainty == "entropy":
            return
        if self.uncertainty == "std":
            fg = foreground_of(probs, self.info.kind, axis=1)
            spread[0, a:b].add_(fg)
            spread[1, a:b].add_(fg * fg)
        else:
            spread[a:b].add_(_entropy(probs))

    def _uncertainty(self, mean, spread):
        if self.uncertainty == "std":
            first, second = spread.div_(self.n_passes)
            return second.sub_(first * first).clamp_(min=0).sqrt_().mul_(2)
        entropy = _entropy(mean)
        if self.uncertainty == "mutual_info":
            entropy = entropy.sub_(spread.div_(self.n_passes)).clamp_(min=0)
        return entropy.div_(float(np.log(mean.shape[1])))


def _pieces(start: int, stop: int, n: int, variants) -> list:
    """Images ``start:stop`` of the ``len(variants) * n`` images of a call (variant-major) as
    ``(variant, first tile, end tile)`` runs."""
    pieces = []
    while start < stop:
        k, a = divmod(start, n)
        b = min(n, a + stop - start)
        pieces.append((variants[k], a, b))
        start += b - a
    return pieces


def _entropy(probs):
    """Entropy over the class axis 1, with one temporary the size of ``probs``."""
    logs = probs.clamp(min=1e-12).log_()
    return logs.mul_(probs).sum(dim=1).neg_()
