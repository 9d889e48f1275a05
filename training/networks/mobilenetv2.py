"""
MobileNetV2 encoder (torchvision layout and state-dict keys) and the seeds' U-Net on top.

Keys match torchvision's ``mobilenet_v2``: ``features.0.0.weight`` (stem conv),
``features.1.conv.0.0.weight`` (block 1 depthwise), ``features.2.conv.1.0.weight`` ...,
``features.18.0.weight`` and ``classifier.1.weight``, so
``encoder.load_state_dict(torchvision_state_dict, strict=False)`` maps one to one. The
classifier is optional (the depth network does not need it; the TFLite check does).
"""

from typing import List, Optional, Sequence
import warnings

import torch
from torch import nn
import torch.nn.functional as F
from training.networks.base import collect_features
from training.networks.decoders import UNetDepthNet

# (expand ratio t, channels c, repeats n, first stride s), as in the paper and torchvision.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# Indices into ``features`` whose outputs are at strides 2, 4, 8, 16 and 32.
SKIP_INDICES = (1, 3, 6, 13, 18)
ENCODER_INPUTS = ('imagenet', 'inception')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count as torchvision does (never down by more than 10%)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class TFSameConv2d(nn.Conv2d):
    """
    Conv2d that can pad like TensorFlow's ``SAME`` for strided convolutions.

    With ``tf_padding`` a stride-2 3x3 convolution on an even size pads 0 before and 1 after
    (PyTorch pads 1 on both sides, shifting the sampling grid by one pixel). Weights converted
    from TensorFlow reproduce their logits only with TF padding. The module is a plain
    Conv2d for state-dict purposes.
    """

    def __init__(self, *args, tf_padding: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.tf_padding = bool(tf_padding) and self.stride[0] > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve, padding TF-style when asked."""
        if not self.tf_padding:
            return super().forward(x)
        pads = []
        for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                           (x.shape[-2], self.kernel_size[0], self.stride[0])):
            total = max((-(-int(size) // s) - 1) * s + k - int(size), 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0,
                        self.dilation, self.groups)


def conv_bn_relu6(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                  tf_padding: bool = False) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU6: torchvision's Conv2dNormActivation layout."""
    return nn.Sequential(
        TFSameConv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups,
                     bias=False, tf_padding=tf_padding),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear project (+ identity skip)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int,
                 tf_padding: bool = False):
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(in_ch, hidden, kernel=1))
        layers += [conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden,
                                 tf_padding=tf_padding),
                   nn.Conv2d(hidden, out_ch, 1, bias=False),
                   nn.BatchNorm2d(out_ch)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2Encoder(nn.Module):
    """
    MobileNetV2 feature extractor returning features at strides 2, 4, 8, 16 and 32.

    ``input_norm`` says what the first layer expects: ``imagenet`` (torchvision weights) or
    ``inception`` (x in [-1, 1], what the TFLite ImageNet model was trained on). The input
    to :meth:`forward` is always ImageNet-normalised; with ``inception`` it is mapped back
    to [-1, 1] inside the network, a fixed per-channel affine that exports with the graph.
    """

    def __init__(self, width_mult: float = 1.0, num_classes: int = 0,
                 tf_padding: bool = False, input_norm: str = 'imagenet'):
        super().__init__()
        if input_norm not in ENCODER_INPUTS:
            raise ValueError(f'input_norm must be one of {ENCODER_INPUTS}, got {input_norm!r}')
        if width_mult <= 0:
            raise ValueError(f'width_mult must be positive, got {width_mult}')
        self.input_norm = input_norm
        in_ch = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: List[nn.Module] = [conv_bn_relu6(3, in_ch, stride=2, tf_padding=tf_padding)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out_ch = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t,
                                               tf_padding=tf_padding))
                in_ch = out_ch
        layers.append(conv_bn_relu6(in_ch, last, kernel=1))
        self.features = nn.Sequential(*layers)
        self.channels = [self._channels_after(i) for i in SKIP_INDICES]
        self.classifier: Optional[nn.Sequential] = None
        if num_classes:
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # ImageNet-normalised -> [-1, 1]: x01 = x * std + mean, then 2 * x01 - 1.
        self.register_buffer('renorm_scale', 2.0 * std, persistent=False)
        self.register_buffer('renorm_shift', 2.0 * mean - 1.0, persistent=False)

    def _channels_after(self, index: int) -> int:
        block = self.features[index]
        if isinstance(block, InvertedResidual):
            return block.out_channels
        return block[0].out_channels

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Map ImageNet-normalised input to what the first layer was trained on."""
        if self.input_norm == 'inception':
            return x * self.renorm_scale + self.renorm_shift
        return x

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return the five skip features, finest first."""
        return collect_features(self.features, SKIP_INDICES, self.prepare_input(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits (needs ``num_classes``); x as for :meth:`forward`."""
        if self.classifier is None:
            raise RuntimeError('this encoder was built without a classifier (num_classes=0)')
        x = self.features(self.prepare_input(x))
        return self.classifier(x.mean(dim=(2, 3)))


class MobileNetV2UNet(UNetDepthNet):
    """
    The seeds' network: MobileNetV2 encoder + U-Net decoder with skips at strides 16..2.

    The decoder ends at 1/2 resolution; a final bilinear up-sampling brings the output to
    the input size. Any input size works (sizes that are not multiples of 32 included).
    ``pretrained`` is a path to the ImageNet TFLite (see training/tflite_import.py); use it
    with ``tf_padding=True`` and ``input_norm='inception'`` to run the weights as trained.
    """

    def __init__(self, width_mult: float = 1.0,
                 decoder_channels: Sequence[int] = (256, 128, 64, 32),
                 freeze_encoder: bool = False, pretrained: Optional[str] = None,
                 output: str = 'depth', tf_padding: bool = False,
                 input_norm: str = 'imagenet'):
        encoder = MobileNetV2Encoder(width_mult, tf_padding=tf_padding, input_norm=input_norm)
        if pretrained:
            if not (tf_padding and input_norm == 'inception'):
                warnings.warn('TFLite ImageNet weights expect tf_padding=True and '
                              "input_norm='inception'; features will be off otherwise")
            from training.tflite_import import load_mobilenetv2_tflite
            load_mobilenetv2_tflite(encoder, pretrained)
        super().__init__(encoder, decoder_channels, freeze_encoder, output)
