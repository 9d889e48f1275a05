"""The metadata's fitting fields: fit_aspect and crop_fraction, through the frame pipeline."""

import dataclasses

from mono_depth_ros.core.frame import FrameConfig, FrameProcessor
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import FORMAT_VERSION, ModelMeta, ModelMetaError
import numpy as np
import pytest

#: FastDepth's fit: a 4:3 picture squeezed to a square input, 0.912 of each side kept
SQUARE = ModelMeta(arch='ramp', input_height=56, input_width=56, resize_mode='crop',
                   fit_aspect=304 / 228, crop_fraction=228 / 250, min_depth=0.01,
                   max_depth=1000.0)
KINECT = Intrinsics(518.8579, 519.4696, 325.5824, 253.7362, 640, 480)
KITTI = Intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
CONFIG = FrameConfig(depth_upsampling='bilinear')


class RedChannel:
    """A backend whose 'depth' is the red channel of its input (NHWC uint8), in [0, 255]."""

    def infer(self, tensor):
        return tensor[0, :, :, 0].astype(np.float32) + np.float32(1.0)


def _ramp(camera):
    """Return an image whose red channel is a horizontal ramp and green a vertical one."""
    u = np.linspace(0, 255, camera.width)
    v = np.linspace(0, 255, camera.height)
    rgb = np.zeros((camera.height, camera.width, 3), np.uint8)
    rgb[..., 0] = np.round(u)[None, :]
    rgb[..., 1] = np.round(v)[:, None]
    return rgb


def test_the_fields_are_validated_and_travel_in_the_file():
    assert FORMAT_VERSION >= 3
    again = ModelMeta.from_onnx_props(SQUARE.to_onnx_props())
    assert (again.fit_aspect, again.crop_fraction) == (SQUARE.fit_aspect, SQUARE.crop_fraction)
    plain = ModelMeta(arch='x', input_height=8, input_width=8)
    assert (plain.fit_aspect, plain.crop_fraction) == (0.0, 1.0)
    for bad in ({'crop_fraction': 0.0}, {'crop_fraction': 1.5},
                {'crop_fraction': float('nan')}, {'fit_aspect': -1.0},
                {'fit_aspect': float('inf')}, {'crop_fraction': '0.9'}):
        with pytest.raises(ModelMetaError, match=next(iter(bad))):
            dataclasses.replace(plain, **bad)


def test_crop_fraction_zooms_the_centre_with_exact_intrinsics():
    processor = FrameProcessor(SQUARE, RedChannel(), CONFIG)
    plan = processor.plan(640, 480)
    # 0.912 of 640 x 480 (a 4:3 image is already the fit aspect), centred.
    assert plan.box == (28, 21, 584, 438)
    at_input = processor.input_camera(plan, KINECT)
    assert at_input.fx == pytest.approx(KINECT.fx * 56 / 584)
    assert at_input.fy == pytest.approx(KINECT.fy * 56 / 438)
    assert at_input.cx == pytest.approx((KINECT.cx + 0.5 - 28) * 56 / 584 - 0.5)
    rgb = _ramp(KINECT)
    result = processor.run(rgb, KINECT)
    depth = result.depth
    assert depth.shape == (480, 640)
    valid = np.isfinite(depth)
    # What the model did not see has no estimate; what it saw is all there.
    assert not valid[:, :27].any() and not valid[:, 613:].any()
    assert not valid[:20].any() and not valid[460:].any()
    assert valid[25:455, 32:608].all()
    # The output maps back onto the camera pixels it came from: the ramp comes back.
    expected = rgb[..., 0].astype(np.float32) + 1.0
    inner = (slice(40, 440), slice(40, 600))
    assert np.abs(depth[inner] - expected[inner]).max() < 3.0
    grid = result.model_camera
    assert (grid.width, grid.height) == (56, 56)
    assert grid.fx == pytest.approx(at_input.fx) and grid.cy == pytest.approx(at_input.cy)


def test_fit_aspect_cuts_a_wide_camera_to_the_trained_aspect():
    processor = FrameProcessor(SQUARE, RedChannel(), CONFIG)
    plan = processor.plan(1242, 375)
    x0, y0, w, h = plan.box
    assert (w, h) == (round(500 * 0.912), round(375 * 0.912))   # 4:3 of 375 rows, zoomed
    assert abs((x0 + w / 2) - 621) <= 1 and abs((y0 + h / 2) - 187.5) <= 1
    at_input = processor.input_camera(plan, KITTI)
    # The input's pixels are not square: x squeezed by 56 / w, y by 56 / h.
    assert at_input.fx / at_input.fy == pytest.approx(h / w)
    plain = FrameProcessor(dataclasses.replace(SQUARE, fit_aspect=0.0, crop_fraction=1.0),
                           RedChannel(), CONFIG)
    assert plain.plan(1242, 375).box == (433, 0, 375, 375)      # without: a square cut


def test_pad_and_stretch_follow_the_fields_too():
    pad = FrameProcessor(dataclasses.replace(SQUARE, resize_mode='pad', crop_fraction=1.0),
                         RedChannel(), CONFIG)
    plan = pad.plan(1242, 375)
    # 1242 x 375 at the 4:3 squeeze fills the width and 56 * (4/3) / (1242/375) rows.
    assert plan.inner == (0, (56 - 23) // 2, 56, 23)
    result = pad.run(_ramp(KITTI), KITTI)
    assert np.isfinite(result.depth).mean() > 0.95
    stretch = FrameProcessor(dataclasses.replace(SQUARE, resize_mode='stretch'),
                             RedChannel(), CONFIG)
    assert stretch.plan(640, 480).box == (28, 21, 584, 438)
    depth = stretch.run(_ramp(KINECT), KINECT).depth
    assert not np.isfinite(depth[:, :27]).any() and np.isfinite(depth[240, 40:600]).all()
