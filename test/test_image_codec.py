"""Image and depth encodings: round trips, named errors for bad buffers, hostile input."""

import tracemalloc

import cv2
import hostile_images as hostile
from mono_depth_ros.core import image_codec as ic
from mono_depth_ros.core.colormap import colorize_depth
import numpy as np
import pytest


def _smooth_rgb(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 60],
                    -1).astype(np.uint8)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_lossless_encodings_round_trip(encoding):
    rgb = np.random.default_rng(0).integers(0, 256, (7, 10, 3), dtype=np.uint8)
    step, data = ic.encode_image(rgb, encoding)
    assert np.array_equal(ic.decode_image(encoding, 10, 7, step, data), rgb)


def test_mono8_round_trips_grey():
    grey = np.random.default_rng(0).integers(0, 256, (5, 6), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, -1)
    step, data = ic.encode_image(rgb, 'mono8')
    assert step == 6
    assert np.array_equal(ic.decode_image('mono8', 6, 5, step, data), rgb)


@pytest.mark.parametrize('encoding', ['yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'])
def test_yuv422_round_trips_within_chroma_subsampling(encoding):
    rgb = _smooth_rgb()
    step, data = ic.encode_image(rgb, encoding)
    assert step == 2 * 64
    out = ic.decode_image(encoding, 64, 48, step, data)
    assert np.abs(out.astype(int) - rgb).max() <= 6


def test_uyvy_and_yuyv_differ_in_byte_order():
    rgb = _smooth_rgb()
    _, uyvy = ic.encode_image(rgb, 'yuv422')
    _, yuyv = ic.encode_image(rgb, 'yuv422_yuy2')
    assert uyvy != yuyv and uyvy[1::2] == yuyv[0::2]


def test_padded_step_is_a_zero_copy_view():
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :15] = rgb.reshape(4, 15)
    data = padded.tobytes()
    out = ic.decode_image('rgb8', 5, 4, 20, data)
    assert np.array_equal(out, rgb)
    assert not out.flags.owndata  # a view of the message buffer, not a copy


@pytest.mark.parametrize('fmt', ['jpeg', 'png', 'rgb8; jpeg compressed bgr8'])
def test_compressed_round_trip(fmt):
    rgb = _smooth_rgb()
    kind, data = ic.encode_compressed(rgb, fmt)
    out = ic.decode_compressed(fmt, data)
    if kind == 'png':
        assert np.array_equal(out, rgb)
    else:
        assert cv2.PSNR(out, rgb) > 35


@pytest.mark.parametrize('args, error', [
    (('rgb8', 10, 4, 30, bytes(30 * 4 - 1)), ic.TruncatedBufferError),
    (('rgb8', 10, 4, 20, bytes(200)), ic.BadStepError),
    (('rgb8', 0, 4, 30, b''), ic.ZeroSizeError),
    (('bgr8', 10, 0, 30, b''), ic.ZeroSizeError),
    (('yuv422', 9, 4, 18, bytes(72)), ic.OddWidthError),
    (('yuv422_yuy2', 9, 4, 18, bytes(72)), ic.OddWidthError),
    (('bayer_rggb8', 10, 4, 10, bytes(40)), ic.UnsupportedEncodingError),
    (('16UC1', 10, 4, 20, bytes(80)), ic.UnsupportedEncodingError),
])
def test_bad_raw_buffers_raise_named_errors(args, error):
    with pytest.raises(error):
        ic.decode_image(*args)
    assert issubclass(error, ic.ImageDecodeError)


