"""
FastDepth (Wofk et al., ICRA 2019): MobileNet encoder + NNConv5 depthwise-separable decoder.

The layout and state-dict keys are those of FastDepth's ``MobileNetSkipAdd``
(github.com/dwofk/fast-depth, ``models.py`` lines 654-732, commit e684920):

* ``conv0`` ... ``conv13``: MobileNet v1 (``imagenet/mobilenet.py`` lines 22-54):
  ``conv0`` = 3x3 stride-2 conv + BatchNorm + ReLU6; ``conv1``-``conv13`` = 3x3 depthwise +
  BN + ReLU6 then 1x1 pointwise + BN + ReLU6 (keys ``convN.0``/``.1`` and ``convN.3``/``.4``),
  stride 2 at ``conv2``, ``conv4``, ``conv6`` and ``conv12``; PyTorch padding 1;
* ``decode_conv1`` ... ``decode_conv5``: 5x5 depthwise + BN + ReLU, then 1x1 pointwise + BN
  + ReLU (``models.py`` lines 61-75 and 683-697), each followed by a 2x nearest up-sampling
  (line 723); the outputs of ``conv5``, ``conv3`` and ``conv1`` are *added* after decoder
  stages 2, 3 and 4 (lines 714-729);
* ``decode_conv6``: 1x1 pointwise + BN + ReLU to one channel: metres (line 698).

The network was trained on RGB in [0, 1] (``dataloaders/nyu.py`` line 56, ``/ 255``), not
ImageNet-normalised input: the zoo's input is mapped back to [0, 1] inside the network (a
fixed per-channel affine that exports with the graph).

Channel widths are arguments: the default is the NetAdapt-pruned network that FastDepth
ships ("mobilenet-nnconv5dw-skipadd-pruned", README line 41) with the widths of openmv's
``fast_depth_224.tflite``; ``FULL_ENCODER``/``FULL_DECODER`` are the unpruned ones.
``pretrained`` is a path to that TFLite (``training/tflite_import.load_fastdepth_tflite``).
"""

from typing import List, Optional, Sequence

import torch
from torch import nn
from training.networks.base import DepthNet, upsample_to
from training.networks.mobilenetv2 import IMAGENET_MEAN, IMAGENET_STD

#: the pruned widths of the shipped FastDepth (openmv's fast_depth_224.tflite)
PRUNED_ENCODER = (16, 56, 88, 120, 144, 256, 408, 376, 272, 288, 296, 328, 480, 512)
PRUNED_DECODER = (200, 256, 120, 56, 16)
#: MobileNet v1 and NNConv5 before pruning (imagenet/mobilenet.py 41-54, models.py 683-697)
FULL_ENCODER = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
FULL_DECODER = (512, 256, 128, 64, 32)
ENCODER_STRIDES = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
#: decoder stage (1-based) -> the encoder block whose output it adds (models.py 714-729)
SKIPS = {2: 5, 3: 3, 4: 1}
DECODER_KERNEL = 5


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, groups: int,
             act: nn.Module) -> List[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_ch), act]


class FastDepth(DepthNet):
    """
    FastDepth's MobileNet-NNConv5(depthwise) with additive skips; output: depth in metres.

    Any input whose sides are multiples of 32 runs as trained; other sizes run too (each
    up-sampling goes to the size of the feature it meets). The raw output is metric depth
    (ReLU), ``output_spec`` metric with scale 1.
    """

    output = 'linear'
    SKIPS = SKIPS  # the TFLite importer reads the layout from the model it fills

    def __init__(self, encoder_channels: Sequence[int] = PRUNED_ENCODER,
                 decoder_channels: Sequence[int] = PRUNED_DECODER,
                 pretrained: Optional[str] = None, freeze_encoder: bool = False):
        super().__init__()
        enc, dec = [int(c) for c in encoder_channels], [int(c) for c in decoder_channels]
        if len(enc) != len(ENCODER_STRIDES) or len(dec) != 5 or min(enc + dec) < 1:
            raise ValueError(f'FastDepth needs 14 encoder and 5 decoder widths (positive), '
                             f'got {len(enc)} and {len(dec)}')
        for stage, block in SKIPS.items():
            if dec[stage - 1] != enc[block]:
                raise ValueError(f'decoder stage {stage} ({dec[stage - 1]} channels) must '
                                 f'match encoder block {block} ({enc[block]}) to add its skip')
        self.encoder_channels, self.decoder_channels = tuple(enc), tuple(dec)
        in_ch = 3
        for i, (out_ch, stride) in enumerate(zip(enc, ENCODER_STRIDES)):
            if i == 0:
                layers = _conv_bn(3, out_ch, 3, stride, 1, nn.ReLU6(inplace=True))
            else:
                layers = (_conv_bn(in_ch, in_ch, 3, stride, in_ch, nn.ReLU6(inplace=True)) +
                          _conv_bn(in_ch, out_ch, 1, 1, 1, nn.ReLU6(inplace=True)))
            setattr(self, f'conv{i}', nn.Sequential(*layers))
            in_ch = out_ch
        for i, out_ch in enumerate(dec, start=1):
            setattr(self, f'decode_conv{i}', nn.Sequential(
                nn.Sequential(*_conv_bn(in_ch, in_ch, DECODER_KERNEL, 1, in_ch,
                                        nn.ReLU(inplace=True))),
                nn.Sequential(*_conv_bn(in_ch, out_ch, 1, 1, 1, nn.ReLU(inplace=True)))))
            in_ch = out_ch
        self.decode_conv6 = nn.Sequential(*_conv_bn(in_ch, 1, 1, 1, 1, nn.ReLU(inplace=True)))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # ImageNet-normalised -> [0, 1] RGB: x01 = x * std + mean.
        self.register_buffer('renorm_scale', std, persistent=False)
        self.register_buffer('renorm_shift', mean, persistent=False)
        if pretrained:
            from training.tflite_import import load_fastdepth_tflite
            load_fastdepth_tflite(self, pretrained)
        if freeze_encoder:
            self.freeze_encoder()

    @property
    def encoder(self) -> nn.ModuleList:
        """Return the encoder blocks conv0..conv13 (upstream keeps them at the top level)."""
        return nn.ModuleList(getattr(self, f'conv{i}') for i in range(len(ENCODER_STRIDES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return depth in metres (N, 1, H, W) for ImageNet-normalised RGB."""
        size_of = x
        x = x * self.renorm_scale + self.renorm_shift
        features = []
        for i in range(len(ENCODER_STRIDES)):
            x = getattr(self, f'conv{i}')(x)
            features.append(x)
        # Up-sampling targets: the feature one stride finer (14 -> 28 ... -> the input).
        targets = {1: features[11], 2: features[5], 3: features[3], 4: features[1],
                   5: size_of}
        for stage in range(1, 6):
            x = getattr(self, f'decode_conv{stage}')(x)
            x = upsample_to(x, targets[stage], mode='nearest')
            if stage in SKIPS:
                x = x + features[SKIPS[stage]]
        return self.decode_conv6(x)
