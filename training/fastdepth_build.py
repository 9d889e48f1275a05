#!/usr/bin/env python3
"""
Build the bundled ``models/fastdepth_nyu.onnx`` from FastDepth's int8 TFLite, reproducibly.

The input is openmv's ``fast_depth_224.tflite`` (FastDepth, Wofk et al. 2019, MIT; via
openmv, MIT), found in the shared sample data (``models/fastdepth_openmv``) and checked
by its sha256. The steps:

1. its weights are dequantized into the zoo's ``fastdepth`` network
   (``training/tflite_import.load_fastdepth_tflite``: every tensor mapped, shapes checked);
2. the metadata is written as FastDepth's own NYU evaluation fitted its pictures
   (fast-depth ``dataloaders/nyu.py`` lines 48-59: rows scaled by 250/480, a 228 x 304
   centre crop, then 224 x 224): ``resize_mode`` crop with ``fit_aspect`` 304/228 and
   ``crop_fraction`` 228/250, the focal it was trained at, metric output;
3. it is exported with float activations (``training/export_onnx.py``), checked against
   PyTorch by ONNX Runtime; ``--checkpoint`` also writes a training checkpoint (fine-tune
   from it with ``model.init_checkpoint``).

``--parity`` then runs the float ONNX and the int8 TFLite (``ai_edge_litert``) through the
node's frame pipeline on the real samples and prints the depth difference in metres and
each one's delta1 (``--json`` keeps the figures).

    python scripts/models/build_fastdepth.py [--tflite FILE] [--output models/fastdepth_nyu.onnx]
        [--checkpoint runs/fastdepth_nyu.pt] [--parity] [--json runs/fastdepth_parity.json]
"""

import argparse
import hashlib
import json
import os
import sys
from typing import Dict, List, Optional

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mono_depth_ros.core.atomic import atomic_write_text  # noqa: E402
from mono_depth_ros.core.model_meta import IMAGENET_MEAN, IMAGENET_STD, ModelMeta  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TFLITE = os.path.join(ROOT, '..', 'shared', 'data', 'models', 'fastdepth_openmv',
                              'fast_depth_224.tflite')
DEFAULT_OUTPUT = os.path.join(ROOT, 'models', 'fastdepth_nyu.onnx')
TFLITE_SHA256 = 'e8957602750f16ac130210868f4403b38b4042f0d10c00b89ec03fc3dc840125'
SIZE = 224
#: NYU's Kinect colour camera at 640 x 480 (the shared NYU samples' intrinsics)
KINECT_FX, KINECT_FY = 518.8579, 519.4696
# fast-depth dataloaders/nyu.py 51-53: Resize(250 / 480) gives 250 x 333 (scipy's imresize
# truncates 333.3), CenterCrop((228, 304)), Resize((224, 224)). The focal at the input:
TRAIN_FX = KINECT_FX * (333 / 640) * (SIZE / 304)
TRAIN_FY = KINECT_FY * (250 / 480) * (SIZE / 228)
FIT_ASPECT = 304 / 228          # the 4:3 crop squeezed to the square input
CROP_FRACTION = 228 / 250       # 228 of 250 rows, 304 of 333 columns: a 0.912 zoom
NOTICE = ('FastDepth (Wofk, Ma, Yang, Karaman, Sze, ICRA 2019; github.com/dwofk/fast-depth, '
          'MIT License, Copyright (c) 2019 Diana Wofk), NYU Depth V2 weights from openmv '
          '(github.com/openmv/openmv lib/models/fast_depth_224.tflite, The MIT License, '
          'Copyright (c) 2013-2019 Ibrahim Abdelkader, Kwabena W. Agyeman), dequantized '
          'to float')


def sha256(path: str) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def fastdepth_meta(model) -> ModelMeta:
    """Return the checkpoint metadata of the imported FastDepth (float NCHW, normalised)."""
    spec = model.output_spec(0.1, 10.0)
    return ModelMeta(
        arch='fastdepth', input_height=SIZE, input_width=SIZE,
        arch_args={'encoder_channels': list(model.encoder_channels),
                   'decoder_channels': list(model.decoder_channels)},
        input_dtype='float32', input_layout='NCHW', normalize_in_graph=False,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, output_mode=spec['output_mode'],
        output_scale=spec['output_scale'], output_shift=spec['output_shift'],
        min_depth=0.1, max_depth=10.0, train_fx=TRAIN_FX, train_fy=TRAIN_FY,
        focal_rescale=True, resize_mode='crop', fit_aspect=FIT_ASPECT,
        crop_fraction=CROP_FRACTION, dataset='nyu', description=NOTICE)


