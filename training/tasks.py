"""
What a training run learns: the :class:`Task` interface, and dense supervision.

``Trainer`` (:mod:`training.trainer`) knows nothing about depth supervision: it runs a
Task, whose ``compute_loss(model, batch) -> (loss, logs)`` and ``predict(model, batch) ->
depth`` define the learning problem. :class:`SupervisedDepthTask` is the dense one; the
self-supervised task is :mod:`training.selfsup`'s, the ensemble's :mod:`training.ensemble`'s,
and ``training.run.TASKS`` maps the config's ``task`` to them.
"""

from typing import Any, Callable, Dict, Mapping, Tuple

import torch
import torch.nn.functional as F
from training import checkpoint as ckpt_io
from training.datasets.augment import normalize


class Task:
    """What is learnt: the trainer calls these and nothing else of the problem."""

    #: validation and evaluation rescale predictions by the median ratio (relative models)
    median_scaling = False
    #: neighbouring frames each sample must carry (sequence datasets)
    frame_offsets: Tuple[int, ...] = ()
    #: whether each sample must carry its stereo partner
    stereo_pairs = False
    #: batch keys holding images that get the same photometric jitter as ``image``
    image_keys: Tuple[str, ...] = ('image',)
    #: validation also reports the task's ``photometric`` loss term (its val set then
    #: carries ``frame_offsets`` too): a score for data without ground-truth depth
    validation_loss = False

    def modules(self) -> Dict[str, torch.nn.Module]:
        """Return the task's own trainable modules by name (none by default)."""
        return {}

    def attach(self, modules: Mapping[str, torch.nn.Module]) -> None:
        """Receive the modules of :meth:`modules` as the trainer placed them (device, DDP)."""

    def describe(self, meta):
        """Return the ModelMeta of a model trained by this task (unchanged by default)."""
        return meta

    def compute_loss(self, model: torch.nn.Module,
                     batch: Mapping[str, Any]) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Return (scalar loss, dict of floats to log)."""
        raise NotImplementedError

    def predict(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
        """Return metric depth (N, 1, H, W) for the batch."""
        raise NotImplementedError


class SupervisedDepthTask(Task):
    """Dense supervision: a loss between predicted and ground-truth metric depth."""

    def __init__(self, loss: Callable, min_depth: float, max_depth: float,
                 mean=None, std=None):
        from mono_depth_ros.core.model_meta import IMAGENET_MEAN, IMAGENET_STD
        self.loss = loss
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.mean = tuple(mean or IMAGENET_MEAN)
        self.std = tuple(std or IMAGENET_STD)

    def inputs(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Return the ImageNet-normalised network input."""
        return normalize(batch['image'], self.mean, self.std)

    def compute_loss(self, model, batch):
        """Average the loss over the network's scales, each upsampled to the target size."""
        net = ckpt_io.unwrap(model)
        x = self.inputs(batch)
        if model is not net:
            # DDP synchronises gradients through forward() only, so wrapped models train on
            # their single-scale output.
            outputs = [model(x)]
        else:
            outputs = net.forward_multiscale(x) if hasattr(net, 'forward_multiscale') \
                else [model(x)]
        target, mask = batch['depth'], batch['mask'] & (batch['depth'] >= self.min_depth) & \
            (batch['depth'] <= self.max_depth)
        total = 0.0
        logs = {}
        for i, raw in enumerate(outputs):
            if raw.shape[-2:] != target.shape[-2:]:
                raw = F.interpolate(raw, size=target.shape[-2:], mode='bilinear',
                                    align_corners=False)
            depth = net.to_depth(raw.float(), self.min_depth, self.max_depth)
            value = self.loss(depth, target, mask)
            logs[f'loss_s{i}'] = float(value.detach())
            total = total + value
        total = total / len(outputs)
        return total, logs

    @torch.no_grad()
    def predict(self, model, batch):
        """Return depth clamped to [min_depth, max_depth]."""
        net = ckpt_io.unwrap(model)
        raw = net(self.inputs(batch))
        return net.to_depth(raw.float(), self.min_depth, self.max_depth).clamp(
            self.min_depth, self.max_depth)
