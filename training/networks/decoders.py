"""
Decoders: the seeds' U-Net decoder and the Monodepth2 depth and pose decoders.

Up-sampling goes to the size of the skip feature rather than a fixed x2, so inputs whose
size is not a multiple of the encoder's stride still line up, and ONNX exports read the
sizes from tensor shapes (dynamic height and width keep working).
"""

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F
from training.networks.base import DepthHead, DepthNet, upsample_to


def conv3x3_lrelu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (zero padding) followed by LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.LeakyReLU(0.2, inplace=True))


class UpBlock(nn.Module):
    """Bilinear up-sampling to the skip's size, concatenation, two 3x3 conv + LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = conv3x3_lrelu(in_channels + skip_channels, out_channels)
        self.conv2 = conv3x3_lrelu(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Up-sample x onto skip and fuse them."""
        x = upsample_to(x, skip)
        return self.conv2(self.conv1(torch.cat([x, skip], dim=1)))


class UNetDecoder(nn.Module):
    """
    The seeds' decoder: one UpBlock per skip feature, coarsest first, then a 3x3 conv to 1.

    ``encoder_channels`` lists the encoder features finest first (the deepest last, which is
    the decoder's input); ``decoder_channels`` has one entry per skip feature used, coarsest
    first. The output is at the resolution of the finest skip used.
    """

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int]):
        super().__init__()
        skips = list(encoder_channels[:-1])[::-1]
        if len(decoder_channels) > len(skips):
            raise ValueError(f'decoder_channels has {len(decoder_channels)} entries but the '
                             f'encoder gives only {len(skips)} skip features')
        blocks = []
        in_ch = encoder_channels[-1]
        for skip_ch, out_ch in zip(skips, decoder_channels):
            blocks.append(UpBlock(in_ch, skip_ch, int(out_ch)))
            in_ch = int(out_ch)
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(in_ch, 1, 3, padding=1)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        """Decode features (finest first) into a one-channel map before the output head."""
        x = features[-1]
        skips = features[:-1][::-1]
        for block, skip in zip(self.blocks, skips):
            x = block(x, skip)
        return self.head(x)


class UNetDepthNet(DepthNet):
    """
    Any skip-feature encoder + :class:`UNetDecoder`, up-sampled (bilinear) to the input size.

    The encoder returns its features finest first and lists their channel counts in
    ``encoder.channels``; a new backbone only has to provide that to join the zoo.
    """

    def __init__(self, encoder: nn.Module, decoder_channels: Sequence[int],
                 freeze_encoder: bool = False, output: str = 'depth'):
        super().__init__()
        self.output = output
        self.head_act = DepthHead(output)
        self.encoder = encoder
        self.decoder = UNetDecoder(encoder.channels, decoder_channels)
        if freeze_encoder:
            self.freeze_encoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the raw output (N, 1, H, W) at the input resolution."""
        y = self.decoder(self.encoder(x))
        return self.head_act(upsample_to(y, x))


class ReflectConv3x3(nn.Module):
    """3x3 convolution with reflection padding (Monodepth2's Conv3x3)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad by reflection and convolve."""
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """ReflectConv3x3 followed by ELU (Monodepth2's ConvBlock)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ReflectConv3x3(in_channels, out_channels)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve and apply ELU."""
        return self.nonlin(self.conv(x))


class MonodepthDecoder(nn.Module):
    """
    Monodepth2 depth decoder: nearest up-sampling, skips, sigmoid disparity at 4 scales.

    Returns sigmoid outputs for scales 0..3 (scale s at 1/2**s of the encoder input, given
    an encoder whose first feature is at 1/2), finest first.
    """

    def __init__(self, encoder_channels: Sequence[int],
                 decoder_channels: Sequence[int] = (16, 32, 64, 128, 256),
                 scales: Sequence[int] = (0, 1, 2, 3)):
        super().__init__()
        if len(encoder_channels) != 5 or len(decoder_channels) != 5:
            raise ValueError('MonodepthDecoder needs 5 encoder and 5 decoder channel counts')
        self.scales = tuple(scales)
        enc = [int(c) for c in encoder_channels]
        dec = [int(c) for c in decoder_channels]
        self.upconv0 = nn.ModuleList()
        self.upconv1 = nn.ModuleList()
        for i in range(4, -1, -1):
            in_ch = enc[-1] if i == 4 else dec[i + 1]
            self.upconv0.append(ConvBlock(in_ch, dec[i]))
            in_ch = dec[i] + (enc[i - 1] if i > 0 else 0)
            self.upconv1.append(ConvBlock(in_ch, dec[i]))
        self.dispconvs = nn.ModuleList(ReflectConv3x3(dec[s], 1) for s in self.scales)

    def forward(self, features: List[torch.Tensor],
                like: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """Return sigmoid disparities, finest first; the finest at ``like``'s size if given."""
        x = features[-1]
        out = {}
        for k, i in enumerate(range(4, -1, -1)):
            x = self.upconv0[k](x)
            if i > 0:
                x = upsample_to(x, features[i - 1], mode='nearest')
                x = torch.cat([x, features[i - 1]], dim=1)
            elif like is not None:
                x = upsample_to(x, like, mode='nearest')
            else:
                x = F.interpolate(x, scale_factor=2.0, mode='nearest')
            x = self.upconv1[k](x)
            if i in self.scales:
                out[i] = torch.sigmoid(self.dispconvs[self.scales.index(i)](x))
        return [out[s] for s in sorted(out)]


class PoseDecoder(nn.Module):
    """
    Monodepth2 pose decoder: encoder features of stacked frames to axis-angle + translation.

    ``forward`` takes the deepest encoder feature (N, C, h, w) and returns (axisangle,
    translation), each (N, frames, 1, 3). The 0.01 factor keeps initial poses near identity.
    """

    def __init__(self, encoder_channels: int = 512, num_input_features: int = 1,
                 num_frames_to_predict_for: int = 2):
        super().__init__()
        self.num_frames = int(num_frames_to_predict_for)
        self.squeeze = nn.Conv2d(encoder_channels, 256, 1)
        self.pose0 = nn.Conv2d(num_input_features * 256, 256, 3, padding=1)
        self.pose1 = nn.Conv2d(256, 256, 3, padding=1)
        self.pose2 = nn.Conv2d(256, 6 * self.num_frames, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Predict relative poses from one deepest feature per input feature set."""
        x = torch.cat([F.relu(self.squeeze(f)) for f in features], dim=1)
        x = F.relu(self.pose0(x))
        x = F.relu(self.pose1(x))
        x = self.pose2(x).mean(dim=(2, 3))
        x = 0.01 * x.view(-1, self.num_frames, 1, 6)
        return x[..., :3], x[..., 3:]
