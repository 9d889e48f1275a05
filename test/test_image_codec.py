"""Image and depth encodings: round trips and named errors for bad buffers."""

import cv2
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
