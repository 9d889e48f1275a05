"""Hostile image payloads for the codec and node tests, built cheaply in memory."""

import struct
import zlib

import numpy as np

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """Return one PNG chunk (length, type, payload, CRC)."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack('>I', len(payload)) + kind + payload + struct.pack('>I', crc)


def png_bomb(side: int = 20000) -> bytes:
    """Return a valid side x side one-bit grey PNG: about 48 KB for 20000 (1.2 GB as RGB)."""
    row = bytes(1 + (side + 7) // 8)  # filter byte + zero pixels
    packer = zlib.compressobj(9)
    block = 400
    parts = [packer.compress(row * min(block, side - y)) for y in range(0, side, block)]
    idat = b''.join(parts) + packer.flush()
    ihdr = struct.pack('>IIBBBBB', side, side, 1, 0, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b'IHDR', ihdr) + png_chunk(b'IDAT', idat) +
            png_chunk(b'IEND', b''))


def exif_orientation_6() -> bytes:
    """Return a little-endian TIFF block with one entry: Orientation = 6 (rotate 90)."""
    return (b'II*\x00' + struct.pack('<I', 8) + struct.pack('<H', 1) +
            struct.pack('<HHII', 0x0112, 3, 1, 6) + struct.pack('<I', 0))


def jpeg_with_exif_orientation(jpeg: bytes) -> bytes:
    """Insert an APP1 Exif segment saying 'rotate 90 on display' after the SOI marker."""
    payload = b'Exif\x00\x00' + exif_orientation_6()
    return jpeg[:2] + b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload + jpeg[2:]


def png_with_exif_orientation(png: bytes) -> bytes:
    """Insert an eXIf chunk saying 'rotate 90 on display' after IHDR."""
    return png[:33] + png_chunk(b'eXIf', exif_orientation_6()) + png[33:]


def cut_jpeg(jpeg: bytes, fraction: float = 0.5) -> bytes:
    """Cut a JPEG short and re-append the end-of-image marker (looks complete)."""
    return jpeg[:int(len(jpeg) * fraction)] + b'\xff\xd9'


def randomised_jpeg(jpeg: bytes, seed: int = 0, count: int = 64) -> bytes:
    """Overwrite ``count`` bytes near the middle of a JPEG with random ones."""
    data = bytearray(jpeg)
    rng = np.random.default_rng(seed)
    start = len(data) // 2 + int(rng.integers(-len(data) // 8, len(data) // 8))
    data[start:start + count] = rng.integers(0, 256, count, dtype=np.uint8).tobytes()
    return bytes(data)


def set_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the width and height in a JPEG's first baseline/progressive SOF marker."""
    data = bytearray(jpeg)
    sof = next(i for i in range(2, len(data) - 1)
               if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(data)
