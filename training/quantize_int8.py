#!/usr/bin/env python3
"""
Make an int8 copy of an exported depth ONNX with ONNX Runtime static quantization.

Weights int8 per channel, activations uint8, QDQ format, calibrated (min/max, or
percentile) on real *training* images (never the test split) and synthetic robot-view
rooms, each resized to the model's input the way the node does it. The metadata
(``mono_depth.*``) is copied over, so the node and ``depth_bench`` treat the int8 file like
the fp32 one.

    python scripts/models/quantize_int8.py --model models/starter_indoor.onnx \
        --output models/starter_indoor_int8.onnx [--real runs/real/nyu_train] [--synthetic 64]
"""

import argparse
import glob
import json
import os
import sys
import tempfile
from typing import Iterator, List, Optional

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
from mono_depth_ros.core.atomic import atomic_path  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def input_spec(model: onnx.ModelProto):
    """Return (name, layout 'NHWC'|'NCHW', dtype, height, width) of the single image input."""
    (inp,) = [i for i in model.graph.input
              if i.name not in {init.name for init in model.graph.initializer}]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    dtype = np.uint8 if inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8 \
        else np.float32
    if dims[-1] == 3:
        return inp.name, 'NHWC', dtype, dims[1], dims[2]
    return inp.name, 'NCHW', dtype, dims[2], dims[3]


def calibration_images(real_dirs: List[str], synthetic: int, height: int, width: int,
                       textures: Optional[str]) -> List[np.ndarray]:
    """Return RGB uint8 images at the model size: real ones, then synthetic robot views."""
    images = []
    for folder in real_dirs:
        for path in sorted(glob.glob(os.path.join(folder, '**', '*'), recursive=True)):
            if not path.lower().endswith(('.png', '.jpg', '.jpeg')) or 'depth' in path:
                continue
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is not None:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                images.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
    if synthetic:
        from mono_depth_ros.sim.synthetic import SyntheticStream
        stream = SyntheticStream(width, height, seed=777, frames_per_room=2, speed=0.3,
                                 style='robot', texture_dir=textures)
        images += [stream.frame(i).rgb for i in range(synthetic)]
    if not images:
        raise SystemExit('error: no calibration images')
    return images


class Reader:
    """onnxruntime CalibrationDataReader over prepared images."""

    def __init__(self, name: str, layout: str, dtype, images: List[np.ndarray]):
        self.name, self.layout, self.dtype = name, layout, dtype
        self.items: Iterator[np.ndarray] = iter(images)

    def get_next(self):
        """Return the next feed dict, or None at the end."""
        rgb = next(self.items, None)
        if rgb is None:
            return None
        x = rgb[None]
        if self.layout == 'NCHW':
            x = x.transpose(0, 3, 1, 2)
        if self.dtype == np.float32:
            x = x.astype(np.float32) / 255.0
        return {self.name: np.ascontiguousarray(x.astype(self.dtype))}

    def rewind(self):  # pragma: no cover - part of the reader interface
        """Not supported: one pass is all the calibrater needs."""
        raise NotImplementedError


def quantize(model_path: str, output: str, images: List[np.ndarray],
             method: str = 'minmax') -> None:
    """Quantize model_path into output (atomically), keeping its metadata."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, quantize_static,
                                          QuantType)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    model = onnx.load(model_path)
    name, layout, dtype, _h, _w = input_spec(model)
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, 'pre.onnx')
        quant_pre_process(model_path, pre, skip_symbolic_shape=True)
        out = os.path.join(tmp, 'int8.onnx')
        quantize_static(pre, out, Reader(name, layout, dtype, images),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method={'minmax': CalibrationMethod.MinMax,
                                          'percentile': CalibrationMethod.Percentile}[method],
                        extra_options={'CalibPercentile': 99.99} if method == 'percentile'
                        else {})
        quantized = onnx.load(out)
    del quantized.metadata_props[:]
    for prop in model.metadata_props:
        entry = quantized.metadata_props.add()
        entry.key, entry.value = prop.key, prop.value
        if prop.key == 'mono_depth.description':  # metadata values are JSON
            entry.value = json.dumps(json.loads(prop.value) +
                                     ' (int8, ONNX Runtime static quantization)')
    with atomic_path(output) as tmp_path:
        onnx.save(quantized, tmp_path)


def main(argv=None) -> int:
    """Parse arguments and quantize."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', required=True)
    parser.add_argument('--output', required=True)
    parser.add_argument('--real', nargs='*', default=[os.path.join(HERE, 'runs', 'real',
                                                                   'nyu_train')],
                        help='folders of real calibration images (training split only)')
    parser.add_argument('--synthetic', type=int, default=64, help='synthetic frames')
    parser.add_argument('--textures', default='/usr/share/backgrounds',
                        help='photo folder for the synthetic frames ("" for none)')
    parser.add_argument('--method', choices=('minmax', 'percentile'), default='minmax')
    args = parser.parse_args(argv)
    model = onnx.load(args.model)
    _name, _layout, _dtype, h, w = input_spec(model)
    textures = args.textures if args.textures and os.path.isdir(args.textures) else None
    images = calibration_images(args.real, args.synthetic, h, w, textures)
    quantize(args.model, args.output, images, args.method)
    sys.stdout.write(f'wrote {args.output} ({os.path.getsize(args.output) / 1e6:.1f} MB), '
                     f'calibrated on {len(images)} images\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