def test_bad_compressed_data_raises_named_errors():
    _, jpeg = ic.encode_compressed(_smooth_rgb(), 'jpeg')
    _, png = ic.encode_compressed(_smooth_rgb(), 'png')
    with pytest.raises(ic.CorruptImageError, match='end-of-image'):
        ic.decode_compressed('jpeg', jpeg[:len(jpeg) // 2])
    with pytest.raises(ic.CorruptImageError):
        ic.decode_compressed('jpeg', b'\xff\xd8' + bytes(100) + b'\xff\xd9')
    with pytest.raises(ic.CorruptImageError):
        ic.decode_compressed('jpeg', b'garbage that is not an image')
    with pytest.raises(ic.CorruptImageError, match='IEND'):
        ic.decode_compressed('png', png[:-30])
    with pytest.raises(ic.ZeroSizeError):
        ic.decode_compressed('jpeg', b'')
    with pytest.raises(ic.UnsupportedEncodingError):
        ic.decode_compressed('tiff', png)


def test_depth_encodings_round_trip():
    depth = np.array([[0.5, 1.234, np.nan], [0.0, 70.0, 3.0]], np.float32)
    step, data = ic.encode_depth(depth, '32FC1')
    back = ic.decode_depth('32FC1', 3, 2, step, data)
    expected = depth.copy()
    expected[1, 0] = np.nan  # 0 m is invalid in REP 118
    assert np.array_equal(back, expected, equal_nan=True)
    step, data = ic.encode_depth(depth, '16UC1')
    assert step == 6
    raw = np.frombuffer(data, '<u2').reshape(2, 3)
    assert raw.tolist() == [[500, 1234, 0], [0, 0, 3000]]  # 70 m does not fit in 16UC1
    back = ic.decode_depth('16UC1', 3, 2, step, data)
    assert np.allclose(back, [[0.5, 1.234, np.nan], [np.nan, np.nan, 3.0]], equal_nan=True)
    big = np.frombuffer(ic.encode_depth(depth, '32FC1')[1], '<f4').astype('>f4').tobytes()
    assert np.array_equal(ic.decode_depth('32FC1', 3, 2, 12, big, is_bigendian=True),
                          expected, equal_nan=True)
    with pytest.raises(ic.TruncatedBufferError):
        ic.decode_depth('32FC1', 3, 2, 12, data[:5])


def test_colorize_depth_marks_invalid_black_and_near_warm():
    depth = np.array([[0.5, 5.0, np.nan, 50.0]], np.float32)
    rgb = colorize_depth(depth, 0.5, 10.0)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0, 2].tolist() == [0, 0, 0] and rgb[0, 3].tolist() == [0, 0, 0]
    assert rgb[0, 0, 0] > rgb[0, 0, 2]  # near: red dominates
    assert rgb[0, 1].sum() > 0


# -- hostile input -------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def png_bomb():
    """Build a valid 20000x20000 one-bit grey PNG of about 48 KB (1.2 GB decoded as RGB)."""
    data = hostile.png_bomb(20000)
    assert len(data) < 64 * 1024
    return data


def _redwood_jpeg(shared_data, index=0):
    return (shared_data / 'redwood' / 'color' / f'{index:05d}.jpg').read_bytes()


def test_png_bomb_is_refused_from_its_header_in_milliseconds(png_bomb):
    tracemalloc.start()
    with pytest.raises(ic.ImageTooLargeError, match='20000x20000') as info:
        ic.decode_compressed('png', png_bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info.value.counter == 'too_large'
    # Memory, not time, shows that nothing was decoded: a time bound depends on the machine.
    assert peak < 1 << 20, peak  # nothing near the 1.2 GB a decode would take
    # The limit is the caller's: a generous one still refuses it, no limit is not tested here
    # (it would decode 1.2 GB).
    with pytest.raises(ic.ImageTooLargeError):
        ic.decode_compressed('png', png_bomb, max_pixels=20000 * 20000 - 1)


def test_jpeg_with_a_huge_declared_size_is_refused_before_decoding(shared_data):
    data = _redwood_jpeg(shared_data)
    assert ic.jpeg_size(data) == (640, 480)
    bomb = hostile.set_jpeg_size(data, 30000, 30000)
    tracemalloc.start()
    with pytest.raises(ic.ImageTooLargeError, match='30000x30000'):
        ic.decode_compressed('jpeg', bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20, peak  # a decode would allocate 2.7 GB


def test_raw_image_with_a_huge_declared_size_is_refused_before_its_buffer_is_read():
    tracemalloc.start()
    with pytest.raises(ic.ImageTooLargeError):
        ic.decode_image('rgb8', 100000, 100000, 300000, b'')  # not TruncatedBufferError
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20, peak
    rgb = _smooth_rgb()
    step, data = ic.encode_image(rgb, 'rgb8')
    with pytest.raises(ic.ImageTooLargeError):
        ic.decode_image('rgb8', 64, 48, step, data, max_pixels=64 * 48 - 1)
    assert np.array_equal(ic.decode_image('rgb8', 64, 48, step, data, max_pixels=64 * 48), rgb)


def test_default_limit_passes_4k_frames_and_a_larger_limit_passes_more():
    for width, height in ((3840, 2160), (4096, 2160), (2160, 3840)):
        ic.check_size('rgb8', width, height)
    for width, height in ((4032, 3024), (8192, 4320)):
        with pytest.raises(ic.ImageTooLargeError):
            ic.check_size('rgb8', width, height)
    ic.check_size('rgb8', 4032, 3024, max_pixels=4032 * 3024)
    ic.check_size('rgb8', 8192, 4320, max_pixels=None)


def test_real_jpeg_decodes_exactly_as_libjpeg(shared_data):
    data = _redwood_jpeg(shared_data)
    out = ic.decode_compressed('rgb8; jpeg compressed bgr8', data)
    reference = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                             cv2.COLOR_BGR2RGB)
    assert out.shape == (480, 640, 3) and np.array_equal(out, reference)


def test_jpeg_cut_short_with_its_end_marker_reappended_is_refused(shared_data):
    data = _redwood_jpeg(shared_data)
    for fraction in (0.3, 0.5, 0.9):
        cut = hostile.cut_jpeg(data, fraction)
        # OpenCV decodes it with only a warning on stderr: the old path published it.
        assert cv2.imdecode(np.frombuffer(cut, np.uint8), cv2.IMREAD_COLOR) is not None
        with pytest.raises(ic.CorruptImageError) as info:
            ic.decode_compressed('jpeg', cut)
        assert info.value.counter == 'corrupt_image'


def test_jpeg_with_randomised_bytes_is_refused_whenever_libjpeg_notices(shared_data, capfd):
    """
    Every damaged JPEG that libjpeg warns about is refused.

    OpenCV's own libjpeg is the independent witness: it prints the warning and returns a
    picture anyway. JPEG carries no checksum, so damage after which the Huffman stream happens
    to resynchronise (2 of these 10) draws no warning from any decoder and is not caught.
    """
    warned = 0
    for seed in range(10):
        damaged = hostile.randomised_jpeg(_redwood_jpeg(shared_data, seed % 5), seed=seed)
        capfd.readouterr()
        assert cv2.imdecode(np.frombuffer(damaged, np.uint8), cv2.IMREAD_COLOR) is not None
        if 'Corrupt JPEG data' not in capfd.readouterr().err:
            continue
        warned += 1
        with pytest.raises(ic.CorruptImageError, match='Corrupt JPEG data'):
            ic.decode_compressed('jpeg', damaged)
    assert warned >= 7, warned


def test_exif_orientation_is_ignored_for_jpeg_and_png(shared_data):
    data = _redwood_jpeg(shared_data)
    plain = ic.decode_compressed('jpeg', data)
    rotated_jpeg = hostile.jpeg_with_exif_orientation(data)
    # OpenCV applies the tag (480x640): the stored pixels are what a camera driver means.
    assert cv2.imdecode(np.frombuffer(rotated_jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2] == \
        (640, 480)
    assert np.array_equal(ic.decode_compressed('jpeg', rotated_jpeg), plain)
    _, png = ic.encode_compressed(plain, 'png')
    rotated_png = hostile.png_with_exif_orientation(png)
    assert cv2.imdecode(np.frombuffer(rotated_png, np.uint8), cv2.IMREAD_COLOR).shape[:2] == \
        (640, 480)
    assert np.array_equal(ic.decode_compressed('png', rotated_png), plain)


@pytest.mark.parametrize('fmt', ['16UC1; compressedDepth png', '32FC1; compressedDepth',
                                 '16UC1; png compressed mono16', 'mono16; png compressed',
                                 'png'])
def test_depth_formats_on_image_compressed_are_refused(fmt):
    depth_mm = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 7)
    ok, png16 = cv2.imencode('.png', depth_mm)
    assert ok
    with pytest.raises(ic.UnsupportedEncodingError) as info:
        ic.decode_compressed(fmt, png16.tobytes())
    assert info.value.counter == 'unsupported_encoding'


def test_colour_formats_from_image_transport_still_decode():
    rgb = _smooth_rgb()
    _, jpeg = ic.encode_compressed(rgb, 'jpeg')
    _, png = ic.encode_compressed(rgb, 'png')
    assert ic.decode_compressed('bgr8; jpeg compressed bgr8', jpeg).shape == (48, 64, 3)
    assert np.array_equal(ic.decode_compressed('rgb8; png compressed rgb8', png), rgb)
    grey = cv2.imencode('.png', rgb[..., 1])[1].tobytes()
    out = ic.decode_compressed('mono8; png compressed mono8', grey)
    assert np.array_equal(out, np.repeat(rgb[..., 1:2], 3, -1))


def test_long_sender_strings_are_cut_in_error_messages():
    with pytest.raises(ic.UnsupportedEncodingError) as info:
        ic.decode_compressed('x' * 10000, b'\x00')
    assert len(str(info.value)) < 200 and '10000 chars' in str(info.value)
    with pytest.raises(ic.UnsupportedEncodingError) as info:
        ic.decode_image('y' * 10000, 4, 4, 12, bytes(48))
    assert len(str(info.value)) < 300


@pytest.mark.parametrize('data', [
    b'\xff\xd8\xff\xe0\x00',                     # segment length cut off
    b'\xff\xd8\xff\xe0\x00\x01' + bytes(10),     # length below 2
    b'\xff\xd8\xff\xe0\xff\xff' + bytes(10),     # length past the end
    b'\xff\xd8\xff\xda\x00\x08' + bytes(8) + b'\xff\xd9',  # scan before any frame header
    b'\xff\xd8\x00\x00\x00\x00\xff\xd9',         # no marker where one must be
])
def test_jpeg_header_walk_refuses_malformed_segments(data):
    with pytest.raises(ic.CorruptImageError):
        ic.decode_compressed('jpeg', data)


def test_progressive_scan_bomb_is_refused_before_decoding():
    # A valid progressive JPEG: libjpeg-turbo in strict mode decodes it without a warning...
    small = hostile.jpeg_scan_bomb(64, 48, scans=300)
    assert ic.jpeg_scan_count(small) > 300
    assert ic.decode_compressed('jpeg', small, max_scans=None).shape == (48, 64, 3)
    # ...but each scan is a pass over the whole image: thousands of them are refused from
    # the marker count, at the declared size the node accepts (4096x2160 passes max_pixels).
    bomb = hostile.jpeg_scan_bomb(4096, 2160, scans=3000)
    assert len(bomb) < 200_000
    with pytest.raises(ic.TooManyScansError, match='3006 scans, above max_jpeg_scans 100') \
            as info:
        ic.decode_compressed('jpeg', bomb)
    assert info.value.counter == 'too_large'
    with pytest.raises(ic.TooManyScansError):
        ic.decode_compressed('jpeg', small, max_scans=50)


def test_real_and_encoder_progressive_jpegs_are_far_below_the_scan_limit(shared_data):
    # No false refusals: every sample JPEG, and OpenCV's progressive encoding of one.
    counts = [ic.jpeg_scan_count(path.read_bytes())
              for path in sorted(shared_data.rglob('*.jpg'))[:400]]
    assert counts and max(counts) <= 20 < ic.DEFAULT_MAX_JPEG_SCANS, max(counts)
    rgb = ic.decode_compressed('jpeg', _redwood_jpeg(shared_data))
    progressive = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert 1 < ic.jpeg_scan_count(progressive) <= 20
    assert ic.decode_compressed('jpeg', progressive).shape == rgb.shape


def test_damaged_png_is_an_error_value_and_libpng_prints_nothing(capfd):
    rgb = _smooth_rgb()
    good = hostile.png_rgb(rgb)
    assert np.array_equal(ic.decode_compressed('png', good), rgb)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x55  # inside IDAT: its CRC fails
    damaged = {
        'crc': bytes(flipped),
        'filter': hostile.png_rgb(rgb, filter_byte=7),  # CRCs fine, rows not
        'short stream': hostile.png_rgb(rgb, cut_idat=40),  # CRCs fine, zlib stream cut
    }
    capfd.readouterr()
    for what, data in damaged.items():
        with pytest.raises(ic.CorruptImageError) as info:
            ic.decode_compressed('png', data)
        assert info.value.counter == 'corrupt_image', what
    out = capfd.readouterr()
    # libpng's own "libpng error: IDAT: CRC error" lines bypass every log throttle.
    assert out.err == '' and out.out == '', out


def test_png_ancillary_chunks_are_dropped_before_libpng_sees_them(capfd):
    rgb = _smooth_rgb()
    good = hostile.png_rgb(rgb)
    # A broken colour profile draws "libpng warning: iCCP: ..." from libpng, on a valid file.
    iccp = hostile.png_chunk(b'iCCP', b'broken\x00\x00' + b'\x78\x9c' + bytes(20))
    with_profile = good[:33] + iccp + good[33:]
    capfd.readouterr()
    assert np.array_equal(ic.decode_compressed('png', with_profile), rgb)
    assert capfd.readouterr().err == ''
