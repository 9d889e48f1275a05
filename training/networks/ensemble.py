"""
Stacked generalisation: zoo base learners combined per pixel by a small meta-learner U-Net.

Each base learner is a zoo network (``build_model(arch, **args)``) that predicts metric
depth on its own. The meta-learner sees the bases' depths (``inputs='d'``, as log depth),
the image (``'rgb'``) or both (``'rgb+d'``) and predicts one logit per base and pixel; a
softmax over the bases turns them into weights that sum to 1 at every pixel, and the
ensemble's depth is the weighted sum of the bases' depths. Its last convolution starts at
zero, so an untrained ensemble is exactly the simple per-pixel average of its bases (the
baseline it has to beat).

The meta-learner is a light U-Net built from depthwise-separable convolutions (3x3
depthwise + 1x1 pointwise); every up-sampling comes *after* the convolutions of its level,
so they run on the coarse grid, and the weights themselves are computed at half
resolution and interpolated to the input size before the softmax.

``bases`` says whether the ensemble's loss reaches the base learners: ``frozen`` (their
parameters are fixed, batch norms in eval mode; with ``schedule='simultaneous'`` they
still learn from their own losses but their outputs reach the meta-learner detached) or
``finetune``. The whole ensemble is one network: it exports to ONNX as a single graph
and its raw output is metric depth (``output_mode`` metric, scale 1).
"""

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F
from training.networks.base import DepthNet, upsample_to

INPUTS = ('d', 'rgb', 'rgb+d')
BASE_MODES = ('frozen', 'finetune')
SCHEDULES = ('separate', 'simultaneous')
BASE_KEYS = ('arch', 'args', 'checkpoint', 'epochs', 'loss', 'min_depth', 'max_depth')


class SeparableConv(nn.Module):
    """3x3 depthwise + 1x1 pointwise convolution, BatchNorm, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        return self.act(self.bn(self.pointwise(self.depthwise(x))))


class MetaUNet(nn.Module):
    """
    The meta-learner: per-pixel logits over ``outputs`` bases from ``in_ch`` input channels.

    ``levels`` stride-2 separable stages of width ``width * 2**i`` down, then per level a
    separable convolution on the coarse grid, up-sampling to the skip, concatenation; the
    1x1 logit convolution runs at half resolution and is zero-initialised (uniform weights).
    """

    def __init__(self, in_ch: int, outputs: int, width: int = 16, levels: int = 3):
        super().__init__()
        if levels < 1:
            raise ValueError(f'meta_levels must be at least 1, got {levels}')
        if width < 1:
            raise ValueError(f'meta_width must be at least 1, got {width}')
        chans = [int(width) * 2 ** i for i in range(levels)]
        self.down = nn.ModuleList()
        prev = in_ch
        for ch in chans:
            self.down.append(SeparableConv(prev, ch, stride=2))
            prev = ch
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for i in range(levels - 1, 0, -1):
            self.up.append(SeparableConv(chans[i], chans[i - 1]))
            self.fuse.append(SeparableConv(2 * chans[i - 1], chans[i - 1]))
        self.logits = nn.Conv2d(chans[0], outputs, 1)
        nn.init.zeros_(self.logits.weight)
        nn.init.zeros_(self.logits.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (N, outputs, H, W) at x's resolution."""
        skips = []
        y = x
        for block in self.down:
            y = block(y)
            skips.append(y)
        for k, (up, fuse) in enumerate(zip(self.up, self.fuse)):
            skip = skips[-2 - k]
            y = upsample_to(up(y), skip)  # convolve on the coarse grid, then interpolate
            y = fuse(torch.cat([y, skip], dim=1))
        return upsample_to(self.logits(y), x)


def _base_spec(spec: Mapping[str, Any], index: int) -> Dict[str, Any]:
    if not isinstance(spec, Mapping) or 'arch' not in spec:
        raise ValueError(f'base_models[{index}] must be a mapping with an arch, got {spec!r}')
    unknown = sorted(set(spec) - set(BASE_KEYS))
    if unknown:
        raise ValueError(f'base_models[{index}] has unknown key(s) {", ".join(unknown)}; '
                         f'known: {", ".join(BASE_KEYS)}')
    out = {'arch': str(spec['arch']), 'args': dict(spec.get('args') or {}),
           'checkpoint': str(spec.get('checkpoint') or ''),
           'epochs': int(spec.get('epochs') or 0),
           'loss': dict(spec.get('loss') or {}),
           'min_depth': float(spec.get('min_depth') or 0.1),
           'max_depth': float(spec.get('max_depth') or 10.0)}
    if not 0 < out['min_depth'] < out['max_depth']:
        raise ValueError(f'base_models[{index}]: need 0 < min_depth < max_depth')
    return out


