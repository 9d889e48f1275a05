"""
``build_engine``: ONNX -> TensorRT engine in the engine cache, ahead of the node's first start.

    ros2 run mono_depth_ros build_engine --model model.onnx --precision fp16
    ros2 run mono_depth_ros build_engine --model model.onnx --precision int8 \
        --calibration-folder ~/calib_images [--output model_int8.engine]

The engine lands in the same cache the node uses (same key), so the node then starts in
seconds. With ``--output`` a copy (engine + sidecar JSON) is also written there, to be
passed to the node as ``model_path``. :class:`EngineBuildJob` raises exceptions; only
:func:`main` turns them into an exit status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Callable, Optional

from mono_depth_ros.core.atomic import atomic_path
from mono_depth_ros.inference.base import BackendError, PRECISIONS
from mono_depth_ros.inference.tensorrt.calibration import CalibrationError
from mono_depth_ros.inference.tensorrt.engine_cache import EngineCacheError, sidecar_path


class EngineBuildJob:
    """One engine build: validate the request, build or reuse, optionally copy out."""

    def __init__(self, model: str, precision: str = 'fp32',
                 engine_cache_dir: Optional[str] = None, workspace_gib: float = 1.0,
                 calibration_folder: Optional[str] = None,
                 calibration_cache: Optional[str] = None,
                 timing_cache: Optional[str] = None, height: Optional[int] = None,
                 width: Optional[int] = None, output: Optional[str] = None,
                 log: Callable[[str], None] = print):
        from mono_depth_ros.inference.tensorrt.backend import DEFAULT_CACHE_DIR
        self.model = model
        self.precision = precision
        self.engine_cache_dir = os.path.expanduser(engine_cache_dir or DEFAULT_CACHE_DIR)
        self.workspace_gib = workspace_gib
        self.calibration_folder = calibration_folder
        self.calibration_cache = calibration_cache
        self.timing_cache = timing_cache
        self.height, self.width = height, width
        self.output = output
        self.log = log

    def validate(self) -> None:
        """Raise a named exception for a request that cannot work, before any slow step."""
        if not os.path.isfile(self.model):
            raise BackendError(f'model file not found: {self.model}')
        if not self.model.lower().endswith('.onnx'):
            raise BackendError(f'build_engine takes an .onnx model, not {self.model}')
        if self.precision not in PRECISIONS:
            raise BackendError(f'precision {self.precision!r} not in {PRECISIONS}')
        if self.workspace_gib <= 0:
            raise BackendError(f'workspace must be positive, got {self.workspace_gib} GiB')
        if self.precision == 'int8':
            has_cache = self.calibration_cache and os.path.isfile(self.calibration_cache)
            if self.calibration_folder:
                if not os.path.isdir(self.calibration_folder):
                    raise CalibrationError(
                        f'calibration folder {self.calibration_folder} does not exist')
            elif not has_cache:
                raise CalibrationError('int8 needs --calibration-folder with a few hundred '
                                       'images like the robot sees, or --calibration-cache')
        if (self.height is None) != (self.width is None):
            raise BackendError('give both --height and --width, or neither')

    def run(self) -> str:
        """Build (or reuse) the engine; return the path of the engine to use."""
        self.validate()
        from mono_depth_ros.inference.tensorrt import cuda
        from mono_depth_ros.inference.tensorrt.builder import load_or_build_engine, onnx_meta
        trt = cuda.import_tensorrt()
        meta = onnx_meta(self.model)
        self.log(f'TensorRT {trt.__version__}; model {meta.arch} '
                 f'{meta.input_height}x{meta.input_width} ({meta.output_mode})')
        path, _data, built = load_or_build_engine(
            self.model, self.precision, meta, engine_cache_dir=self.engine_cache_dir,
            workspace_gib=self.workspace_gib, calibration_folder=self.calibration_folder,
            calibration_cache=self.calibration_cache, timing_cache=self.timing_cache,
            height=self.height, width=self.width, log=self.log)
        if self.output:
            self.copy_out(path, self.output)
            path = self.output
        return path

    @staticmethod
    def copy_out(engine_path: str, output: str) -> None:
        """Copy engine then sidecar to output (each atomically)."""
        if os.path.abspath(engine_path) == os.path.abspath(output):
            return
        for src, dst in ((engine_path, output), (sidecar_path(engine_path), sidecar_path(output))):
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog='build_engine', description=__doc__.split('\n')[1])
    parser.add_argument('--model', '--onnx', required=True, help='exported ONNX model')
    parser.add_argument('--precision', choices=PRECISIONS, default='fp16')
    parser.add_argument('--engine-cache-dir', help='default ~/.cache/mono_depth_ros/engines')
    parser.add_argument('--workspace-gib', type=float, default=1.0)
    parser.add_argument('--calibration-folder', help='int8: folder of real images')
    parser.add_argument('--calibration-cache', help='int8: calibration cache to read/write')
    parser.add_argument('--timing-cache', help='TensorRT timing cache file')
    parser.add_argument('--height', type=int, help='optimum height for dynamic models')
    parser.add_argument('--width', type=int, help='optimum width for dynamic models')
    parser.add_argument('--output', help='also copy the engine (+ .json sidecar) here')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Entry point of the build_engine console script."""
    args = parse_args(argv)
    job = EngineBuildJob(args.model, args.precision, args.engine_cache_dir, args.workspace_gib,
                         args.calibration_folder, args.calibration_cache, args.timing_cache,
                         args.height, args.width, args.output)
    try:
        path = job.run()
    except (BackendError, CalibrationError, EngineCacheError, OSError) as exc:
        print(f'build_engine: error: {exc}', file=sys.stderr)
        return 1
    print(f'engine ready: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
