"""
The model zoo: ``build_model(arch, **arch_args)`` and the ``ARCHITECTURES`` it knows.

Every model takes ImageNet-normalised RGB (N, 3, H, W) float and returns its raw output
(N, 1, H, W) at the input resolution; ``output_spec(min_depth, max_depth)`` says how raw
output maps to metres (ModelMeta conventions) and ``to_depth`` applies it in torch.
``arch_args`` are the constructor's keyword arguments; checkpoints store them so
``build_model(meta.arch, **meta.arch_args)`` rebuilds the same network.
"""

import inspect
from typing import Any, Dict, Mapping, Tuple

from mono_depth_ros.core.model_meta import ModelMeta
from torch import nn
from training.checkpoint import load_checkpoint
from training.networks.base import DepthNet, OUTPUTS
from training.networks.decoders import MonodepthDecoder, PoseDecoder, UNetDecoder
from training.networks.eigen import EigenMultiScale
from training.networks.ensemble import StackedEnsemble
from training.networks.fastdepth import FastDepth
from training.networks.mobilenetv2 import MobileNetV2Encoder, MobileNetV2UNet
from training.networks.resnet import ResNet18Monodepth, ResNetEncoder
from training.networks.squeezenet import SqueezeNetEncoder, SqueezeNetUNet
from training.networks.yolov8 import YOLOv8Encoder, YOLOv8nUNet, YOLOv8sUNet, YOLOv8UNet

ARCHITECTURES = {
    'mobilenetv2_unet': MobileNetV2UNet,
    'squeezenet_unet': SqueezeNetUNet,
    'resnet18_monodepth': ResNet18Monodepth,
    'eigen_multiscale': EigenMultiScale,
    'yolov8n': YOLOv8nUNet,
    'yolov8s': YOLOv8sUNet,
    'stacked_ensemble': StackedEnsemble,
    'fastdepth': FastDepth,
}

__all__ = ['ARCHITECTURES', 'DepthNet', 'EigenMultiScale', 'FastDepth', 'MobileNetV2Encoder',
           'MobileNetV2UNet', 'MonodepthDecoder', 'OUTPUTS', 'PoseDecoder', 'ResNet18Monodepth',
           'ResNetEncoder', 'SqueezeNetEncoder', 'SqueezeNetUNet', 'StackedEnsemble',
           'UNetDecoder', 'YOLOv8Encoder', 'YOLOv8nUNet', 'YOLOv8sUNet', 'YOLOv8UNet',
           'arch_arg_names', 'build_model', 'load_base', 'load_model', 'rebuild_args']

# Arguments that only matter when a network is first built for training: the weights they
# bring in are in the checkpoint afterwards, and the files they name may not exist where
# the checkpoint is loaded.
INIT_ONLY_ARGS = ('pretrained',)


def arch_arg_names(arch: str) -> Dict[str, Any]:
    """Return {argument name: default} accepted by ``build_model(arch, ...)``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f'unknown architecture {arch!r}; known: {", ".join(ARCHITECTURES)}')
    params = inspect.signature(ARCHITECTURES[arch].__init__).parameters
    return {name: p.default for name, p in params.items() if name != 'self'}


def build_model(arch: str, **arch_args: Any) -> nn.Module:
    """Build a zoo network by name; unknown argument names raise ValueError naming valid ones."""
    accepted = arch_arg_names(arch)
    unknown = sorted(set(arch_args) - set(accepted))
    if unknown:
        raise ValueError(f'{arch} does not take argument(s) {", ".join(unknown)}; '
                         f'it takes: {", ".join(sorted(accepted))}')
    return ARCHITECTURES[arch](**arch_args)


def rebuild_args(arch_args: Dict[str, Any]) -> Dict[str, Any]:
    """Return arch_args without the init-only ones, for rebuilding a network from a checkpoint."""
    return {k: v for k, v in arch_args.items() if k not in INIT_ONLY_ARGS}


def load_model(path: str, map_location='cpu') -> Tuple[nn.Module, ModelMeta]:
    """Return (network in eval mode, ModelMeta) rebuilt from a checkpoint."""
    ckpt = load_checkpoint(path, map_location)
    meta = ModelMeta.from_dict(ckpt['meta'])
    model = build_model(meta.arch, **rebuild_args(meta.arch_args))
    model.load_state_dict(ckpt['model'])
    return model.to(map_location).eval(), meta


def load_base(spec: Mapping[str, Any]) -> nn.Module:
    """Build an ensemble's base learner from its spec; load its checkpoint when one is named."""
    if spec['checkpoint']:
        model, meta = load_model(spec['checkpoint'])
        if meta.arch != spec['arch']:
            raise ValueError(f'{spec["checkpoint"]} holds a {meta.arch}, the ensemble '
                             f'expects a {spec["arch"]}')
        return model
    # A 'pretrained' file is read at first build only: the ensemble's checkpoint drops it
    # (training.ensemble.EnsembleTask.describe) because it holds the weights.
    return build_model(spec['arch'], **spec['args'])


StackedEnsemble.base_loader = staticmethod(load_base)
