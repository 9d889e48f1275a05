"""
Image and depth buffers to numpy and back, with validation (no ROS imports).

Every decoder returns RGB uint8 (H, W, 3). Buffers are checked before they are touched, and
each problem raises its own :class:`ImageDecodeError` subclass whose message names the
numbers, so a node can count and report it instead of crashing or publishing garbage.
Where the layout allows (rgb8, padded rows), decoding is a zero-copy view of the buffer.

Hostile input is refused before any pixel is decoded: the declared size (the raw message's
width x height, a PNG's IHDR, a JPEG's SOF marker) is checked against ``max_pixels`` first,
so a small file that declares 20000x20000 pixels costs microseconds, not gigabytes; a JPEG's
scans are counted too, since a progressive file can repeat cheap scans that each cost a pass
over the whole image (a scan bomb). JPEG goes through libjpeg-turbo (simplejpeg) in strict
mode, where every libjpeg warning (a cut stream, damaged entropy data) is an error: OpenCV's
decoder only prints those warnings and returns a half-grey or garbled picture. EXIF
orientation is ignored (camera drivers mean the stored pixels), and depth formats on a
compressed colour topic are refused rather than decoded as colour.
"""

from __future__ import annotations

import re
import struct
from typing import Optional, Tuple, Union
import zlib

import cv2
import numpy as np

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]


class ImageDecodeError(ValueError):
    """A buffer cannot be turned into an image; ``counter`` names its diagnostics count."""

    counter = 'corrupt_image'


class UnsupportedEncodingError(ImageDecodeError):
    """The encoding (or compressed format) is not one this package reads."""

    counter = 'unsupported_encoding'


class ZeroSizeError(ImageDecodeError):
    """Width or height is zero."""

    counter = 'zero_size'


class BadStepError(ImageDecodeError):
    """The row step is smaller than a row of pixels."""

    counter = 'bad_step'


class TruncatedBufferError(ImageDecodeError):
    """The data holds fewer bytes than step * height."""

    counter = 'truncated'


class OddWidthError(ImageDecodeError):
    """A 4:2:2 image needs an even width (two pixels share one chroma pair)."""

    counter = 'odd_width'


class CorruptImageError(ImageDecodeError):
    """Compressed data that does not decode completely, or decodes only with warnings."""

    counter = 'corrupt_image'


class ImageTooLargeError(ImageDecodeError):
    """The declared width x height is above the ``max_pixels`` limit (refused undecoded)."""

    counter = 'too_large'


class TooManyScansError(ImageTooLargeError):
    """A JPEG has more scans than ``max_scans`` (a progressive scan bomb; refused undecoded)."""


# DCI 4K, 8.8 Mpx (the node's max_input_pixels default): 4K UHD (3840x2160) and DCI 4K frames
# pass, an RGB frame at the limit is 27 MB; a 20000x20000 "bomb" (1.2 GB as RGB) is refused
# from its header. Larger sensors raise the limit explicitly.
DEFAULT_MAX_INPUT_PIXELS = 4096 * 2160

# Progressive JPEG scans accepted. Each scan costs a pass over every block of the image, even
# one made only of EOB runs, so a 20 KB file of 1000 full-band scans at 4096x2160 takes about
# a second of CPU (30,000 take 20 s). libjpeg-turbo leaves the cap to the application and
# offers one: src/turbojpeg.c:565 (TJFLAG_LIMITSCANS) sets 500, its fuzzers decode under 100
# (fuzz/decompress.cc:95) and djpeg/jpegtran take -maxscans N (doc/djpeg.1:245). An encoder's
# progressive script has about 10 scans (jcparam.c jpeg_simple_progression), so 100 refuses
# no real camera image and bounds a bomb to about twice the cost of a plain decode.
DEFAULT_MAX_JPEG_SCANS = 100


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


def _short(text: str, limit: int = 64) -> str:
    """Quote a sender-controlled string for a log line, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f'... ({len(text)} chars)'


def check_size(what: str, width: int, height: int,
               max_pixels: Optional[int] = DEFAULT_MAX_INPUT_PIXELS) -> None:
    """Raise ZeroSizeError or ImageTooLargeError for a declared size; ``None`` = no limit."""
    if width <= 0 or height <= 0:
        raise ZeroSizeError(f'{what} image has zero size ({width}x{height})')
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f'{what} image declares {width}x{height} = {width * height} pixels, above '
            f'max_input_pixels {max_pixels}; refused without decoding')


def decode_image(encoding: str, width: int, height: int, step: int, data: Buffer,
                 max_pixels: Optional[int] = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Decode a raw sensor_msgs/Image buffer into RGB uint8 (H, W, 3)."""
    if encoding not in ENCODINGS:
        raise UnsupportedEncodingError(
            f'unsupported image encoding {_short(encoding)}; supported: '
            f'{", ".join(SUPPORTED_ENCODINGS)}')
    check_size(encoding, width, height, max_pixels)
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