class StackedEnsemble(DepthNet):
    """
    N zoo base learners + a :class:`MetaUNet` predicting per-pixel softmax weights over them.

    ``base_models``: a list of {arch, args, checkpoint, epochs, loss, min_depth,
    max_depth}; a named checkpoint is loaded (``torch.load(weights_only=True)``), otherwise
    the base is built fresh (when the ensemble is rebuilt from its own checkpoint, or
    trained simultaneously). ``epochs`` and ``loss`` (default: the config's) say how a
    base without a checkpoint is trained first under ``schedule='separate'``. The base
    learners are ``self.encoder`` for the zoo's freezing logic, so ``bases='frozen'`` keeps
    their batch norms in eval mode too.
    """

    # Builds (or loads) one base learner from its spec. The zoo (training.networks) sets it:
    # the zoo imports this module, so this module cannot import the zoo.
    base_loader: Optional[Callable[[Mapping[str, Any]], nn.Module]] = None

    output = 'linear'

    def __init__(self, base_models: Sequence[Mapping[str, Any]] = (), inputs: str = 'rgb+d',
                 bases: str = 'frozen', schedule: str = 'separate', meta_width: int = 16,
                 meta_levels: int = 3):
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f'inputs must be one of {INPUTS}, got {inputs!r}')
        if bases not in BASE_MODES:
            raise ValueError(f'bases must be one of {BASE_MODES}, got {bases!r}')
        if schedule not in SCHEDULES:
            raise ValueError(f'schedule must be one of {SCHEDULES}, got {schedule!r}')
        specs = [_base_spec(s, i) for i, s in enumerate(base_models)]
        if len(specs) < 2:
            raise ValueError(f'an ensemble needs at least 2 base_models, got {len(specs)}')
        self.specs = specs
        self.inputs, self.bases, self.schedule = inputs, bases, schedule
        if StackedEnsemble.base_loader is None:
            raise RuntimeError('StackedEnsemble is built through training.networks.build_model, '
                               'which knows how to build its base learners')
        self.encoder = nn.ModuleList(StackedEnsemble.base_loader(s) for s in specs)
        in_ch = (3 if 'rgb' in inputs else 0) + (len(specs) if 'd' in inputs else 0)
        self.decoder = MetaUNet(in_ch, len(specs), meta_width, meta_levels)
        # Separate schedule, frozen: the bases are fixed. Simultaneous, frozen: they learn
        # from their own losses only, so they stay trainable and are detached in forward.
        if bases == 'frozen' and schedule == 'separate':
            self.freeze_encoder()

    # -- the pieces ---------------------------------------------------------------------
    def base_depths(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Return every base's metric depth (clamped to its range), stacked (N, K, H, W)."""
        depths = []
        for net, spec in zip(self.encoder, self.specs):
            # Zoo networks answer at the input resolution (training.networks).
            depth = net.to_depth(net(x).float(), spec['min_depth'], spec['max_depth'])
            depths.append(depth.clamp(spec['min_depth'], spec['max_depth']) if clamp else depth)
        return torch.cat(depths, dim=1)

    def _clamp(self, depths: torch.Tensor) -> torch.Tensor:
        lo = torch.tensor([s['min_depth'] for s in self.specs], dtype=depths.dtype,
                          device=depths.device).view(1, -1, 1, 1)
        hi = torch.tensor([s['max_depth'] for s in self.specs], dtype=depths.dtype,
                          device=depths.device).view(1, -1, 1, 1)
        return torch.minimum(torch.maximum(depths, lo), hi)

    def weights(self, x: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
        """Return the per-pixel softmax weights over the bases (N, K, H, W)."""
        if self.bases == 'frozen':
            depths = depths.detach()
        parts = []
        if 'rgb' in self.inputs:
            parts.append(x)
        if 'd' in self.inputs:
            parts.append(torch.log(depths))
        return F.softmax(self.decoder(torch.cat(parts, dim=1)), dim=1)

    def forward_parts(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Return the ensemble's pieces, each (N, K, H, W) but the depth (N, 1, H, W).

        'unclamped' (the bases' depths, for their own losses), 'bases' (clamped to their
        ranges, what is mixed), 'weights' (softmax over K) and 'depth' (the weighted sum).
        """
        unclamped = self.base_depths(x, clamp=False)
        depths = self._clamp(unclamped)
        w = self.weights(x, depths)
        mixed = depths.detach() if self.bases == 'frozen' else depths
        return {'unclamped': unclamped, 'bases': depths, 'weights': w,
                'depth': (w * mixed).sum(dim=1, keepdim=True)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the ensemble's metric depth (N, 1, H, W)."""
        return self.forward_parts(x)['depth']

    # -- what evaluation compares -------------------------------------------------------
    def variants(self) -> Dict[str, nn.Module]:
        """Return {name: network} for each base, the simple average and the ensemble."""
        out: Dict[str, nn.Module] = {}
        for i, spec in enumerate(self.specs):
            out[f'base {i} ({spec["arch"]})'] = BaseView(self, i)
        out['simple average'] = AverageView(self)
        out['ensemble'] = self
        return out

    def meta_parameters(self) -> List[nn.Parameter]:
        """Return the meta-learner's parameters."""
        return list(self.decoder.parameters())


class BaseView(DepthNet):
    """One base learner of an ensemble as a metric-depth network (clamped to its range)."""

    output = 'linear'

    def __init__(self, ensemble: StackedEnsemble, index: int):
        super().__init__()
        self.net = ensemble.encoder[index]
        self.encoder = self.net
        self.spec = ensemble.specs[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the base's metric depth."""
        return self.net.to_depth(self.net(x).float(), self.spec['min_depth'],
                                 self.spec['max_depth']).clamp(self.spec['min_depth'],
                                                               self.spec['max_depth'])


class AverageView(DepthNet):
    """The simple per-pixel mean of an ensemble's bases (the baseline)."""

    output = 'linear'

    def __init__(self, ensemble: StackedEnsemble):
        super().__init__()
        self.encoder = ensemble.encoder
        # Not a submodule: the average's parameters are the bases', not the meta-learner's.
        self.__dict__['_ensemble'] = ensemble

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the mean of the bases' depths."""
        return self._ensemble.base_depths(x).mean(dim=1, keepdim=True)


def count_parameters(module: Optional[nn.Module]) -> int:
    """Return the number of parameters of a module (0 for None)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())
