"""
Monodepth2's pose network: a ResNet18 on a stacked frame pair, then the pose decoder.

The encoder is :class:`ResNetEncoder` with ``num_input_images=2`` (6 input channels); from
torchvision weights its first convolution is the pretrained one duplicated over the two
frames and halved, so a pair of equal frames gives the pretrained response. The decoder
(1x1 squeeze, two 3x3 convolutions, a 1x1 to 6 numbers averaged over the image, times
0.01) gives an axis-angle rotation and a translation. ``POSE_NETWORKS`` is the registry;
Monodepth2's small PoseCNN is the other entry.
"""

from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from training.geometry import pose_to_matrix
from training.networks.decoders import PoseDecoder
from training.networks.resnet import ResNetEncoder


class ResNet18Pose(nn.Module):
    """Frame pair (each (N, 3, H, W), normalised) -> axis-angle and translation (N, 3)."""

    def __init__(self, pretrained: Optional[str] = None):
        super().__init__()
        self.encoder = ResNetEncoder(num_input_images=2)
        if pretrained:
            self.encoder.load_torchvision(
                torch.load(pretrained, map_location='cpu', weights_only=True))
        self.decoder = PoseDecoder(self.encoder.channels[-1], num_input_features=1,
                                   num_frames_to_predict_for=1)

    def forward(self, first: torch.Tensor,
                second: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (axis_angle, translation), each (N, 3), of the motion first -> second."""
        features = self.encoder(torch.cat([first, second], dim=1))
        axis_angle, translation = self.decoder([features[-1]])
        return axis_angle[:, 0, 0], translation[:, 0, 0]


def pair_transform(pose_net: nn.Module, target: torch.Tensor, source: torch.Tensor,
                   source_before: bool) -> torch.Tensor:
    """
    Return T_t2s (N, 4, 4) from a pose network's forward (plain or DDP-wrapped).

    As Monodepth2, the pair is always fed in temporal order, and the prediction for a
    source before the target is inverted, so the network sees one kind of motion: for
    (first, second) it predicts the transform taking points of ``first``'s camera frame
    into ``second``'s.
    """
    if source_before:
        axis_angle, translation = pose_net(source, target)
        return pose_to_matrix(axis_angle, translation, invert=True)
    axis_angle, translation = pose_net(target, source)
    return pose_to_matrix(axis_angle, translation)


class PoseCNN(nn.Module):
    """
    The small pose CNN Monodepth2 offers besides the ResNet (``--pose_model_type posecnn``).

    Seven stride-2 convolutions with ReLU on the stacked pair, a 1x1 convolution to 6
    numbers averaged over the image, times 0.01. Much cheaper than the ResNet18 at small
    sizes, which is what CPU smoke runs and tests need.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128, 256, 256, 256)):
        super().__init__()
        kernels = (7, 5, 3, 3, 3, 3, 3)
        if len(channels) != len(kernels):
            raise ValueError(f'PoseCNN takes {len(kernels)} channel counts, got {channels}')
        layers, in_ch = [], 6
        for out_ch, k in zip(channels, kernels):
            layers += [nn.Conv2d(in_ch, int(out_ch), k, 2, k // 2), nn.ReLU(inplace=True)]
            in_ch = int(out_ch)
        self.convs = nn.Sequential(*layers)
        self.pose_conv = nn.Conv2d(in_ch, 6, 1)

    def forward(self, first: torch.Tensor,
                second: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (axis_angle, translation), each (N, 3), of the motion first -> second."""
        out = 0.01 * self.pose_conv(self.convs(torch.cat([first, second], dim=1))).mean(
            dim=(2, 3))
        return out[:, :3], out[:, 3:]


# Pose network name -> class (``selfsup.pose_arch``): add a new one here.
POSE_NETWORKS = {'resnet18_pose': ResNet18Pose, 'posecnn': PoseCNN}


def build_pose_net(name: str, pretrained: Optional[str] = None) -> nn.Module:
    """Build a pose network by name; ``pretrained`` (torchvision weights) is ResNet-only."""
    if name not in POSE_NETWORKS:
        raise ValueError(f'unknown pose network {name!r}; known: {", ".join(POSE_NETWORKS)}')
    if name == 'resnet18_pose':
        return ResNet18Pose(pretrained=pretrained or None)
    if pretrained:
        raise ValueError(f'pose network {name} has no pretrained weights to load')
    return POSE_NETWORKS[name]()
