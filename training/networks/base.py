"""
What every depth network in the zoo shares: output heads, the raw-output-to-metres mapping.

A network's ``forward(x)`` takes RGB already ImageNet-normalised, (N, 3, H, W) float, and
returns its *raw* output (N, 1, H, W) at the input resolution. ``output_spec`` states how
that raw output maps to metres in :class:`mono_depth_ros.core.model_meta.ModelMeta` terms, and
``to_depth`` applies the same mapping in torch so losses and metrics see what the node sees.
"""

from typing import Dict, Iterable, List

import torch
from torch import nn
import torch.nn.functional as F

# Raw output kinds a head can produce, and the ModelMeta output_mode each maps to.
OUTPUTS = ('depth', 'linear', 'inverse')


class DepthHead(nn.Module):
    """
    Map head features to the raw output named by ``output``.

    ``depth``: softplus, so the raw output is metric depth and always positive.
    ``linear``: the raw output is metric depth as is (may be negative early in training).
    ``inverse``: sigmoid s, with depth = 1 / (a * s + b) bounded to [min, max] (Monodepth2).
    """

    def __init__(self, output: str = 'depth'):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f'output must be one of {OUTPUTS}, got {output!r}')
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the output non-linearity."""
        if self.output == 'depth':
            return F.softplus(x)
        if self.output == 'inverse':
            return torch.sigmoid(x)
        return x


def output_spec_for(output: str, min_depth: float, max_depth: float) -> Dict[str, float]:
    """Return ModelMeta output_mode/scale/shift for a head kind and a depth range."""
    if not 0 < min_depth < max_depth:
        raise ValueError(f'need 0 < min_depth < max_depth, got [{min_depth}, {max_depth}]')
    if output == 'inverse':
        return {'output_mode': 'inverse_depth',
                'output_scale': 1.0 / min_depth - 1.0 / max_depth,
                'output_shift': 1.0 / max_depth}
    if output in ('depth', 'linear'):
        return {'output_mode': 'metric', 'output_scale': 1.0, 'output_shift': 0.0}
    raise ValueError(f'output must be one of {OUTPUTS}, got {output!r}')


def raw_to_depth(raw: torch.Tensor, spec: Dict[str, float]) -> torch.Tensor:
    """Apply a ModelMeta output mapping (without the final clip) in torch."""
    scale, shift = spec['output_scale'], spec['output_shift']
    mode = spec['output_mode']
    if mode == 'metric':
        return scale * raw + shift
    if mode == 'inverse_depth':
        return 1.0 / (scale * raw + shift)
    if mode == 'disparity':
        return scale / (raw + shift)
    raise ValueError(f'unknown output_mode {mode!r}')


class DepthNet(nn.Module):
    """
    Base class of the zoo's depth networks.

    Subclasses set ``self.encoder`` (the module holding torchvision-named layers), set
    ``self.output`` (a key of OUTPUTS) and implement ``forward``. Freezing the encoder turns
    off its gradients and keeps its batch norms in eval mode even while the rest trains, so
    ImageNet statistics are not overwritten by small depth batches.
    """

    encoder: nn.Module
    output: str = 'depth'

    def __init__(self):
        super().__init__()
        self.encoder_frozen = False

    def forward_multiscale(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return raw outputs finest first; single-scale networks return ``[forward(x)]``."""
        return [self.forward(x)]

    def output_spec(self, min_depth: float, max_depth: float) -> Dict[str, float]:
        """Return dict(output_mode, output_scale, output_shift) for ModelMeta."""
        return output_spec_for(self.output, min_depth, max_depth)

    def to_depth(self, raw: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
        """Map raw output to metres as the node does (no clipping, so gradients survive)."""
        return raw_to_depth(raw, self.output_spec(min_depth, max_depth))

    def freeze_encoder(self, frozen: bool = True) -> 'DepthNet':
        """Freeze (or with ``frozen=False`` unfreeze) the encoder; returns self."""
        self.encoder_frozen = bool(frozen)
        for p in self.encoder.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)
        return self

    def unfreeze_encoder(self) -> 'DepthNet':
        """Make the encoder trainable again; returns self."""
        return self.freeze_encoder(False)

    def train(self, mode: bool = True) -> 'DepthNet':
        """Set train/eval mode; a frozen encoder's batch norms stay in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            for m in self.encoder.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


def upsample_to(x: torch.Tensor, like: torch.Tensor, mode: str = 'bilinear') -> torch.Tensor:
    """Resize x to the size of ``like`` (read from the tensor, so ONNX sizes stay dynamic)."""
    if mode == 'nearest':
        return F.interpolate(x, size=like.shape[-2:], mode='nearest')
    return F.interpolate(x, size=like.shape[-2:], mode=mode, align_corners=False)


def collect_features(layers: Iterable[nn.Module], keep: Iterable[int],
                     x: torch.Tensor) -> List[torch.Tensor]:
    """Run x through ``layers`` in order; return the outputs of the layers indexed in ``keep``."""
    keep = set(keep)
    out = []
    for i, layer in enumerate(layers):
        x = layer(x)
        if i in keep:
            out.append(x)
    return out
