"""
Load YOLOv8 backbone weights saved from ultralytics into the zoo's YOLOv8 encoder.

ultralytics needs torchvision, so it does not run everywhere; on a machine where it does,
save the plain state dict of a YOLOv8n (or -seg, or s) model once, in Python::

    import torch
    from ultralytics import YOLO
    torch.save(YOLO('yolov8n-seg.pt').model.state_dict(), 'yolov8n_backbone.pt')

That file holds only tensors, so it loads here with ``torch.load(weights_only=True)``
(the ``.pt`` files ultralytics distributes pickle whole Python objects and do not). Keys
``model.0.*`` .. ``model.9.*`` are the backbone and map one to one onto
:class:`training.networks.yolov8.YOLOv8Encoder` (a file saved from ``model.model.model``,
without the ``model.`` prefix, maps too). Everything else (the neck and the detection or
segmentation head, layers 10 and up) is reported as not mapped. A backbone key missing
from the file, a wrong shape or a non-tensor value is refused with a message naming it.

    python training/check_yolov8_backbone.py yolov8n_backbone.pt [--scale n]

checks a file and prints what maps and what does not.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch
from torch import nn

BACKBONE_LAYERS = 10  # ultralytics layers 0-9: up to and including SPPF
_KEY = re.compile(r'^(?:model\.)?(\d+)\.(.+)$')
_LOG = logging.getLogger(__name__)


class YOLOv8ImportError(ValueError):
    """The file cannot be loaded into the encoder; the message says which key and why."""


def read_state_dict(path: str) -> Dict[str, Any]:
    """Read a plain state dict with ``weights_only=True``; refuse anything else clearly."""
    if not os.path.isfile(path):
        raise YOLOv8ImportError(f'YOLOv8 weights not found: {path}')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise YOLOv8ImportError(
            f'cannot read {path} as a plain state dict ({exc}). An ultralytics .pt '
            'checkpoint pickles Python objects and is not loaded here; save '
            "YOLO('yolov8n.pt').model.state_dict() with torch.save on a machine with "
            'ultralytics (see training/yolov8_import.py)') from exc
    if isinstance(state, Mapping) and 'state_dict' in state and \
            isinstance(state['state_dict'], Mapping):
        state = state['state_dict']
    if not isinstance(state, Mapping) or not state:
        raise YOLOv8ImportError(f'{path} does not hold a state dict (got {type(state).__name__})')
    return dict(state)


def map_keys(state: Mapping[str, Any]) -> Dict[str, Any]:
    """
    Split an ultralytics state dict into backbone entries and the rest.

    Returns {'mapped': {encoder key: value}, 'unmapped': [file keys not mapped]}.
    """
    mapped: Dict[str, Any] = {}
    unmapped: List[str] = []
    for key, value in state.items():
        match = _KEY.match(str(key))
        if match and int(match.group(1)) < BACKBONE_LAYERS:
            mapped[f'model.{int(match.group(1))}.{match.group(2)}'] = value
        else:
            unmapped.append(str(key))
    return {'mapped': mapped, 'unmapped': unmapped}


def _shape_hint(mapped: Mapping[str, Any]) -> str:
    stem = mapped.get('model.0.conv.weight')
    if torch.is_tensor(stem) and stem.dim() == 4:
        width = stem.shape[0] / 64.0
        return f' (the stem in the file has {stem.shape[0]} channels: width multiple {width:g})'
    return ''


def load_yolov8_backbone(encoder: nn.Module, path_or_state,
                         log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """
    Copy backbone weights from a file (or an already loaded state dict) into ``encoder``.

    Every encoder tensor must come from the file with the same shape; values are cast to
    the encoder's dtype (ultralytics files are often fp16). Returns a report
    {'loaded': [encoder keys], 'unmapped': [file keys not used]} and logs the unmapped keys
    (through ``log``, or this module's logger).
    """
    log = log or _LOG.info
    source = path_or_state if isinstance(path_or_state, str) else '<state dict>'
    state = read_state_dict(path_or_state) if isinstance(path_or_state, str) \
        else dict(path_or_state)
    split = map_keys(state)
    mapped, unmapped = split['mapped'], split['unmapped']
    target = encoder.state_dict()
    missing = [k for k in target if k not in mapped]
    if missing:
        fused = any(k.endswith('conv.bias') for k in mapped) and \
            not any('.bn.' in k for k in mapped)
        hint = (' The file looks fused (convolutions with biases, no batch norms): save the '
                'state dict before calling model.fuse().' if fused else '')
        raise YOLOv8ImportError(
            f'{source} lacks {len(missing)} backbone tensor(s) the encoder needs, e.g. '
            f'{", ".join(missing[:5])}.{hint}')
    extra = [k for k in mapped if k not in target]
    for key in list(mapped):
        value = mapped[key]
        if key in extra:
            continue
        if not torch.is_tensor(value):
            raise YOLOv8ImportError(f'{source}: {key} is a {type(value).__name__}, not a tensor')
        want = target[key]
        if tuple(value.shape) != tuple(want.shape):
            raise YOLOv8ImportError(
                f'{source}: {key} has shape {tuple(value.shape)} but the '
                f'{getattr(encoder, "scale", "?")} encoder needs {tuple(want.shape)}'
                f'{_shape_hint(mapped)}; build the encoder at the scale the file was saved '
                'at (yolov8n or yolov8s)')
    unmapped = unmapped + extra
    new_state = {k: mapped[k].to(dtype=target[k].dtype) for k in target}
    encoder.load_state_dict(new_state, strict=True)
    if unmapped:
        log(f'YOLOv8 import from {source}: {len(target)} backbone tensors loaded; '
            f'{len(unmapped)} key(s) not mapped (neck/head or unknown): ' + ', '.join(unmapped))
    else:
        log(f'YOLOv8 import from {source}: {len(target)} backbone tensors loaded, '
            'every key mapped')
    return {'loaded': list(target), 'unmapped': unmapped}