# The leading encoding of an image_transport format string ('16UC1; png compressed ...',
# '32FC1; compressedDepth'): more than 8 bits per channel means depth or raw sensor data.
_WIDE_ENCODING = re.compile(r'(16|32|64)')


def _compressed_kind(fmt: str) -> str:
    text = fmt.lower()
    # compressedDepth payloads are depth (with a config header before the PNG), never colour.
    if 'compresseddepth' in text:
        raise UnsupportedEncodingError(
            f'compressed format {_short(fmt)} is a depth image; image/compressed must carry '
            'colour (jpeg or png)')
    if ';' in text:
        source = text.split(';', 1)[0].strip()
        if _WIDE_ENCODING.search(source):
            raise UnsupportedEncodingError(
                f'compressed format {_short(fmt)} carries {source!r}, not an 8-bit colour '
                'image; image/compressed must carry colour (jpeg or png)')
    # image_transport writes e.g. 'rgb8; jpeg compressed bgr8' or just 'jpeg'.
    if 'png' in text:
        return 'png'
    if 'jpeg' in text or 'jpg' in text:
        return 'jpeg'
    raise UnsupportedEncodingError(
        f'unsupported compressed format {_short(fmt)}; supported: jpeg, png')


PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# JPEG start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and the restart markers.
_STANDALONE = frozenset([0x01] + list(range(0xD0, 0xD8)))


def png_header(data: bytes) -> Tuple[int, int, int, int]:
    """Return (width, height, bit depth, colour type) from a PNG's IHDR, checking nothing else."""
    if data[:8] != PNG_SIGNATURE:
        raise CorruptImageError('png data does not start with the PNG signature')
    if len(data) < 33 or data[12:16] != b'IHDR' or struct.unpack('>I', data[8:12])[0] != 13:
        raise CorruptImageError('png data does not begin with an IHDR chunk')
    width, height, depth, colour = struct.unpack('>IIBB', data[16:26])
    return width, height, depth, colour


# (colour type) -> (channels, allowed bit depths), PNG 1.2 section 4.1.1 (IHDR).
_PNG_COLOUR = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)),
               4: (2, (8, 16)), 6: (4, (8, 16))}
# Adam7 passes: (x0, y0, dx, dy).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))
# Chunks handed on to libpng; ancillary ones (iCCP, sRGB, text, ...) only draw its warnings.
_PNG_KEPT = (b'IHDR', b'PLTE', b'tRNS', b'IDAT', b'IEND')


def _png_rows(width: int, height: int, bits_per_pixel: int, interlace: int):
    """Yield (rows, bytes per row without the filter byte) of each pass of a PNG's data."""
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    for x0, y0, dx, dy in passes:
        w = (width - x0 + dx - 1) // dx if width > x0 else 0
        h = (height - y0 + dy - 1) // dy if height > y0 else 0
        if w and h:
            yield h, (w * bits_per_pixel + 7) // 8


def checked_png(data: Buffer) -> bytes:
    """
    Check a PNG completely in Python and return it with its ancillary chunks removed.

    libpng reports damage by printing to stderr (``libpng error: IDAT: CRC error``, one line
    per image, past any log throttle) before OpenCV returns None. Every error libpng would
    find is found here first and raised as :class:`CorruptImageError`: the IHDR fields, each
    chunk's CRC, the order of IHDR/PLTE/IDAT/IEND, unknown critical chunks, the zlib stream
    and its exact length, and every row's filter type. Ancillary chunks (colour profiles,
    text, times) are dropped, so their warnings are never printed either; the pixels are the
    same, since OpenCV applies none of them.
    """
    buf = _as_uint8(data).tobytes()
    n = len(buf)
    width, height, depth, colour = png_header(buf)
    compression, filtering, interlace = buf[26], buf[27], buf[28]
    if colour not in _PNG_COLOUR or depth not in _PNG_COLOUR[colour][1]:
        raise CorruptImageError(f'png IHDR: bit depth {depth} with colour type {colour} is '
                                'not a valid combination')
    if compression or filtering or interlace > 1:
        raise CorruptImageError(f'png IHDR: compression {compression}, filter {filtering}, '
                                f'interlace {interlace} (expected 0, 0, 0 or 1)')
    kept, idat, pos, seen = [PNG_SIGNATURE], [], 8, []
    while True:
        if pos + 12 > n:
            raise CorruptImageError(f'png chunk at byte {pos} runs past the end (truncated)')
        length = struct.unpack('>I', buf[pos:pos + 4])[0]
        kind = buf[pos + 4:pos + 8]
        end = pos + 12 + length
        if length > 2 ** 31 - 1 or end > n:
            raise CorruptImageError(f'png chunk {kind!r} of {length} bytes at byte {pos} runs '
                                    'past the end')
        crc = struct.unpack('>I', buf[end - 4:end])[0]
        if zlib.crc32(buf[pos + 4:end - 4]) & 0xFFFFFFFF != crc:
            raise CorruptImageError(f'png chunk {kind!r} at byte {pos} fails its CRC (damaged)')
        critical = not kind[0] & 0x20
        if critical and kind not in _PNG_KEPT:
            raise CorruptImageError(f'png has an unknown critical chunk {kind!r}')
        if kind == b'IDAT':
            if seen and seen[-1] != b'IDAT' and b'IDAT' in seen:
                raise CorruptImageError('png IDAT chunks are not consecutive')
            idat.append(buf[pos + 8:end - 4])
        if kind in _PNG_KEPT:
            kept.append(buf[pos:end])
        seen.append(kind)
        pos = end
        if kind == b'IEND':
            break
    if seen[0] != b'IHDR' or seen.count(b'IHDR') != 1 or not idat:
        raise CorruptImageError('png lacks its IHDR or IDAT chunks, or repeats IHDR')
    if colour == 3 and b'PLTE' not in seen:
        raise CorruptImageError('png is palette-coloured but has no PLTE chunk')
    bpp = depth * _PNG_COLOUR[colour][0]
    passes = list(_png_rows(width, height, bpp, interlace))
    expected = sum(h * (1 + row) for h, row in passes)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(b''.join(idat), expected + 1)
    except zlib.error as exc:
        raise CorruptImageError(f'png image data does not inflate: {exc}') from None
    if len(raw) != expected or not inflater.eof:
        raise CorruptImageError(f'png image data inflates to {len(raw)} bytes, not the '
                                f'{expected} of a {width}x{height} image')
    rows, at = np.frombuffer(raw, np.uint8), 0
    for h, row in passes:
        if int(rows[at:at + h * (1 + row):1 + row].max()) > 4:
            raise CorruptImageError('png has a row with an invalid filter type (damaged)')
        at += h * (1 + row)
    return b''.join(kept)


def declared_size(data: bytes) -> Optional[Tuple[int, int]]:
    """
    Return (width, height) from an image file's header, or None if it has none.

    PNG (IHDR), JPEG (SOF), BMP, PNM and TIFF (IFD0's ImageWidth and ImageLength): what a
    file declares, read before anything is decoded, so a decompression bomb is refused
    from a few bytes (callers check it with :func:`check_size`). Raises CorruptImageError
    for a PNG or JPEG whose header is broken.
    """
    if data[:8] == PNG_SIGNATURE:
        return png_header(data[:33])[:2]
    if data[:2] == b'\xff\xd8':
        return jpeg_size(memoryview(data))
    if data[:2] == b'BM' and len(data) >= 26:  # BITMAPINFOHEADER: int32 width, height
        width, height = struct.unpack('<ii', data[18:26])
        return abs(width), abs(height)
    if data[:1] == b'P' and data[1:2] in b'123456':
        fields = data[2:256].split(b'#')[0].split()
        if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
            return int(fields[0]), int(fields[1])
        return None
    if data[:4] in (b'II*\x00', b'MM\x00*') and len(data) >= 8:
        end = '<' if data[:2] == b'II' else '>'
        at = struct.unpack(end + 'I', data[4:8])[0]
        if at + 2 > len(data):
            return None
        found = {}
        for i in range(min(struct.unpack(end + 'H', data[at:at + 2])[0], 4096)):
            entry = data[at + 2 + 12 * i:at + 14 + 12 * i]
            if len(entry) < 12:
                break
            tag, kind = struct.unpack(end + 'HH', entry[:4])
            if tag in (256, 257):  # ImageWidth, ImageLength (SHORT or LONG)
                found[tag] = struct.unpack(end + ('H' if kind == 3 else 'I'),
                                           entry[8:10] if kind == 3 else entry[8:12])[0]
        return (found[256], found[257]) if len(found) == 2 else None
    return None


def jpeg_size(data: Union[bytes, memoryview]) -> Tuple[int, int]:
    """
    Return (width, height) from a JPEG's first start-of-frame marker.

    Walks the marker segments by their lengths, never past the end of the data, and stops at
    the first SOF; start-of-scan or end-of-image before it means the data is not a picture.
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise CorruptImageError('jpeg data does not start with the SOI marker')
    pos = 2  # data[i] is an int for bytes and for a memoryview of uint8 alike
    while pos < n:
        if data[pos] != 0xFF:
            raise CorruptImageError(f'jpeg data has no marker at byte {pos}')
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):
            raise CorruptImageError('jpeg data reaches its image data before a frame header')
        if pos + 2 > n:
            break
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2:
            raise CorruptImageError(f'jpeg marker 0x{marker:02X} has length {length}')
        if marker in _SOF_MARKERS:
            if length < 8 or pos + 7 > n:
                break
            height = (data[pos + 3] << 8) | data[pos + 4]
            width = (data[pos + 5] << 8) | data[pos + 6]
            return width, height
        pos += length
    raise CorruptImageError('jpeg data ends before its frame header (truncated)')


def jpeg_scan_count(data: Buffer) -> int:
    """
    Return the number of start-of-scan (SOS) markers in a JPEG, without decoding it.

    Entropy-coded data stuffs every 0xFF byte as FF 00, so FF DA appears only as a marker
    (or inside an application segment, such as an EXIF thumbnail: a few more, never fewer).
    """
    return _as_uint8(data).tobytes().count(b'\xff\xda')


def _decode_jpeg(buf: np.ndarray) -> np.ndarray:
    try:
        import simplejpeg
    except ImportError as exc:
        raise UnsupportedEncodingError(
            'jpeg input needs the simplejpeg package (pip install simplejpeg)') from exc
    try:
        return simplejpeg.decode_jpeg(buf, colorspace='RGB', strict=True)
    except ValueError as exc:  # libjpeg errors and, in strict mode, its warnings
        raise CorruptImageError(f'jpeg data ({buf.size} bytes) is corrupt: {exc}') from None


def decode_compressed(fmt: str, data: Buffer,
                      max_pixels: Optional[int] = DEFAULT_MAX_INPUT_PIXELS,
                      max_scans: Optional[int] = DEFAULT_MAX_JPEG_SCANS) -> np.ndarray:
    """
    Decode a CompressedImage (jpeg or png) into RGB uint8 (H, W, 3).

    The declared size is checked against ``max_pixels``, and a JPEG's number of scans against
    ``max_scans``, before anything is decoded (``None`` = no limit). Stored pixels are
    returned as they are (EXIF orientation is not applied).
    """
    kind = _compressed_kind(fmt)
    buf = _as_uint8(data)
    if buf.size == 0:
        raise ZeroSizeError(f'{kind} data is empty')
    view = memoryview(buf)  # indexes as Python ints, slices without copying
    if kind == 'jpeg':
        width, height = jpeg_size(view)
        check_size(kind, width, height, max_pixels)
        # A cut stream must be an error, not wrong depth: check the end-of-image marker.
        tail = buf[-64:].tobytes() if buf.size > 64 else buf.tobytes()
        if b'\xff\xd9' not in tail:
            raise CorruptImageError('jpeg data has no end-of-image marker (truncated)')
        if max_scans is not None:
            scans = jpeg_scan_count(buf)
            if scans > max_scans:
                raise TooManyScansError(
                    f'jpeg {width}x{height} has {scans} scans, above max_jpeg_scans '
                    f'{max_scans} (a progressive scan bomb costs CPU per scan); refused '
                    'without decoding')
        image = _decode_jpeg(buf)
    else:
        width, height, depth, colour = png_header(view[:33].tobytes())
        check_size(kind, width, height, max_pixels)
        if depth == 16 and colour in (0, 4):
            raise UnsupportedEncodingError(
                f'png is 16-bit greyscale ({width}x{height}), a depth or raw sensor image; '
                'image/compressed must carry colour')
        if b'IEND' not in buf[-16:].tobytes():
            raise CorruptImageError('png data has no IEND chunk (truncated)')
        # Damage comes back as CorruptImageError here, not as libpng lines on stderr.
        clean = np.frombuffer(checked_png(buf), np.uint8)
        bgr = cv2.imdecode(clean, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is None or bgr.size == 0:
            raise CorruptImageError(f'png data ({buf.size} bytes) does not decode')
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if image.shape[:2] != (height, width):
        raise CorruptImageError(f'{kind} declares {width}x{height} but decodes to '
                                f'{image.shape[1]}x{image.shape[0]}')
    return image


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
        raise UnsupportedEncodingError(f'unsupported depth encoding {_short(encoding)}; '
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
