"""
Image and depth buffers to numpy and back, with validation (no ROS imports).

Every decoder returns RGB uint8 (H, W, 3). Buffers are checked before they are touched, and
each problem raises its own :class:`ImageDecodeError` subclass whose message names the
numbers, so a node can count and report it instead of crashing or publishing garbage.
Where the layout allows (rgb8, padded rows), decoding is a zero-copy view of the buffer.
"""

from __future__ import annotations

from typing import Tuple, Union

import cv2
import numpy as np

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]


class ImageDecodeError(ValueError):
    """A buffer cannot be turned into an image."""


class UnsupportedEncodingError(ImageDecodeError):
    """The encoding (or compressed format) is not one this package reads."""


class ZeroSizeError(ImageDecodeError):
    """Width or height is zero."""


class BadStepError(ImageDecodeError):
    """The row step is smaller than a row of pixels."""


class TruncatedBufferError(ImageDecodeError):
    """The data holds fewer bytes than step * height."""


class OddWidthError(ImageDecodeError):
    """A 4:2:2 image needs an even width (two pixels share one chroma pair)."""


class CorruptImageError(ImageDecodeError):
    """Compressed data that does not decode completely."""


# encoding -> (bytes per pixel, channels in the buffer)
ENCODINGS = {
    'rgb8': (3, 3), 'bgr8': (3, 3), 'rgba8': (4, 4), 'bgra8': (4, 4), 'mono8': (1, 1),
    # sensor_msgs 'yuv422' is UYVY; newer distros also name it 'uyvy'.
    'yuv422': (2, 2), 'uyvy': (2, 2),
    # 'yuv422_yuy2' (and 'yuyv') is YUYV.
    'yuv422_yuy2': (2, 2), 'yuyv': (2, 2),
}
SUPPORTED_ENCODINGS = tuple(ENCODINGS)
UYVY = ('yuv422', 'uyvy')
YUYV = ('yuv422_yuy2', 'yuyv')
DEPTH_ENCODINGS = {'32FC1': 4, '16UC1': 2}


def _as_uint8(data: Buffer) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def _rows(encoding: str, width: int, height: int, step: int, data: Buffer,
          bpp: int) -> np.ndarray:
    """Validate the buffer and return it as an (H, width * bpp) uint8 view."""
    if width <= 0 or height <= 0:
        raise ZeroSizeError(f'{encoding} image has zero size ({width}x{height})')
    row = width * bpp
    if step < row:
        raise BadStepError(f'{encoding} step {step} is smaller than width {width} x '
                           f'{bpp} bytes = {row}')
    buf = _as_uint8(data)
    need = step * height
    if buf.size < need:
        raise TruncatedBufferError(f'{encoding} {width}x{height} with step {step} needs '
                                   f'{need} bytes, got {buf.size}')
    return buf[:need].reshape(height, step)[:, :row]


def decode_image(encoding: str, width: int, height: int, step: int, data: Buffer) -> np.ndarray:
    """Decode a raw sensor_msgs/Image buffer into RGB uint8 (H, W, 3)."""
    if encoding not in ENCODINGS:
        raise UnsupportedEncodingError(
            f'unsupported image encoding {encoding!r}; supported: '
            f'{", ".join(SUPPORTED_ENCODINGS)}')
    bpp, channels = ENCODINGS[encoding]
    if encoding in UYVY + YUYV and width % 2:
        raise OddWidthError(f'{encoding} needs an even width, got {width}')
    rows = _rows(encoding, width, height, step, data, bpp)
    pixels = rows.reshape(height, width, channels) if channels > 1 else rows
    if encoding == 'rgb8':
        return pixels
    if encoding == 'bgr8':
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if encoding == 'rgba8':
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)
    if encoding == 'bgra8':
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    if encoding == 'mono8':
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_YUV2RGB_UYVY if encoding in UYVY else cv2.COLOR_YUV2RGB_YUYV
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


