"""
INT8 calibration for TensorRT: batches of real images from a folder, and a calibration cache.

The batching and the cache are plain numpy and files, so they are tested anywhere. The
TensorRT ``IInt8EntropyCalibrator2`` subclass is created only when asked for, by
:func:`make_entropy_calibrator`, with the base class and the device copy injectable: the
real ones need tensorrt and cuda-python, which exist only on the robot.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterator, List, Optional, Sequence

import cv2
from mono_depth_ros.core.atomic import atomic_write_bytes
from mono_depth_ros.core.frame import FrameProcessor
from mono_depth_ros.core.model_meta import ModelMeta
import numpy as np

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff')


class CalibrationError(ValueError):
    """The calibration folder or cache cannot be used; the message says why."""


def list_images(folder: str, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                recursive: bool = True) -> List[str]:
    """Return the image files under folder, sorted by path so that runs are reproducible."""
    if not os.path.isdir(folder):
        raise CalibrationError(f'calibration folder {folder} does not exist')
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in files
                     if name.lower().endswith(tuple(extensions)))
        if not recursive:
            break
    found.sort()
    return found


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; raise CalibrationError if unreadable."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise CalibrationError(f'cannot read calibration image {path}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class PipelineInput:
    """The model input tensor the frame pipeline makes of an image, at the meta's size."""

    def __init__(self, meta: ModelMeta):
        # Calibration batches have one shape (the profile's optimum): no per-image size.
        self.frames = FrameProcessor(dataclasses.replace(meta, size_multiple=0, size_policy=''),
                                     None)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        return self.frames.preprocess(rgb, self.frames.plan(w, h))


class CalibrationBatcher:
    """
    Model-ready batches (B, ...) from a folder of images, in sorted file order.

    Each image goes through the node's own frame pipeline (its resize mode included), so
    int8 ranges are measured on exactly the tensors the engine will see. The last batch is
    partial when the image count is not a multiple of ``batch_size``; :meth:`padded` fills
    it for engines whose calibration shape is fixed.
    """

    def __init__(self, folder: str, meta: ModelMeta, batch_size: int = 1,
                 max_images: Optional[int] = None, files: Optional[Sequence[str]] = None):
        if batch_size < 1:
            raise CalibrationError(f'batch_size must be >= 1, got {batch_size}')
        self.files = list(files) if files is not None else list_images(folder)
        if max_images is not None:
            self.files = self.files[:int(max_images)]
        if not self.files:
            raise CalibrationError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in {folder}')
        self.batch_size = int(batch_size)
        self.preprocess = PipelineInput(meta)

    def __len__(self) -> int:
        return (len(self.files) + self.batch_size - 1) // self.batch_size

    def batches(self) -> Iterator[np.ndarray]:
        """Yield contiguous batches; the last one may hold fewer than batch_size images."""
        for start in range(0, len(self.files), self.batch_size):
            chunk = self.files[start:start + self.batch_size]
            yield np.ascontiguousarray(
                np.concatenate([self.preprocess(read_rgb(p)) for p in chunk], axis=0))

    __iter__ = batches

    def padded(self) -> Iterator[np.ndarray]:
        """Yield full batches; a short last batch is filled by repeating its own images."""
        for batch in self.batches():
            if batch.shape[0] < self.batch_size:
                reps = np.arange(self.batch_size) % batch.shape[0]
                batch = np.ascontiguousarray(batch[reps])
            yield batch


def read_calibration_cache(path: Optional[str]) -> Optional[bytes]:
    """Return the cache bytes, or None when there is no (non-empty) cache file."""
    if not path or not os.path.isfile(path):
        return None
    with open(path, 'rb') as handle:
        data = handle.read()
    return data or None


def write_calibration_cache(path: Optional[str], data) -> None:
    """Write the calibration cache atomically (a no-op without a path)."""
    if path:
        atomic_write_bytes(path, bytes(data))


class CalibratorLogic:
    """
    What an IInt8EntropyCalibrator2 does, without TensorRT.

    ``to_device(array) -> int`` copies a batch to device memory and returns its address;
    the default uses cuda-python and is set up by :func:`make_entropy_calibrator`.
    """

    def __init__(self, batcher: CalibrationBatcher, cache_path: Optional[str] = None,
                 to_device: Optional[Callable[[np.ndarray], int]] = None):
        self.batcher = batcher
        self.cache_path = cache_path
        self.to_device = to_device
        self._batches = None
        self.batches_served = 0

    def get_batch_size(self) -> int:
        """Return the calibration batch size."""
        return self.batcher.batch_size

    def get_batch(self, names, *_args) -> Optional[List[int]]:
        """Return one device address per input name for the next batch, or None at the end."""
        if self._batches is None:
            self._batches = self.batcher.padded()
        batch = next(self._batches, None)
        if batch is None:
            return None
        if self.to_device is None:
            raise CalibrationError('no device copy function: build the calibrator with '
                                   'make_entropy_calibrator on a CUDA machine')
        self.batches_served += 1
        address = int(self.to_device(batch))
        return [address for _ in names]

    def read_calibration_cache(self, *_args):
        """Return the cached scales, so TensorRT skips calibration, or None."""
        return read_calibration_cache(self.cache_path)

    def write_calibration_cache(self, cache, *_args) -> None:
        """Store the scales TensorRT computed."""
        write_calibration_cache(self.cache_path, cache)


class CudaBuffer:
    """One reusable device allocation that batches are copied into (cuda-python)."""

    def __init__(self):
        from mono_depth_ros.inference.tensorrt import cuda
        self._cudart = cuda.cuda_runtime()
        self.address = 0
        self.nbytes = 0

    def __call__(self, array: np.ndarray) -> int:
        """Copy array to the device and return the address."""
        from mono_depth_ros.inference.tensorrt.cuda import cuda_check
        cudart = self._cudart
        if array.nbytes > self.nbytes:
            self.free()
            self.address = int(cuda_check(cudart.cudaMalloc(array.nbytes)))
            self.nbytes = array.nbytes
        cuda_check(cudart.cudaMemcpy(self.address, array.ctypes.data, array.nbytes,
                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
        return self.address

    def free(self) -> None:
        """Release the allocation."""
        if self.address:
            self._cudart.cudaFree(self.address)
            self.address, self.nbytes = 0, 0


def make_entropy_calibrator(batcher: CalibrationBatcher, cache_path: Optional[str] = None,
                            base=None, to_device=None):
    """
    Return an IInt8EntropyCalibrator2 instance fed by batcher.

    ``base`` defaults to ``tensorrt.IInt8EntropyCalibrator2`` and ``to_device`` to a
    :class:`CudaBuffer`; tests pass fakes for both.
    """
    if base is None:
        import tensorrt as trt
        base = trt.IInt8EntropyCalibrator2
    if to_device is None:
        to_device = CudaBuffer()

    class EntropyCalibrator(CalibratorLogic, base):
        def __init__(self):
            base.__init__(self)
            CalibratorLogic.__init__(self, batcher, cache_path, to_device)

    return EntropyCalibrator()
