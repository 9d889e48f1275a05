"""
Self-supervised depth from video (and stereo): Monodepth2 as a trainer task.

Per target frame, the depth network predicts sigmoid disparities at several scales; each is
upsampled to full resolution and mapped to depth = 1 / (a s + b) (a = 1/min - 1/max,
b = 1/max, the zoo's ``inverse`` head). The pose network gives T_t2s for each temporal
source (frames -1 and +1 by default); a stereo source uses the known baseline instead.
Each source is warped into the target (:mod:`training.geometry`), and the loss is the
per-pixel minimum over sources of the photometric error, auto-masked against the unwarped
sources, plus the edge-aware smoothness of the mean-normalised disparity, 1e-3 / 2**scale
(:mod:`training.losses`).

Trained from video alone the depth has no scale: validation and evaluation are median
scaled, and the model's metadata says ``relative_inverse_depth`` (s = a, t = b), so the
node never publishes metres from it without a scale source. With stereo the baseline fixes
the scale and the model stays ``inverse_depth`` (metric); so do known camera poses
(``pose_source: dataset``, e.g. the synthetic sequences' exact ones) in place of the pose
network.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from training import checkpoint as ckpt_io
from training import geometry
from training.datasets.augment import normalize
from training.datasets.base import STEREO_IMAGE as STEREO_KEY, STEREO_TX as STEREO_TX_KEY
from training.losses import edge_aware_smoothness, photometric_error, reprojection_loss
from training.networks.pose import build_pose_net, pair_transform
from training.tasks import Task


# selfsup.pose_source: learnt, the dataset's (metric), or the dataset's refined by a network.
POSE_SOURCES = ('network', 'dataset', 'dataset+network')


class SelfSupervisedTask(Task):
    """Monodepth2's losses on frame triplets (and/or stereo pairs), see the module docstring."""

    def __init__(self, min_depth: float, max_depth: float,
                 frame_ids: Sequence[int] = (-1, 1), mono: bool = True, stereo: bool = False,
                 scales: Sequence[int] = (0, 1, 2, 3), ssim_weight: float = 0.85,
                 smoothness: float = 1e-3, automask: bool = True,
                 min_reprojection: bool = True, pose_net: Optional[torch.nn.Module] = None,
                 pose_source: str = 'network', mean=None, std=None,
                 val_photometric: bool = False):
        from mono_depth_ros.core.model_meta import IMAGENET_MEAN, IMAGENET_STD
        if not mono and not stereo:
            raise ValueError('selfsup needs mono, stereo or both')
        frame_ids = tuple(int(f) for f in frame_ids) if mono else ()
        if mono and (not frame_ids or 0 in frame_ids):
            raise ValueError(f'selfsup.frame_ids must be non-zero offsets, got {frame_ids}')
        if pose_source not in POSE_SOURCES:
            raise ValueError(f'selfsup.pose_source must be one of {", ".join(POSE_SOURCES)}, '
                             f'got {pose_source!r}')
        if not 0 <= ssim_weight <= 1:
            raise ValueError(f'selfsup.ssim_weight must be in [0, 1], got {ssim_weight}')
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.frame_ids, self.mono, self.stereo = frame_ids, bool(mono), bool(stereo)
        self.scales = tuple(int(s) for s in scales)
        self.alpha, self.smoothness = float(ssim_weight), float(smoothness)
        self.automask, self.min_reprojection = bool(automask), bool(min_reprojection)
        self.mean = tuple(mean or IMAGENET_MEAN)
        self.std = tuple(std or IMAGENET_STD)
        self.frame_offsets = frame_ids
        self.stereo_pairs = self.stereo
        self.image_keys = ('image',) + tuple(f'image{f:+d}' for f in frame_ids) + \
            ((STEREO_KEY,) if stereo else ())
        self.known_poses = pose_source in ('dataset', 'dataset+network')
        # dataset+network: the pose network learns a correction on top of the known pose,
        # starting from none (its last layer zeroed), so training starts from the data's.
        self.refine = pose_source == 'dataset+network'
        if val_photometric and not (self.mono and self.known_poses):
            raise ValueError('selfsup.val_photometric needs mono with pose_source dataset '
                             '(a validation score from known poses)')
        self.validation_loss = bool(val_photometric)
        # Stereo (or known poses) fixes the scale; from video alone only median-scaled
        # numbers mean anything.
        self.metric = self.stereo or (self.mono and self.known_poses)
        self.median_scaling = not self.metric
        learnt = self.mono and (not self.known_poses or self.refine)
        if learnt and pose_net is None:
            pose_net = build_pose_net('resnet18_pose')
        self.pose_net = pose_net if learnt else None
        if self.refine:
            last = [m for m in self.pose_net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
            torch.nn.init.zeros_(last.weight)
            if last.bias is not None:
                torch.nn.init.zeros_(last.bias)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> 'SelfSupervisedTask':
        """Build from a resolved config (``selfsup`` and ``model`` sections)."""
        cfg, mcfg = config['selfsup'], config['model']
        pose = None
        if cfg['mono'] and cfg['pose_source'] in ('network', 'dataset+network'):
            pose = build_pose_net(cfg['pose_arch'], cfg['pose_pretrained'])
        return cls(mcfg['min_depth'], mcfg['max_depth'], frame_ids=cfg['frame_ids'],
                   mono=cfg['mono'], stereo=cfg['stereo'], scales=cfg['scales'],
                   ssim_weight=cfg['ssim_weight'], smoothness=cfg['smoothness'],
                   automask=cfg['automask'], min_reprojection=cfg['min_reprojection'],
                   pose_net=pose, pose_source=cfg['pose_source'],
                   val_photometric=cfg['val_photometric'])

    # -- the trainer's hooks --------------------------------------------------------------
    def modules(self) -> Dict[str, torch.nn.Module]:
        """Return the pose network (trained and checkpointed alongside the depth network)."""
        return {'pose': self.pose_net} if self.pose_net is not None else {}

    def attach(self, modules: Mapping[str, torch.nn.Module]) -> None:
        """Use the pose network as the trainer placed it (device, DDP)."""
        if 'pose' in modules:
            self.pose_net = modules['pose']

    def describe(self, meta):
        """Mark the output relative unless stereo (or known poses) fixed the scale."""
        if self.metric:
            how = 'a stereo baseline' if self.stereo else 'known metric camera poses'
            return dataclasses.replace(
                meta, description=f'{meta.description}, self-supervised with {how} (metric)')
        relative = {'inverse_depth': 'relative_inverse_depth', 'metric': 'relative_depth'}
        if meta.output_mode not in relative:
            raise ValueError(f'a {meta.output_mode} output has no relative counterpart')
        return dataclasses.replace(
            meta, output_mode=relative[meta.output_mode],
            # The photometric loss fixes the depth up to one factor; its zero is right.
            scale_unknown='scale',
            description=f'{meta.description}, self-supervised (relative: scale unknown)')

    # -- pieces ---------------------------------------------------------------------------
    def disparities(self, model, image: torch.Tensor):
        """Return the network's sigmoid disparities for the configured scales, finest first."""
        net = ckpt_io.unwrap(model)
        x = normalize(image, self.mean, self.std)
        if model is not net or not hasattr(net, 'forward_multiscale'):
            # DDP synchronises gradients through forward() only.
            return net, [model(x)]
        outputs = net.forward_multiscale(x)
        return net, [outputs[s] for s in self.scales if s < len(outputs)]

    def source_transforms(self, batch: Mapping[str, Any]) -> Dict[str, Tuple[torch.Tensor,
                                                                             torch.Tensor]]:
        """Return {key: (source image, T_t2s)} for every source of the batch."""
        target = batch['image']
        out = {}
        if self.mono:
            norm_t = normalize(target, self.mean, self.std)
            for f in self.frame_ids:
                key = f'image{f:+d}'
                source = batch[key]
                if self.known_poses:
                    t = geometry.relative_transform(batch['pose'], batch[f'pose{f:+d}'])
                    if not bool(torch.isfinite(t).all()):
                        raise ValueError('selfsup.pose_source is dataset, but the dataset '
                                         'has no poses for its frames')
                    if self.refine:
                        t = pair_transform(self.pose_net, norm_t,
                                           normalize(source, self.mean, self.std),
                                           source_before=f < 0) @ t
                else:
                    t = pair_transform(self.pose_net, norm_t,
                                       normalize(source, self.mean, self.std),
                                       source_before=f < 0)
                out[key] = (source, t)
        if self.stereo:
            out[STEREO_KEY] = (batch[STEREO_KEY],
                               geometry.stereo_transform(batch[STEREO_TX_KEY].float()).to(
                                   target.device))
        return out

    def compute_loss(self, model, batch):
        """Return (photometric + smoothness loss averaged over scales, logs)."""
        target, k = batch['image'], batch['K'].float()
        net, disps = self.disparities(model, target)
        pose_mode = None
        if self.pose_net is not None and self.pose_net.training != model.training:
            # Validation puts the depth network in eval mode: the pose network too (batch
            # norm statistics must not move on held-out frames).
            pose_mode = self.pose_net.training
            self.pose_net.train(model.training)
        try:
            sources = self.source_transforms(batch)
        finally:
            if pose_mode is not None:
                self.pose_net.train(pose_mode)
        identity = None
        if self.automask:
            identity = torch.cat([photometric_error(src, target, self.alpha)
                                  for src, _ in sources.values()], dim=1)
        total = 0.0
        logs: Dict[str, float] = {}
        full = target.shape[-2:]
        for i, disp in zip(self.scales, disps):
            disp_full = disp if disp.shape[-2:] == full else F.interpolate(
                disp, size=full, mode='bilinear', align_corners=False)
            depth = net.to_depth(disp_full.float(), self.min_depth, self.max_depth)
            warped = torch.cat([photometric_error(geometry.warp(src, depth, k, t)[0], target,
                                                  self.alpha)
                                for src, t in sources.values()], dim=1)
            reproj = reprojection_loss(warped, identity, self.min_reprojection)
            image_s = target if disp.shape[-2:] == full else F.interpolate(
                target, size=disp.shape[-2:], mode='area')
            # Smoothness is on disparity (Monodepth2); a metric-depth head gives depth.
            smooth_in = disp.float() if getattr(net, 'output', 'inverse') == 'inverse' else \
                1.0 / net.to_depth(disp.float(), self.min_depth,
                                   self.max_depth).clamp(min=self.min_depth)
            smooth = edge_aware_smoothness(smooth_in, image_s)
            value = reproj['loss'] + self.smoothness / (2 ** i) * smooth
            total = total + value
            logs[f'loss_s{i}'] = float(value.detach())
            if i == self.scales[0]:
                logs['photometric'] = float(reproj['loss'].detach())
                logs['automask'] = float(reproj['fraction'])
        return total / len(disps), logs

    @torch.no_grad()
    def predict(self, model, batch):
        """Return depth (up to scale without stereo) clamped to [min_depth, max_depth]."""
        net = ckpt_io.unwrap(model)
        raw = net(normalize(batch['image'], self.mean, self.std))
        return net.to_depth(raw.float(), self.min_depth, self.max_depth).clamp(
            self.min_depth, self.max_depth)
