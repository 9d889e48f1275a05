"""Camera selection without a ROS graph: CameraInfo as image_geometry reads it, presets, manual."""

import math

from mono_depth_ros.core.camera import (camera_from_info, CameraInfoBuffer, manual_camera,
                                        output_size, preset_camera)
from mono_depth_ros.core.geometry import backproject
from mono_depth_ros.core.intrinsics import Intrinsics, preset
from mono_depth_ros.ros import messages as ros_io
import numpy as np
import pytest
from references import pinhole_model
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

# A rectified camera: K is the raw camera, P the rectified projection (they differ).
K_RAW = [520.0, 0.0, 330.0, 0.0, 515.0, 250.0, 0.0, 0.0, 1.0]
P_RECT = [480.0, 0.0, 310.0, 0.0, 0.0, 470.0, 236.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def info(k=K_RAW, p=P_RECT, width=640, height=480, d=(0.1, -0.05, 0.0, 0.0, 0.0),
         binning=(0, 0), roi=(0, 0, 0, 0), stamp_ns=0):
    msg = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10 ** 9)
    msg.k, msg.p, msg.d = list(k), list(p), list(d)
    msg.binning_x, msg.binning_y = binning
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = roi
    return msg


def rays_of(intr):
    """Back-project a unit depth image: the (x, y) of each pixel's ray at z = 1."""
    xyz = backproject(np.ones((intr.height, intr.width), np.float32), intr)
    return xyz[..., 0], xyz[..., 1]


def test_rectified_camera_info_uses_p_not_k():
    cam = camera_from_info(info())
    assert cam.ok and not cam.warning  # P is set: the distortion belongs to the raw image
    intr = cam.intrinsics
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (
        480.0, 470.0, 310.0, 236.0, 640, 480)
    x, y = rays_of(intr)
    # The cloud's rays follow P: pixel (u, v) at depth 1 is ((u - P[2]) / P[0], ...).
    assert x[0, 600] == pytest.approx((600 - 310.0) / 480.0, rel=1e-6)
    assert y[400, 0] == pytest.approx((400 - 236.0) / 470.0, rel=1e-6)
    with_k = Intrinsics.from_K(K_RAW, 640, 480)
    assert abs(rays_of(with_k)[0][0, 600] - x[0, 600]) > 0.02  # K would move points 4%


def test_unset_p_falls_back_to_k_and_warns_about_distortion():
    cam = camera_from_info(info(p=[0.0] * 12))
    assert cam.ok and (cam.intrinsics.fx, cam.intrinsics.cx) == (520.0, 330.0)
    assert 'distortion' in cam.warning and 'image_rect' in cam.warning
    assert not camera_from_info(info(p=[0.0] * 12, d=[0.0] * 5)).warning


def test_binning_2_halves_the_camera_as_image_geometry_does():
    cam = camera_from_info(info(binning=(2, 2)))
    i = cam.intrinsics
    assert (i.width, i.height) == (320, 240)
    assert (i.fx, i.fy, i.cx, i.cy) == (240.0, 235.0, 155.0, 118.0)
    x, _ = rays_of(i)
    # Binned pixel u covers full pixels 2u, 2u+1; its ray is the full camera's at 2u.
    assert x[0, 100] == pytest.approx((200 - 310.0) / 480.0, rel=1e-6)


def test_roi_shifts_the_principal_point_and_sets_the_size():
    cam = camera_from_info(info(roi=(100, 50, 320, 240)))
    i = cam.intrinsics
    assert (i.width, i.height, i.cx, i.cy, i.fx) == (320, 240, 210.0, 186.0, 480.0)
    x, y = rays_of(i)
    # ROI pixel (0, 0) is full pixel (100, 50).
    assert x[0, 0] == pytest.approx((100 - 310.0) / 480.0, rel=1e-6)
    assert y[0, 0] == pytest.approx((50 - 236.0) / 470.0, rel=1e-6)
    both = camera_from_info(info(roi=(100, 50, 320, 240), binning=(2, 2))).intrinsics
    assert (both.width, both.height, both.cx, both.cy) == (160, 120, 105.0, 93.0)


def model_intrinsics(model, use_p=True):
    """Return (fx, fy, cx, cy, width, height) of a PinholeCameraModel, size from ROI/binning."""
    m = model.P if use_p else model.K
    return (float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]),
            model.raw_roi.width // model.binning_x, model.raw_roi.height // model.binning_y)