def _rgb_to_yuv422(rgb: np.ndarray, uyvy: bool) -> np.ndarray:
    """BT.601 video-range 4:2:2, the inverse of OpenCV's YUV2RGB_UYVY/YUYV."""
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b
    u = 0.5 * (u[:, 0::2] + u[:, 1::2])
    v = 0.5 * (v[:, 0::2] + v[:, 1::2])
    h, w = y.shape
    out = np.empty((h, w // 2, 4), dtype=np.float32)
    if uyvy:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(h, w * 2)


def encode_image(rgb: np.ndarray, encoding: str) -> Tuple[int, bytes]:
    """Encode RGB uint8 (H, W, 3) as a raw Image buffer; return (step, data)."""
    if encoding not in ENCODINGS:
        raise UnsupportedEncodingError(f'unsupported image encoding {encoding!r}')
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    if encoding == 'rgb8':
        out = rgb
    elif encoding == 'bgr8':
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif encoding == 'rgba8':
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    elif encoding == 'bgra8':
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    elif encoding == 'mono8':
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    else:
        if w % 2:
            raise OddWidthError(f'{encoding} needs an even width, got {w}')
        out = _rgb_to_yuv422(rgb, uyvy=encoding in UYVY)
    out = np.ascontiguousarray(out)
    return out.nbytes // h, out.tobytes()


def _compressed_kind(fmt: str) -> str:
    text = fmt.lower()
    # image_transport writes e.g. 'rgb8; jpeg compressed bgr8' or just 'jpeg'.
    if 'png' in text:
        return 'png'
    if 'jpeg' in text or 'jpg' in text:
        return 'jpeg'
    raise UnsupportedEncodingError(
        f'unsupported compressed format {fmt!r}; supported: jpeg, png')


def decode_compressed(fmt: str, data: Buffer) -> np.ndarray:
    """Decode a CompressedImage (jpeg or png) into RGB uint8 (H, W, 3)."""
    kind = _compressed_kind(fmt)
    buf = _as_uint8(data)
    if buf.size == 0:
        raise ZeroSizeError(f'{kind} data is empty')
    # libjpeg decodes a truncated file into a half-grey image with only a warning:
    # check the end-of-image marker so that a cut stream is an error, not wrong depth.
    if kind == 'jpeg':
        if buf.size < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
            raise CorruptImageError('jpeg data does not start with the SOI marker')
        tail = buf[-64:].tobytes() if buf.size > 64 else buf.tobytes()
        if b'\xff\xd9' not in tail:
            raise CorruptImageError('jpeg data has no end-of-image marker (truncated)')
    else:
        if buf[:8].tobytes() != b'\x89PNG\r\n\x1a\n':
            raise CorruptImageError('png data does not start with the PNG signature')
        if b'IEND' not in buf[-16:].tobytes():
            raise CorruptImageError('png data has no IEND chunk (truncated)')
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise CorruptImageError(f'{kind} data ({buf.size} bytes) does not decode')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_compressed(rgb: np.ndarray, fmt: str = 'jpeg', quality: int = 90) -> Tuple[str, bytes]:
    """Encode RGB uint8 as jpeg or png; return (CompressedImage.format, data)."""
    kind = _compressed_kind(fmt)
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if kind == 'jpeg' else []
    ok, out = cv2.imencode('.jpg' if kind == 'jpeg' else '.png', bgr, params)
    if not ok:
        raise ImageDecodeError(f'{kind} encoding failed')
    return kind, out.tobytes()


def encode_depth(depth_m: np.ndarray, encoding: str = '32FC1') -> Tuple[int, bytes]:
    """
    Encode depth in metres as REP 118 32FC1 (metres, NaN invalid) or 16UC1 (millimetres).

    16UC1 marks invalid pixels 0 and cannot hold more than 65.535 m: deeper pixels become 0
    (invalid) rather than wrapping around.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2 or depth.size == 0:
        raise ZeroSizeError(f'depth must be a non-empty 2-D array, got shape {depth.shape}')
    h, w = depth.shape
    if encoding == '32FC1':
        out = np.ascontiguousarray(depth, dtype='<f4')
        return 4 * w, out.tobytes()
    if encoding == '16UC1':
        with np.errstate(invalid='ignore'):
            mm = np.rint(depth * 1000.0)
            bad = ~np.isfinite(mm) | (mm <= 0) | (mm > 65535)
        mm[bad] = 0
        return 2 * w, mm.astype('<u2').tobytes()
    raise UnsupportedEncodingError(f'unsupported depth encoding {encoding!r}; '
                                   f'supported: {", ".join(DEPTH_ENCODINGS)}')


def decode_depth(encoding: str, width: int, height: int, step: int, data: Buffer,
                 is_bigendian: bool = False) -> np.ndarray:
    """Decode a 32FC1 (m) or 16UC1 (mm) depth buffer to float32 metres, NaN where invalid."""
    if encoding not in DEPTH_ENCODINGS:
        raise UnsupportedEncodingError(f'unsupported depth encoding {encoding!r}; '
                                       f'supported: {", ".join(DEPTH_ENCODINGS)}')
    bpp = DEPTH_ENCODINGS[encoding]
    rows = _rows(encoding, width, height, step, data, bpp)
    order = '>' if is_bigendian else '<'
    kind = 'f4' if encoding == '32FC1' else 'u2'
    values = np.ascontiguousarray(rows).view(order + kind).reshape(height, width)
    depth = values.astype(np.float32)
    if encoding == '16UC1':
        depth *= 0.001
    with np.errstate(invalid='ignore'):
        depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth
