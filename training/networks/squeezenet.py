"""
SqueezeNet 1.1 encoder (torchvision layout and state-dict keys) and a U-Net on top.

Keys match torchvision's ``squeezenet1_1``: ``features.0.weight`` (stem conv),
``features.3.squeeze.weight``, ``features.3.expand1x1.weight``,
``features.3.expand3x3.weight`` ... ``features.12.*`` (the classifier is left out).
"""

from typing import List, Optional, Sequence

import torch
from torch import nn
from training.networks.base import collect_features
from training.networks.decoders import UNetDepthNet

# Indices into ``features`` whose outputs are the skips (strides about 2, 4, 8 and 16).
SKIP_INDICES = (1, 4, 7, 12)


class Fire(nn.Module):
    """SqueezeNet Fire module: 1x1 squeeze, then parallel 1x1 and 3x3 expands, concatenated."""

    def __init__(self, in_ch: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(in_ch, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)
        self.out_channels = expand1x1 + expand3x3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module."""
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], dim=1)


class SqueezeNetEncoder(nn.Module):
    """SqueezeNet 1.1 features returning the four skip features, finest first."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256))
        self.channels = [64, 128, 256, 512]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return features after the stem, fire3, fire5 and fire9 (torchvision numbering)."""
        return collect_features(self.features, SKIP_INDICES, x)


class SqueezeNetUNet(UNetDepthNet):
    """
    SqueezeNet 1.1 encoder + U-Net decoder with 3 up-blocks, then up-sampling to the input.

    The unpadded stem and ceil-mode pools make feature sizes odd; each up-block resizes to
    its skip's exact size, so any input of at least 32x32 works.
    """

    def __init__(self, decoder_channels: Sequence[int] = (128, 64, 32),
                 freeze_encoder: bool = False, output: str = 'depth',
                 pretrained: Optional[str] = None):
        if len(decoder_channels) != 3:
            raise ValueError('squeezenet_unet has 3 up-blocks: give 3 decoder_channels')
        encoder = SqueezeNetEncoder()
        if pretrained:
            state = torch.load(pretrained, map_location='cpu', weights_only=True)
            encoder.load_state_dict(state, strict=False)
        super().__init__(encoder, decoder_channels, freeze_encoder, output)
