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


def _jpeg_segments(jpeg: bytes):
    """Yield (marker, start, end) of each segment after SOI, a scan with its entropy data."""
    pos = 2
    while pos < len(jpeg):
        marker = jpeg[pos + 1]
        if marker == 0xD9:
            yield marker, pos, pos + 2
            return
        end = pos + 2 + struct.unpack('>H', jpeg[pos + 2:pos + 4])[0]
        if marker == 0xDA:
            while jpeg[end] != 0xFF or jpeg[end + 1] == 0 or 0xD0 <= jpeg[end + 1] <= 0xD7:
                end += 1
        yield marker, pos, end
        pos = end


def jpeg_scan_bomb(width: int = 4096, height: int = 2160, scans: int = 1000) -> bytes:
    """
    Return a valid progressive grey JPEG that repeats a full-band AC scan ``scans`` times.

    A flat picture's AC scans are EOB runs only, so each repeat is 46 bytes, and a first-pass
    scan (Ah = Al = 0) after the full script draws no libjpeg warning: strict decoders accept
    it and pay a pass over every block per scan.
    """
    import cv2
    flat = np.full((height, width), 128, np.uint8)
    jpeg = cv2.imencode('.jpg', flat, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    segments = list(_jpeg_segments(jpeg))
    # The last AC scan before the refinements: its Huffman table (DHT) precedes it.
    i = next(k for k, (m, a, _) in enumerate(segments)
             if m == 0xDA and jpeg[a + 4] == 1 and jpeg[a + 8] == 63 and jpeg[a + 9] >> 4 == 0)
    _, dht_start, _ = segments[i - 1]
    _, sos_start, sos_end = segments[i]
    scan = bytearray(jpeg[sos_start:sos_end])
    scan[7:10] = bytes([1, 63, 0])  # Ss=1, Se=63, Ah=0 Al=0 (one component: Ns, Cs, Td|Ta)
    unit = jpeg[dht_start:sos_start] + bytes(scan)
    eoi = segments[-1][1]
    return jpeg[:eoi] + unit * scans + jpeg[eoi:]


def png_rgb(rgb: np.ndarray, filter_byte: int = 0, cut_idat: int = 0) -> bytes:
    """
    Return an 8-bit RGB PNG of ``rgb`` whose CRCs are all valid.

    Every row's filter type is ``filter_byte`` (0 = none; above 4 is invalid), and
    ``cut_idat`` bytes are cut off its zlib stream: damage a CRC check cannot see.
    """
    h, w = rgb.shape[:2]
    rows = np.concatenate([np.full((h, 1), filter_byte, np.uint8),
                           np.ascontiguousarray(rgb, np.uint8).reshape(h, w * 3)], axis=1)
    idat = zlib.compress(rows.tobytes(), 6)
    idat = idat[:len(idat) - cut_idat]
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b'IHDR', ihdr) + png_chunk(b'IDAT', idat) +
            png_chunk(b'IEND', b''))
