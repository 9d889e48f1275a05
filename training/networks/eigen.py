"""
Eigen et al. (NIPS 2014) multi-scale depth network: a coarse global net and a fine net.

The coarse net sees the whole image through convolutions and two fully connected layers
and predicts a low-resolution depth map; the fine net refines it with local features
(its first conv's 63 channels plus the coarse map make 64, as in the paper).

Where this differs from the paper, and why:

* Any input size: the last coarse feature map is resized to a fixed ``pool_size`` grid
  before the fully connected layers (bilinear resize, because adaptive average pooling
  to an arbitrary grid does not export to ONNX), and the coarse map is resized to the fine
  features' size. The paper fixes the input at 304x228 and the output at 74x55.
* Smaller fully connected layers by default (``hidden`` 1024 instead of 4096,
  ``coarse_size`` 15x20), and channel counts scaled by ``width``.
* The output goes through the zoo's head (``output``, softplus metric depth by default)
  instead of log depth, and is up-sampled from 1/4 to the input resolution.
* Both scales train jointly (``forward_multiscale`` returns [fine, coarse]) rather than
  coarse first then fine.
"""

from typing import List, Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F
from training.networks.base import DepthHead, DepthNet, upsample_to


def _ch(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


class CoarseNet(nn.Module):
    """Global coarse network: AlexNet-like convolutions, then FC layers to a small map."""

    def __init__(self, width: float = 1.0, hidden: int = 1024,
                 pool_size: Sequence[int] = (6, 8), coarse_size: Sequence[int] = (15, 20),
                 dropout: float = 0.5):
        super().__init__()
        c = [_ch(n, width) for n in (96, 256, 384, 384, 256)]
        self.features = nn.Sequential(
            nn.Conv2d(3, c[0], 11, stride=4, padding=5), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(inplace=True))
        self.pool_size = tuple(int(v) for v in pool_size)
        self.coarse_size = tuple(int(v) for v in coarse_size)
        self.fc = nn.Sequential(
            nn.Linear(c[4] * self.pool_size[0] * self.pool_size[1], hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, self.coarse_size[0] * self.coarse_size[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the coarse map (N, 1, coarse_h, coarse_w), before the output head."""
        x = self.features(x)
        x = F.interpolate(x, size=self.pool_size, mode='bilinear', align_corners=False)
        x = self.fc(x.flatten(1))
        return x.view(-1, 1, self.coarse_size[0], self.coarse_size[1])


class FineNet(nn.Module):
    """Local refinement: conv + pool to 1/4, concatenate the coarse map, two 5x5 convs."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c = _ch(64, width)
        self.conv1 = nn.Sequential(nn.Conv2d(3, c - 1, 9, stride=2, padding=4),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True))
        self.conv2 = nn.Sequential(nn.Conv2d(c, c, 5, padding=2), nn.ReLU(inplace=True))
        self.conv3 = nn.Conv2d(c, 1, 5, padding=2)

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Refine the coarse map (any size) with the image; output at 1/4 resolution."""
        f = self.conv1(x)
        f = torch.cat([f, upsample_to(coarse, f)], dim=1)
        return self.conv3(self.conv2(f))


class EigenMultiScale(DepthNet):
    """Coarse + fine network; ``forward`` returns the fine output at the input resolution."""

    def __init__(self, width: float = 1.0, hidden: int = 1024,
                 pool_size: Sequence[int] = (6, 8), coarse_size: Sequence[int] = (15, 20),
                 dropout: float = 0.5, output: str = 'depth',
                 freeze_encoder: bool = False, pretrained: Optional[str] = None):
        super().__init__()
        self.output = output
        self.head_act = DepthHead(output)
        # The coarse net plays the encoder's part (freezing it trains only the fine scale).
        self.encoder = CoarseNet(width, hidden, pool_size, coarse_size, dropout)
        self.fine = FineNet(width)
        if pretrained:
            self.load_state_dict(torch.load(pretrained, map_location='cpu', weights_only=True))
        if freeze_encoder:
            self.freeze_encoder()

    def forward_multiscale(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return [fine at the input resolution, coarse at coarse_size], both through the head."""
        coarse = self.encoder(x)
        fine = upsample_to(self.fine(x, coarse), x)
        return [self.head_act(fine), self.head_act(coarse)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the fine raw output (N, 1, H, W)."""
        coarse = self.encoder(x)
        return self.head_act(upsample_to(self.fine(x, coarse), x))
