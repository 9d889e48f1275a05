"""
The network of a training config: its architecture resolved, built and warm-started.

``model.init_checkpoint`` (a checkpoint, an ONNX export, or ``bundled``: the node's
default model) gives the initial weights and, with ``model.arch`` empty, the architecture
itself; ``model.trainable`` restricts training to some parameters.
"""

from typing import Any, Dict, Mapping

import torch
from training import checkpoint as ckpt_io


def resolve_init(config: Mapping[str, Any]) -> Dict[str, Any]:
    """
    Return config with model.init_checkpoint and an empty model.arch resolved.

    ``init_checkpoint: bundled`` is the node's bundled default model; with ``arch: ''`` the
    architecture and its arguments come from the init model (a checkpoint's or an ONNX
    export's metadata), ``model.args`` overriding single arguments (``freeze_encoder``).
    """
    import copy
    config = copy.deepcopy(dict(config))
    mcfg = config['model']
    init = mcfg['init_checkpoint']
    if init == 'bundled':
        from mono_depth_ros.core.paths import package_file
        from mono_depth_ros.ros.depth_node import BUNDLED_MODEL
        init = mcfg['init_checkpoint'] = package_file('models', BUNDLED_MODEL)
    bag = config['data']['rosbag']
    fit_from_init = config['data']['dataset'] == 'rosbag' and bag['resize_mode'] == 'init'
    if not mcfg['arch'] or fit_from_init:
        if not init:
            raise ValueError("model.arch '' or data.rosbag.resize_mode init means the init "
                             "model's, but model.init_checkpoint is empty")
        if init.lower().endswith('.onnx'):
            from training.onnx_init import read_meta
            meta = read_meta(init)
        else:
            from mono_depth_ros.core.model_meta import ModelMeta
            meta = ModelMeta.from_dict(ckpt_io.load_checkpoint(init)['meta'])
    if not mcfg['arch']:
        from training.networks import rebuild_args
        mcfg['arch'] = meta.arch
        mcfg['args'] = {**rebuild_args(dict(meta.arch_args)), **dict(mcfg['args'] or {})}
    if fit_from_init:
        if meta.resize_mode not in ('stretch', 'crop'):
            raise ValueError(f'the init model fits images by {meta.resize_mode}, which '
                             'training cannot; set data.rosbag.resize_mode stretch or crop')
        bag.update(resize_mode=meta.resize_mode, fit_aspect=float(meta.fit_aspect),
                   crop_fraction=float(meta.crop_fraction))
    return config


def build_model_from_config(config: Mapping[str, Any]) -> torch.nn.Module:
    """Build the configured network; warm-start it from model.init_checkpoint if set."""
    from training.networks import build_model
    mcfg = config['model']
    model = build_model(mcfg['arch'], **dict(mcfg['args'] or {}))
    init = mcfg['init_checkpoint']
    if init and init.lower().endswith('.onnx'):
        from training.onnx_init import load_onnx_weights, read_meta
        meta = read_meta(init)
        if meta.arch != mcfg['arch']:
            raise ValueError(f'model.init_checkpoint {init} is a {meta.arch}, not the '
                             f'configured {mcfg["arch"]}')
        load_onnx_weights(model, init, meta.input_height, meta.input_width)
    elif init:
        ck = ckpt_io.load_checkpoint(init)
        model.load_state_dict(ck['model'])
    trainable = tuple(mcfg['trainable'] or ())
    if trainable:
        names = [name for name, _p in model.named_parameters()]
        unknown = [t for t in trainable if not any(n.startswith(t) for n in names)]
        if unknown:
            raise ValueError(f'model.trainable names no parameter of {mcfg["arch"]}: '
                             f'{", ".join(unknown)}')
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(trainable))
    return model
