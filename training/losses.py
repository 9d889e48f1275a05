"""
Depth losses: supervised ones in ``LOSSES``, and Monodepth2's self-supervised pieces.

Each supervised loss takes pred, gt (N, 1, H, W) metres and a bool valid mask.

Invalid pixels (mask False) never reach a loss value or a gradient. A batch without any
valid pixel gives a zero loss that is still attached to the graph, so a training step
over it is a no-op rather than a NaN.
"""

import functools
import inspect
from typing import Any, Callable, Dict, Mapping, Union

import torch
from training.layers import gradient_masks, image_gradients, ssim


def _check(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if pred.shape != gt.shape:
        raise ValueError(f'pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape')
    if mask is None:
        mask = torch.isfinite(gt) & (gt > 0)
    if mask.shape != gt.shape:
        raise ValueError(f'mask {tuple(mask.shape)} does not match gt {tuple(gt.shape)}')
    if mask.dtype != torch.bool:
        raise TypeError(f'mask must be a bool tensor, got {mask.dtype}')
    return mask


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values where mask is True (zero, still differentiable, when none is)."""
    if not bool(mask.any()):
        return values.sum() * 0.0
    return values[mask].mean()


def seeds_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor = None,
               lam: float = 0.1, inverse: bool = False, val_range: float = 10.0,
               return_terms: bool = False) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
    """
    Return the seeds' (DenseDepth) loss: lam * L1(depth) + L1(grads) + clamp((1 - SSIM) / 2).

    L1(gradients) is the mean |dx| difference plus the mean |dy| difference over pairs of
    valid pixels. With ``inverse`` all three terms compare 1/depth instead (then
    ``val_range`` should be the inverse range, 1/min_depth). Invalid pixels are replaced by
    the target before SSIM, so they add no error of their own; windows that straddle them
    still see their neighbours. ``return_terms`` returns a dict with 'loss', 'l1',
    'gradient' and 'ssim'.
    """
    mask = _check(pred, gt, mask)
    target = torch.where(mask, gt, torch.ones_like(gt))
    if inverse:
        pred, target = 1.0 / pred.clamp(min=1e-6), 1.0 / target
    l1 = masked_mean((pred - target).abs(), mask)
    pdx, pdy = image_gradients(pred)
    tdx, tdy = image_gradients(target)
    mdx, mdy = gradient_masks(mask)
    grad = masked_mean((pdx - tdx).abs(), mdx) + masked_mean((pdy - tdy).abs(), mdy)
    filled = torch.where(mask, pred, target)
    ssim_term = masked_mean(((1.0 - ssim(filled, target, val_range)) / 2.0).clamp(0, 1), mask)
    loss = lam * l1 + grad + ssim_term
    if return_terms:
        return {'loss': loss, 'l1': l1, 'gradient': grad, 'ssim': ssim_term}
    return loss


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor = None,
               lam: float = 0.5, variant: str = 'eigen', eps: float = 1e-6) -> torch.Tensor:
    """
    Scale-invariant log loss with d = log(pred) - log(gt) over the valid pixels.

    ``variant='eigen'`` (Eigen et al. 2014, variance form): mean(d^2) - lam * mean(d)^2,
    lam = 0.5 by default (1 makes it fully scale invariant, 0 is plain log MSE).
    ``variant='bts'``: 10 * sqrt(mean(d^2) - lam * mean(d)^2), with BTS's lam = 0.85
    passed explicitly.
    """
    mask = _check(pred, gt, mask)
    if not bool(mask.any()):
        return pred.sum() * 0.0
    d = torch.log(pred[mask].clamp(min=eps)) - torch.log(gt[mask].clamp(min=eps))
    value = (d ** 2).mean() - lam * d.mean() ** 2
    if variant == 'eigen':
        return value
    if variant == 'bts':
        return 10.0 * torch.sqrt(value.clamp(min=0) + eps)
    raise ValueError(f"variant must be 'eigen' or 'bts', got {variant!r}")


def berhu_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor = None,
               threshold: float = 0.2) -> torch.Tensor:
    """
    Reverse Huber (BerHu) loss (Laina et al. 2016): |r| below c, (r^2 + c^2) / 2c above.

    c = threshold * max |r| over the valid pixels of the batch (not back-propagated).
    """
    mask = _check(pred, gt, mask)
    if not bool(mask.any()):
        return pred.sum() * 0.0
    r = (pred[mask] - gt[mask]).abs()
    c = threshold * r.max().detach()
    if float(c) == 0.0:
        return r.mean()
    return torch.where(r <= c, r, (r ** 2 + c ** 2) / (2.0 * c)).mean()


# -- self-supervised (Monodepth2) ----------------------------------------------------------
def photometric_error(pred: torch.Tensor, target: torch.Tensor,
                      alpha: float = 0.85) -> torch.Tensor:
    """
    Return Monodepth2's per-pixel photometric error (N, 1, H, W) between two RGB images.

    pe = alpha / 2 (1 - SSIM) + (1 - alpha) L1, averaged over the channels, with the 3x3
    box SSIM under reflection padding (the SSIM term is clamped to [0, 1]).
    """
    l1 = (pred - target).abs().mean(1, keepdim=True)
    dssim = ((1.0 - ssim(pred, target, 1.0, window='box')) / 2.0).clamp(0, 1)
    return alpha * dssim.mean(1, keepdim=True) + (1.0 - alpha) * l1


def reprojection_loss(warped_errors: torch.Tensor, identity_errors: torch.Tensor = None,
                      min_reprojection: bool = True,
                      valid: torch.Tensor = None) -> Dict[str, torch.Tensor]:
    """
    Combine per-source errors (N, S, H, W) into Monodepth2's reprojection loss.

    The per-pixel minimum over sources (or their mean) of the warped errors is averaged
    over the pixels. With ``identity_errors`` (the unwarped sources' errors), auto-masking
    counts a pixel only where the warped error is strictly below the identity error: a
    static camera, or a pixel moving with the camera, shows no change between frames, so
    nothing there can tell depth apart (ties count as static). As in Monodepth2, a masked
    pixel contributes its identity error, a constant, instead of being dropped from the
    average: dropping it would reward making a pixel's warp worse until it is masked.
    ``valid`` (N, 1, H, W) bool restricts the pixels averaged over. Returns 'loss', 'mask'
    (the pixels that counted) and 'fraction' (their share).
    """
    if min_reprojection:
        reproj = warped_errors.min(dim=1, keepdim=True).values
    else:
        reproj = warped_errors.mean(dim=1, keepdim=True)
    mask = torch.ones_like(reproj, dtype=torch.bool)
    per_pixel = reproj
    if identity_errors is not None:
        if identity_errors.shape != warped_errors.shape:
            raise ValueError(f'identity errors {tuple(identity_errors.shape)} and warped '
                             f'errors {tuple(warped_errors.shape)} differ in shape')
        ident = identity_errors.min(dim=1, keepdim=True).values if min_reprojection else \
            identity_errors.mean(dim=1, keepdim=True)
        mask = reproj < ident
        per_pixel = torch.where(mask, reproj, ident.detach())
    counted = mask if valid is None else mask & valid
    loss = per_pixel.mean() if valid is None else masked_mean(per_pixel, valid)
    return {'loss': loss, 'mask': counted, 'fraction': counted.float().mean().detach()}


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """
    Return the edge-aware smoothness of a disparity (N, 1, H, W) given its image.

    The disparity is divided by its per-image mean first (so the term cannot shrink the
    scale to zero), and its gradients are weighted by exp(-|image gradient|).
    """
    if disp.shape[-2:] != image.shape[-2:]:
        raise ValueError(f'disparity {tuple(disp.shape[-2:])} and image '
                         f'{tuple(image.shape[-2:])} differ in size')
    disp = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    ddx, ddy = image_gradients(disp)
    idx, idy = image_gradients(image)
    wx = torch.exp(-idx.abs().mean(1, keepdim=True))
    wy = torch.exp(-idy.abs().mean(1, keepdim=True))
    return (ddx.abs() * wx).mean() + (ddy.abs() * wy).mean()


# The supervised losses by config name (``loss.name``): add a new one here.
LOSSES = {'seeds': seeds_loss, 'silog': silog_loss, 'berhu': berhu_loss}


def build_loss(cfg: Mapping[str, Any]) -> Callable:
    """Return loss(pred, target, mask) for ``cfg['name']`` (a key of LOSSES) and its args."""
    name, args = cfg['name'], dict(cfg.get('args') or {})
    if name not in LOSSES:
        raise ValueError(f'unknown loss {name!r}; known: {", ".join(sorted(LOSSES))}')
    fn = LOSSES[name]
    accepted = inspect.signature(fn).parameters
    unknown = sorted(k for k in args if k not in accepted or k in ('pred', 'gt', 'mask'))
    if unknown:
        raise ValueError(f'loss {name} does not take argument(s) {", ".join(unknown)}')
    return functools.partial(fn, **args)