def build(tflite: str, output: str, checkpoint: Optional[str] = None, log=print):
    """Import, describe and export; return (network, the exported ModelMeta)."""
    from training.export_onnx import export_model
    from training.networks import build_model
    got = sha256(tflite)
    if got != TFLITE_SHA256:
        raise SystemExit(f'error: {tflite} has sha256 {got}, not the FastDepth of openmv '
                         f'({TFLITE_SHA256})')
    model = build_model('fastdepth', pretrained=tflite).eval()
    meta = fastdepth_meta(model)
    if checkpoint:
        from training.checkpoint import save_checkpoint
        save_checkpoint(checkpoint, model, meta, config={'source': os.path.basename(tflite)})
        log(f'wrote {checkpoint}')
    out_meta, _records = export_model(model, meta, output, log=log)
    return model, out_meta


class TFLiteBackend:
    """The int8 TFLite behind the node's backend interface: uint8 NHWC in, metres out."""

    def __init__(self, path: str, meta: ModelMeta):
        from ai_edge_litert.interpreter import Interpreter
        self.meta = meta
        self.interpreter = Interpreter(model_path=path)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        scale, zero = self.output['quantization']
        self.scale, self.zero = float(scale), int(zero)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Run one (1, 224, 224, 3) uint8 tensor; return depth codes dequantized, (H, W)."""
        self.interpreter.set_tensor(self.input['index'], tensor)
        self.interpreter.invoke()
        q = self.interpreter.get_tensor(self.output['index'])[0, :, :, 0]
        return (self.scale * (q.astype(np.float32) - self.zero)).astype(np.float32)


def parity(onnx_path: str, tflite: str, sets: List[str], log=print) -> Dict[str, Dict]:
    """Return, per real set, delta1 of the float ONNX and of the int8 TFLite and their gap."""
    from training import floors, real_split
    from mono_depth_ros.core.frame import FrameProcessor
    from mono_depth_ros.inference import create_backend
    from training.evaluate import eval_config, predict
    from training.metrics import average_metrics, compute_depth_metrics
    real = floors.DEFAULT_REAL
    if not all(os.path.isdir(os.path.join(real, s)) for s in sets if s != 'kitti'):
        real_split.build(floors.DEFAULT_DATA, real)
    onnx_backend = create_backend('onnxruntime', onnx_path)
    meta = onnx_backend.meta
    runners = {'float': FrameProcessor(meta, onnx_backend, eval_config()),
               'int8': FrameProcessor(meta, TFLiteBackend(tflite, meta), eval_config())}
    out = {}
    for spec in floors.real_sets(names=sets):
        data = floors.open_set(spec)
        rows = {k: [] for k in runners}
        gaps = []
        for i in range(len(data)):
            sample = data.load(i)
            preds = {k: predict(p, sample) for k, p in runners.items()}
            both = np.isfinite(preds['float']) & np.isfinite(preds['int8'])
            gaps.append(np.abs(preds['float'][both] - preds['int8'][both]))
            for k, pred in preds.items():
                rows[k].append(compute_depth_metrics(pred, sample.depth, min_depth=0.1,
                                                     max_depth=spec.cap, crop=spec.crop))
        gap = np.concatenate(gaps)
        out[spec.name] = {
            'images': len(data),
            'float': average_metrics(rows['float']), 'int8': average_metrics(rows['int8']),
            'gap_mean_m': float(gap.mean()), 'gap_p95_m': float(np.percentile(gap, 95)),
            'gap_max_m': float(gap.max())}
        r = out[spec.name]
        log(f'{spec.name:12s} {len(data):3d} images  d1 float {r["float"]["d1"]:.3f} int8 '
            f'{r["int8"]["d1"]:.3f}  abs_rel float {r["float"]["abs_rel"]:.3f} int8 '
            f'{r["int8"]["abs_rel"]:.3f}  |float - int8| mean {r["gap_mean_m"]:.3f} m, '
            f'p95 {r["gap_p95_m"]:.3f} m, max {r["gap_max_m"]:.3f} m')
    return out


def main(argv=None) -> int:
    """Build the ONNX (and optionally the checkpoint), then optionally the parity table."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--tflite', default=DEFAULT_TFLITE)
    parser.add_argument('--output', default=DEFAULT_OUTPUT)
    parser.add_argument('--checkpoint', default=None, help='also write a training checkpoint')
    parser.add_argument('--parity', action='store_true',
                        help='compare with the int8 TFLite on the real samples')
    parser.add_argument('--sets', nargs='*',
                        default=['nyu_all', 'redwood', 'tum', 'kitti', 'sevenscenes'])
    parser.add_argument('--json', default=None, help='write the parity figures here')
    args = parser.parse_args(argv)
    if not os.path.isfile(args.tflite):
        parser.error(f'{args.tflite} not found (the shared models/fastdepth_openmv folder)')
    build(args.tflite, args.output, args.checkpoint)
    if args.parity:
        result = parity(args.output, args.tflite, args.sets)
        if args.json:
            atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
