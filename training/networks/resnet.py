"""
ResNet18 encoder (torchvision keys) and Monodepth2's depth network on top of it.

Keys match torchvision's ``resnet18``: ``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``,
``layer2.0.downsample.0.weight`` ... (``fc`` is left out). ``num_input_images`` > 1 widens
``conv1`` for the pose network (frames stacked on channels); loading torchvision weights
then repeats conv1 over the frames divided by their number, as Monodepth2 does.
"""

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from training.networks.base import DepthNet
from training.networks.decoders import MonodepthDecoder


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + BN, identity or 1x1 downsample shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: Optional[nn.Sequential] = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """ResNet18 returning features at strides 2, 4, 8, 16, 32 (64, 64, 128, 256, 512 ch)."""

    def __init__(self, num_input_images: int = 1):
        super().__init__()
        if num_input_images < 1:
            raise ValueError(f'num_input_images must be >= 1, got {num_input_images}')
        self.num_input_images = int(num_input_images)
        self.conv1 = nn.Conv2d(3 * self.num_input_images, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.channels = [64, 64, 128, 256, 512]

    def load_torchvision(self, state: Dict[str, torch.Tensor]) -> List[str]:
        """Load a torchvision resnet18 state dict (fc ignored); return the keys not used."""
        state = dict(state)
        if self.num_input_images > 1 and 'conv1.weight' in state:
            w = state['conv1.weight']
            state['conv1.weight'] = w.repeat(1, self.num_input_images, 1, 1) / \
                self.num_input_images
        own = self.state_dict()
        unused = [k for k in state if k not in own]
        self.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
        return unused

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return the five features, finest first."""
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]


class ResNet18Monodepth(DepthNet):
    """
    Monodepth2 depth network: ResNet18 encoder + decoder with sigmoid disparity at 4 scales.

    The raw output is the sigmoid s; depth = 1 / (a * s + b) with a = 1/min - 1/max and
    b = 1/max (ModelMeta ``inverse_depth``), so it is bounded to [min_depth, max_depth].
    ``forward_multiscale`` returns the 4 scales finest first; ``forward`` the finest, which
    is at the input resolution. Any size from 33x33 up works (multiples of 32 or not): the
    deepest feature, at 1/32, must be at least 2 pixels for the reflection padding.
    """

    output = 'inverse'

    def __init__(self, num_input_images: int = 1,
                 decoder_channels: Sequence[int] = (16, 32, 64, 128, 256),
                 freeze_encoder: bool = False, pretrained: Optional[str] = None):
        super().__init__()
        self.encoder = ResNetEncoder(num_input_images)
        if pretrained:
            self.encoder.load_torchvision(
                torch.load(pretrained, map_location='cpu', weights_only=True))
        self.decoder = MonodepthDecoder(self.encoder.channels, decoder_channels)
        if freeze_encoder:
            self.freeze_encoder()

    def forward_multiscale(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return sigmoid disparities at scales 0..3 (full, 1/2, 1/4, 1/8)."""
        return self.decoder(self.encoder(x), like=x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the finest sigmoid disparity (N, 1, H, W)."""
        return self.forward_multiscale(x)[0]
