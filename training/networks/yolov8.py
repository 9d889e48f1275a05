"""
YOLOv8-style CSP backbone (ultralytics layout and state-dict keys) and the seed's decoder.

The encoder is the ten backbone layers of ultralytics' ``yolov8.yaml`` (layers 0-9), built
here from Conv-BN-SiLU, C2f and SPPF blocks at the ``n`` or ``s`` width/depth multipliers:

    idx  block                         stride   n channels   s channels
    0    Conv 3x3 s2        (P1/2)       2          16           32
    1    Conv 3x3 s2        (P2/4)       4          32           64
    2    C2f x1, shortcut                4          32           64
    3    Conv 3x3 s2        (P3/8)       8          64          128
    4    C2f x2, shortcut                8          64          128
    5    Conv 3x3 s2        (P4/16)     16         128          256
    6    C2f x2, shortcut               16         128          256
    7    Conv 3x3 s2        (P5/32)     32         256          512
    8    C2f x1, shortcut               32         256          512
    9    SPPF k=5                       32         256          512

Keys are ultralytics' with the ``model.`` prefix of ``DetectionModel.state_dict()``:
``model.0.conv.weight``, ``model.0.bn.running_mean``, ``model.2.cv1.conv.weight``,
``model.2.m.0.cv2.bn.weight``, ``model.9.cv2.conv.weight`` ..., so a backbone saved from
ultralytics maps one to one (see training/yolov8_import.py). Batch norms use ultralytics'
eps 1e-3 and momentum 0.03, so imported statistics give the same features.

The decoder is the seed's: a 1x1 convolution on the SPPF output to 256 channels, four
up-blocks (bilinear x2, concatenation with the backbone feature of the same size, two 3x3
convolutions + LeakyReLU(0.2)) to 128, 64, 32 and 16 channels, and a final 3x3 convolution
to 1. The seed names the skips P5, P3, P2, P1; after the first x2 the decoder is at stride
16, where the only backbone feature of that size is the stride-16 C2f output (ultralytics'
P4/16 stage, layer 6), so that is the first skip. The others are the C2f outputs at
strides 8 and 4 (layers 4 and 2) and the stem at stride 2 (layer 0). The decoder ends at
half the input resolution; the output is up-sampled (bilinear) to the input size.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from training.networks.base import DepthHead, DepthNet, upsample_to
from training.networks.decoders import UNetDecoder

# [depth multiple, width multiple, max channels], as in ultralytics' yolov8.yaml.
SCALES = {'n': (0.33, 0.25, 1024), 's': (0.33, 0.50, 1024)}
# (kind, channels at width 1, repeats at depth 1, stride) for backbone layers 0-9.
BACKBONE = (('conv', 64, 1, 2), ('conv', 128, 1, 2), ('c2f', 128, 3, 1),
            ('conv', 256, 1, 2), ('c2f', 256, 6, 1), ('conv', 512, 1, 2),
            ('c2f', 512, 6, 1), ('conv', 1024, 1, 2), ('c2f', 1024, 3, 1),
            ('sppf', 1024, 1, 1))
# Named multi-scale outputs: layer index of each.
FEATURES = {'P1': 0, 'P2': 2, 'P3': 4, 'P4': 6, 'P5': 8, 'SPPF': 9}
# The decoder's skip features, finest first, and its input.
SKIPS = ('P1', 'P2', 'P3', 'P4')
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count up to a multiple of divisor (ultralytics' rule)."""
    return int(-(-value // divisor) * divisor)


def scaled(scale: str) -> List[Tuple[str, int, int, int]]:
    """Return BACKBONE with channels and repeats at a scale's multipliers."""
    if scale not in SCALES:
        raise ValueError(f'scale must be one of {", ".join(SCALES)}, got {scale!r}')
    depth, width, max_ch = SCALES[scale]
    return [(kind, make_divisible(min(ch, max_ch) * width),
             max(round(n * depth), 1) if n > 1 else n, stride)
            for kind, ch, n, stride in BACKBONE]


class Conv(nn.Module):
    """Conv (no bias, 'same' padding) + BatchNorm + SiLU: ultralytics' Conv."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve, normalise, activate."""
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 Convs at constant width, with an identity shortcut when asked."""

    def __init__(self, channels: int, shortcut: bool = True):
        super().__init__()
        self.cv1 = Conv(channels, channels, 3)
        self.cv2 = Conv(channels, channels, 3)
        self.add = bool(shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """
    CSP bottleneck with two convolutions (YOLOv8's C2f).

    A 1x1 Conv splits the input into two halves of ``out_ch / 2``; n bottlenecks run one
    after the other on the second half, and every intermediate result is concatenated and
    fused by a second 1x1 Conv.
    """

    def __init__(self, in_ch: int, out_ch: int, n: int = 1, shortcut: bool = True):
        super().__init__()
        self.c = out_ch // 2
        self.cv1 = Conv(in_ch, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, out_ch, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        y = self.cv1(x)
        parts = [y[:, :self.c], y[:, self.c:]]
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained k x k max pools, concatenated."""

    def __init__(self, in_ch: int, out_ch: int, k: int = 5):
        super().__init__()
        hidden = in_ch // 2
        self.cv1 = Conv(in_ch, hidden, 1)
        self.cv2 = Conv(hidden * 4, out_ch, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat([x, y1, y2, self.m(y2)], dim=1))


class YOLOv8Encoder(nn.Module):
    """
    The YOLOv8 backbone (layers 0-9) returning the decoder's features, finest first.

    ``forward`` returns [P1, P2, P3, P4, SPPF] (strides 2, 4, 8, 16, 32) with their channel
    counts in ``channels``; :meth:`named_features` returns every named output (P5 too).
    """

    def __init__(self, scale: str = 'n'):
        super().__init__()
        self.scale = scale
        layers: List[nn.Module] = []
        out_channels: List[int] = []
        in_ch = 3
        for kind, ch, n, stride in scaled(scale):
            if kind == 'conv':
                layers.append(Conv(in_ch, ch, 3, stride))
            elif kind == 'c2f':
                layers.append(C2f(in_ch, ch, n, shortcut=True))
            else:
                layers.append(SPPF(in_ch, ch, 5))
            out_channels.append(ch)
            in_ch = ch
        self.model = nn.Sequential(*layers)
        self.feature_channels = {name: out_channels[i] for name, i in FEATURES.items()}
        self.channels = [self.feature_channels[name] for name in SKIPS + ('SPPF',)]

    def named_features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Return {P1, P2, P3, P4, P5, SPPF: feature}."""
        index = {i: name for name, i in FEATURES.items()}
        out = {}
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in index:
                out[index[i]] = x
        return out

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return [P1, P2, P3, P4, SPPF], finest first."""
        feats = self.named_features(x)
        return [feats[name] for name in SKIPS + ('SPPF',)]


class YOLOv8Decoder(UNetDecoder):
    """
    The seed's decoder: 1x1 conv on SPPF, four up-blocks with skips, a 3x3 conv to 1.

    After the 1x1 neck it is the zoo's U-Net decoder, with the neck's output as its input.
    """

    def __init__(self, encoder_channels: Sequence[int], neck_channels: int = 256,
                 decoder_channels: Sequence[int] = (128, 64, 32, 16)):
        if len(decoder_channels) != len(SKIPS):
            raise ValueError(f'the YOLOv8 decoder has {len(SKIPS)} up-blocks: give '
                             f'{len(SKIPS)} decoder_channels, got {list(decoder_channels)}')
        super().__init__(list(encoder_channels[:-1]) + [int(neck_channels)], decoder_channels)
        self.neck = nn.Conv2d(encoder_channels[-1], int(neck_channels), 1)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        """Decode [P1, P2, P3, P4, SPPF] into one channel at P1's resolution."""
        return super().forward(list(features[:-1]) + [self.neck(features[-1])])


class YOLOv8UNet(DepthNet):
    """
    YOLOv8 backbone + the seed's decoder, up-sampled (bilinear) to the input size.

    ``pretrained`` is a backbone state dict saved from ultralytics (see
    training/yolov8_import.py); its keys are mapped and checked, and unmapped ones logged.
    """

    def __init__(self, scale: str = 'n', neck_channels: int = 256,
                 decoder_channels: Sequence[int] = (128, 64, 32, 16),
                 freeze_encoder: bool = False, pretrained: Optional[str] = None,
                 output: str = 'depth'):
        super().__init__()
        self.output = output
        self.head_act = DepthHead(output)
        self.encoder = YOLOv8Encoder(scale)
        if pretrained:
            from training.yolov8_import import load_yolov8_backbone
            load_yolov8_backbone(self.encoder, pretrained)
        self.decoder = YOLOv8Decoder(self.encoder.channels, neck_channels, decoder_channels)
        if freeze_encoder:
            self.freeze_encoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the raw output (N, 1, H, W) at the input resolution."""
        y = self.decoder(self.encoder(x))
        return self.head_act(upsample_to(y, x))


class YOLOv8nUNet(YOLOv8UNet):
    """:class:`YOLOv8UNet` at the n multipliers (depth 0.33, width 0.25)."""

    def __init__(self, neck_channels: int = 256,
                 decoder_channels: Sequence[int] = (128, 64, 32, 16),
                 freeze_encoder: bool = False, pretrained: Optional[str] = None,
                 output: str = 'depth'):
        super().__init__('n', neck_channels, decoder_channels, freeze_encoder, pretrained,
                         output)


class YOLOv8sUNet(YOLOv8UNet):
    """:class:`YOLOv8UNet` at the s multipliers (depth 0.33, width 0.50)."""

    def __init__(self, neck_channels: int = 256,
                 decoder_channels: Sequence[int] = (128, 64, 32, 16),
                 freeze_encoder: bool = False, pretrained: Optional[str] = None,
                 output: str = 'depth'):
        super().__init__('s', neck_channels, decoder_channels, freeze_encoder, pretrained,
                         output)