@pytest.mark.parametrize('p, binning, roi', [
    (P_RECT, (0, 0), (0, 0, 0, 0)),
    (P_RECT, (2, 2), (0, 0, 0, 0)),
    (P_RECT, (1, 3), (0, 0, 0, 0)),
    (P_RECT, (0, 0), (100, 50, 320, 240)),
    (P_RECT, (2, 2), (100, 50, 320, 240)),
    ([0.0] * 12, (0, 0), (0, 0, 0, 0)),
    ([0.0] * 12, (2, 2), (40, 20, 400, 300)),
])
def test_camera_info_is_read_as_image_geometry_reads_it(p, binning, roi):
    msg = info(p=p, binning=binning, roi=roi)
    model = pinhole_model(msg)
    use_p = bool(p[0])  # image_geometry reads P; with P unset only its K is usable
    intr = camera_from_info(msg).intrinsics
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == pytest.approx(
        model_intrinsics(model, use_p), rel=1e-12)
    if use_p:
        # The rays the cloud is built on are image_geometry's rays, pixel by pixel.
        x, y = rays_of(intr)
        for u, v in ((0, 0), (intr.width - 1, intr.height // 2), (17, intr.height - 1)):
            ray = model.projectPixelTo3dRay((u, v))
            assert (x[v, u], y[v, u]) == pytest.approx((ray[0] / ray[2], ray[1] / ray[2]),
                                                       rel=1e-5, abs=1e-6)


@pytest.mark.parametrize('change, words', [
    (dict(p=[1e-30, 0, 310, 0, 0, 1e-30, 236, 0, 0, 0, 1, 0]), 'implausible'),
    (dict(p=[1e30, 0, 310, 0, 0, 1e30, 236, 0, 0, 0, 1, 0]), 'implausible'),
    (dict(p=[480, 0, 1e9, 0, 0, 470, 236, 0, 0, 0, 1, 0]), 'principal point'),
    (dict(p=[math.nan, 0, 310, 0, 0, 470, 236, 0, 0, 0, 1, 0]), 'finite'),
    (dict(p=[0.0] * 12, k=[0.0] * 9), 'neither P nor a valid K'),
    (dict(width=0, height=0), 'zero size'),
    (dict(roi=(600, 0, 320, 240)), 'roi'),
])
def test_implausible_camera_info_is_refused_as_bad_camera_info(change, words):
    cam = camera_from_info(info(**change))
    assert not cam.ok and cam.intrinsics is None
    assert cam.problem == 'bad_camera_info' and words in cam.reason


def test_presets_are_refused_at_another_aspect_not_stretched():
    kitti = preset_camera('kitti', 1242, 375)
    assert kitti.ok and kitti.intrinsics.is_close(preset('kitti'))
    assert preset_camera('kitti', 1226, 370).ok  # another KITTI sequence size
    wrong = preset_camera('kitti', 640, 480)
    assert not wrong.ok and wrong.problem == 'intrinsics_aspect_mismatch'
    assert '1242x375' in wrong.reason and '640x480' in wrong.reason
    kinect = preset_camera('kinect', 320, 240)
    assert kinect.intrinsics.is_close(preset('kinect_nyu').resize(320, 240))
    assert not preset_camera('kinect', 1242, 375).ok


def test_manual_intrinsics_are_checked_for_the_image():
    cam = manual_camera(500.0, 500.0, 319.5, 239.5, 640, 480)
    assert cam.intrinsics == Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
    bad = manual_camera(1e-9, 500.0, 319.5, 239.5, 640, 480)
    assert not bad.ok and bad.problem == 'bad_camera_info' and 'fx' in bad.reason


def test_depth_camera_info_describes_the_published_image_exactly():
    intr = Intrinsics(240.0, 235.0, 155.0, 118.0, 320, 240)
    msg = ros_io.camera_info(intr, Header(frame_id='cam'))
    assert list(msg.k) == [240.0, 0.0, 155.0, 0.0, 235.0, 118.0, 0.0, 0.0, 1.0]
    assert list(msg.p) == [240.0, 0.0, 155.0, 0.0, 0.0, 235.0, 118.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert not any(msg.d) and list(msg.r) == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    assert (msg.binning_x, msg.binning_y) == (0, 0)
    assert (msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height) == (0, 0, 0, 0)
    assert (msg.width, msg.height) == (320, 240)
    assert camera_from_info(msg).intrinsics == intr  # what a downstream node reads back
    # ... and what image_geometry, depth_image_proc's camera model, reads back.
    model = pinhole_model(msg)
    assert model.fullResolution() == (320, 240)
    assert model_intrinsics(model) == (240.0, 235.0, 155.0, 118.0, 320, 240)
    assert model_intrinsics(model, use_p=False) == model_intrinsics(model)


def test_buffer_pairs_by_stamp_exact_then_nearest_then_newest():
    buf = CameraInfoBuffer(size=4)
    assert buf.match(5) == (None, 'none')
    cams = {t: camera_from_info(info(stamp_ns=t, width=64 + t, height=48)) for t in range(4)}
    for t, cam in cams.items():
        buf.add(t * 10 ** 8, cam)
    assert buf.match(2 * 10 ** 8) == (cams[2], 'exact')
    assert buf.match(2 * 10 ** 8 + 10 ** 6, tolerance_s=0.005) == (cams[2], 'nearest')
    assert buf.match(2 * 10 ** 8 + 10 ** 7, tolerance_s=0.005) == (cams[3], 'newest')
    buf.add(4 * 10 ** 8, cams[0])  # a short buffer: the oldest goes
    assert buf.match(0)[1] != 'exact' and len(buf) == 4


def test_resolution_changing_stream_pairs_every_frame_with_its_own_size():
    buf = CameraInfoBuffer()
    sizes = [(32, 24), (64, 48)]
    wrong = 0
    # CameraInfo runs two frames ahead of the images (the worker is behind).
    for n in range(200):
        w, h = sizes[(n // 3) % 2]
        buf.add(n * 10 ** 7, camera_from_info(info(
            p=[0.8 * w, 0, w / 2, 0, 0, 0.8 * w, h / 2, 0, 0, 0, 1, 0], k=[0.0] * 9, width=w,
            height=h, stamp_ns=n * 10 ** 7)))
        if n >= 2:
            cam, how = buf.match((n - 2) * 10 ** 7, 0.001)
            expected = sizes[((n - 2) // 3) % 2]
            wrong += how != 'exact' or (cam.intrinsics.width, cam.intrinsics.height) != expected
    assert wrong == 0


def test_output_size_caps_large_images_and_keeps_the_aspect():
    assert output_size(640, 480, 1.0, 1280 * 960) == (640, 480, False)
    assert output_size(640, 480, 0.5, 0) == (320, 240, False)
    w, h, capped = output_size(3840, 2160, 1.0, 1280 * 960)
    assert capped and w * h <= 1280 * 960 and abs(w / h - 3840 / 2160) < 0.01
    assert w * h * 4 < 16 * 2 ** 20 / 2  # depth fits the shipped segment with room to spare
    assert output_size(3840, 2160, 1.0, 0) == (3840, 2160, False)


@pytest.mark.parametrize('size, cap, expected', [
    ((1920, 1080), 1280 * 960, (960, 540)),     # not 1477x831
    ((3840, 2160), 1280 * 960, (1280, 720)),
    ((4096, 2160), 1280 * 960, (1024, 540)),    # 3 does not divide 4096: 4 does
    ((2592, 1944), 1280 * 960, (864, 648)),
    ((1920, 1080), 640 * 480, (640, 360)),
])
def test_capped_output_divides_the_input_by_an_integer(size, cap, expected):
    w, h = size
    out_w, out_h, capped = output_size(w, h, 1.0, cap)
    assert capped and (out_w, out_h) == expected
    # What RTAB-Map asserts of a colour and depth pair: whole multiples, one factor.
    assert w % out_w == 0 and h % out_h == 0 and w // out_w == h // out_h
    assert out_w * out_h <= cap


def test_capped_output_without_a_common_divisor_still_fits_the_cap():
    out_w, out_h, capped = output_size(1999, 1001, 1.0, 400_000)  # both prime-ish
    assert capped and out_w * out_h <= 400_000
    n = 1999 // out_w
    assert (out_w, out_h) == (1999 // n, 1001 // n)
