"""The frame pipeline without ROS: geometry of each resize mode, upsampling, output modes."""

import dataclasses

import cv2
from mono_depth_ros.core.frame import (FrameConfig, FrameError, FrameProcessor,
                                       model_input_size, NonFiniteOutputError, Preprocessor)
from mono_depth_ros.core.geometry import project
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.core.pointcloud import unpack_cloud
from mono_depth_ros.inference import available_backends, BackendError, create_backend
import numpy as np
from onnx_models import brightness_model
import pytest

KITTI = Intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
#: the brightness model's metadata at 4:3: depth = 4 * mean(RGB) / 255 + 1
BRIGHT = ModelMeta(arch='bright', input_height=48, input_width=64, output_scale=4.0,
                   output_shift=1.0, min_depth=0.5, max_depth=10.0)


class Bright:
    """What test/onnx_models.brightness_model computes, for any input size (NHWC uint8)."""

    def __init__(self):
        self.shapes = []

    def infer(self, tensor):
        self.shapes.append(tensor.shape)
        return tensor[0].astype(np.float32).mean(axis=2) * np.float32(1 / 255.0)


class Constant:
    """A backend whose raw output is a fixed map, whatever the input."""

    def __init__(self, raw):
        self.raw = np.asarray(raw, np.float32)

    def infer(self, tensor):
        return self.raw.copy()


def meta(**kw):
    base = dict(arch='t', input_height=6, input_width=8, min_depth=0.5, max_depth=20.0)
    base.update(kw)
    return ModelMeta(**base)


def step_image(edge, width=1242, height=375):
    """Black left of camera column `edge`, white from it on."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, edge:] = 255
    return rgb


def run(m, backend, rgb, camera, **config):
    return FrameProcessor(m, backend, FrameConfig(**config)).run(rgb, camera)


@pytest.mark.parametrize('mode, scale, shift, raw, depth', [
    ('metric', 2.0, 1.0, 1.5, 4.0),
    ('inverse_depth', 0.5, 0.1, 0.3, 4.0),
    ('disparity', 8.0, 1.0, 1.0, 4.0),
])
def test_output_modes(mode, scale, shift, raw, depth):
    m = meta(output_mode=mode, output_scale=scale, output_shift=shift)
    cam = Intrinsics(8.0, 8.0, 3.5, 2.5, 8, 6)
    out = run(m, Constant(np.full((6, 8), raw)), np.zeros((6, 8, 3), np.uint8), cam)
    assert out.depth.shape == (6, 8) and np.allclose(out.depth, depth)
    assert out.relative is None and out.camera == cam


@pytest.mark.parametrize('upsampling', ['nearest', 'bilinear', 'edge_aware'])
def test_range_gives_rep117_infinities_and_resize_keeps_invalid_apart(upsampling):
    raw = np.full((6, 8), 3.0, np.float32)
    raw[0, 0], raw[5, 7], raw[2, 3] = 0.2, 50.0, np.nan
    cam = Intrinsics(16.0, 16.0, 7.5, 5.5, 16, 12)
    result = run(meta(), Constant(raw), np.zeros((12, 16, 3), np.uint8), cam, min_depth=1.0,
                 max_depth=5.0, depth_upsampling=upsampling, cloud_decimation=1,
                 want_points=True)
    out = result.depth
    assert out.shape == (12, 16)
    # REP 117: nearer than min_depth -Inf, beyond max_depth +Inf, no estimate NaN.
    assert out[0, 0] == -np.inf and out[11, 15] == np.inf
    assert np.isnan(out[5, 7])  # the model pixel (2, 3) covers output (4..5, 6..7)
    assert result.nonfinite == 1
    finite = out[np.isfinite(out)]
    assert np.allclose(finite, 3.0) and finite.size > 0.7 * out.size
    # None of the three has a point (depth_image_proc's convertDepth).
    xyz, _ = unpack_cloud(result.cloud)
    assert np.array_equal(np.isnan(xyz).all(axis=2), ~np.isfinite(out))
    assert np.isfinite(xyz[np.isfinite(out)]).all()


def test_inverse_depth_zero_is_infinitely_far_and_negative_has_no_estimate():
    raw = np.full((6, 8), 0.5, np.float32)
    raw[0, 0], raw[5, 7] = 0.0, -0.5
    cam = Intrinsics(8.0, 8.0, 3.5, 2.5, 8, 6)
    m = meta(output_mode='inverse_depth', output_scale=1.0, output_shift=0.0)
    out = run(m, Constant(raw), np.zeros((6, 8, 3), np.uint8), cam).depth
    assert out[0, 0] == np.inf and np.isnan(out[5, 7])
    assert np.allclose(out[1:5], 2.0)


def test_nonfinite_output_and_bad_frames_are_errors():
    cam = Intrinsics(8.0, 8.0, 3.5, 2.5, 8, 6)
    rgb = np.zeros((6, 8, 3), np.uint8)
    with pytest.raises(NonFiniteOutputError, match='NaN/Inf'):
        run(meta(), Constant(np.full((6, 8), np.nan)), rgb, cam)
    with pytest.raises(FrameError, match='camera is for 8x6 but the image is 9x6'):
        run(meta(), Constant(np.ones((6, 8))), np.zeros((6, 9, 3), np.uint8), cam)
    with pytest.raises(FrameError, match='uint8 RGB'):
        run(meta(), Constant(np.ones((6, 8))), rgb[..., 0], cam)
    with pytest.raises(FrameError, match='min_depth'):
        FrameProcessor(meta(), Constant(1), FrameConfig(min_depth=30.0))


@pytest.mark.parametrize('change, words', [
    ({'depth_size_ratio': 0.0}, 'depth_size_ratio'),
    ({'depth_size_ratio': 1.5}, 'depth_size_ratio'),
    ({'resize_mode': 'zoom'}, 'resize_mode'), ({'depth_upsampling': 'cubic'}, 'upsampling'),
    ({'edge_threshold': 0.0}, 'edge_threshold'), ({'cloud_decimation': 0}, 'decimation'),
    ({'min_depth': -1.0}, 'min_depth'),
])
def test_config_is_validated(change, words):
    with pytest.raises(FrameError, match=words):
        FrameConfig(**change)


def test_focal_rescale_uses_the_per_axis_focal_at_the_input():
    # KITTI stretched into 64x48: fx shrinks by 64/1242, fy by 48/375 (anisotropic).
    m = dataclasses.replace(BRIGHT, train_fx=40.0, train_fy=90.0, focal_rescale=True)
    rgb = np.full((375, 1242, 3), 64, np.uint8)
    out = run(m, Bright(), rgb, KITTI, resize_mode='stretch', depth_upsampling='nearest')
    expected = np.sqrt(KITTI.fx * 64 / 1242 * KITTI.fy * 48 / 375 / (40.0 * 90.0))
    assert np.allclose(out.depth, (4 * 64 / 255 + 1) * expected, rtol=1e-6)
    # Crop keeps the focal at 500 -> 64 on both axes.
    out = run(m, Bright(), rgb, KITTI, resize_mode='crop', depth_upsampling='nearest')
    expected = np.sqrt((KITTI.fx * 64 / 500) * (KITTI.fy * 48 / 375) / (40.0 * 90.0))
    assert np.allclose(np.nanmax(out.depth), (4 * 64 / 255 + 1) * expected, rtol=1e-6)


@pytest.mark.parametrize('mode, edge, box, grid', [
    # box: camera columns with depth; grid: the model output's exact intrinsics.
    ('stretch', 621, (0, 1242), KITTI.resize(64, 48)),
    ('crop', 496, (371, 871), KITTI.crop(371, 0, 500, 375).resize(64, 48)),
    ('pad', 621, (0, 1242), KITTI.resize(64, 19)),
])
def test_kitti_image_into_a_4_3_model(mode, edge, box, grid):
    # The step sits on a model pixel boundary (stretch and pad: 1242 / 64 * 32 = 621; crop:
    # 371 + 500 / 64 * 16 = 496), so bilinear output is symmetric about it exactly there.
    backend = Bright()
    result = run(BRIGHT, backend, step_image(edge), KITTI, resize_mode=mode,
                 depth_upsampling='bilinear')
    depth = result.depth
    assert depth.shape == (375, 1242) and result.camera == KITTI
    assert result.model_camera.is_close(grid, 1e-9)
    assert backend.shapes == [(1, 48, 64, 3)]
    valid = np.isfinite(depth)
    assert valid[:, box[0]:box[1]].all() and not valid[:, :box[0]].any() and \
        not valid[:, box[1]:].any()
    # Every row alike: the padding (mean colour, 2.8 m) leaks into no row.
    assert np.array_equal(depth[0], depth[200], equal_nan=True)
    assert np.array_equal(depth[-1], depth[200], equal_nan=True)
    row = depth[200]
    assert row[box[0]] == pytest.approx(1.0) and row[box[1] - 1] == pytest.approx(5.0)
    for k in range(6):
        assert row[edge - 1 - k] + row[edge + k] == pytest.approx(6.0, abs=1e-5)
    assert row[edge - 1] < 3.0 < row[edge]


def test_pad_image_rows_match_the_model_rows():
    # A horizontal step at camera row 187/188 of 375 -> rows of the 64x19 padded image.
    rgb = np.zeros((375, 1242, 3), np.uint8)
    rgb[:, :, 0] = (np.arange(375) * 255 // 374)[:, None]
    result = run(BRIGHT, Bright(), rgb, KITTI, resize_mode='pad', depth_upsampling='bilinear')
    column = result.depth[:, 600]
    # A vertical ramp stays a monotone ramp from top to bottom: nothing of the padding.
    assert np.all(np.diff(column) >= -1e-6)
    assert column[0] < 1.1 and column[-1] > 2.2


def test_depth_size_ratio_below_one_follows_the_same_geometry():
    # 1242 * 0.3 = 372.6 -> 373: no whole-pixel alignment, so the exact separable path runs.
    result = run(BRIGHT, Bright(), step_image(621), KITTI, resize_mode='stretch',
                 depth_size_ratio=0.3, depth_upsampling='bilinear')
    assert result.depth.shape == (112, 373) and result.camera.is_close(KITTI.resize(373, 112))
    row = result.depth[50]
    # Output pixel u's centre is camera coordinate (u + 0.5) * 1242 / 373 - 0.5; the step
    # (camera edge 621) is model coordinate 31.5, where the ramp crosses 3 m.
    u = np.arange(373)
    xm = np.clip((u + 0.5) * 1242 / 373 * 64 / 1242 - 0.5, 0, 63)
    expected = 1 + 4 * np.clip(xm - 31, 0, 1)
    assert np.allclose(row, expected, atol=1e-5)


def test_upsampling_modes():
    raw = np.ones((6, 8), np.float32)
    raw[:, 4:] = 3.0       # 1 m | 3 m step between model columns 3 and 4
    raw[2, 1] = 1.02       # a 2 % bump: not an edge
    cam = Intrinsics(32.0, 32.0, 15.5, 11.5, 32, 24)
    rgb = np.zeros((24, 32, 3), np.uint8)
    out = {mode: run(meta(), Constant(raw), rgb, cam, depth_upsampling=mode,
                     edge_threshold=0.1).depth for mode in ('nearest', 'bilinear', 'edge_aware')}
    # nearest: only values of the model, each output pixel from the model pixel it lies in.
    assert np.array_equal(out['nearest'], np.kron(raw, np.ones((4, 4), np.float32)))
    bilinear = cv2.resize(raw, (32, 24), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out['bilinear'], bilinear)
    mixed = np.isnan(out['edge_aware'])
    # Exactly the output pixels between the centres of model columns 3 and 4 (x 3.5..4.5
    # -> coordinates 14..17 of 32) mix the edge; everything else is the bilinear value.
    assert mixed[:, 14:18].all() and mixed.sum() == 24 * 4
    assert np.array_equal(out['edge_aware'][~mixed], bilinear[~mixed])


def test_separable_path_matches_cv2_where_both_apply():
    from mono_depth_ros.core import frame
    src = np.random.default_rng(0).random((12, 16)).astype(np.float32) + 1
    ax_y = frame._Axis.create(48, 48, 0.0, 48.0, 12)
    ax_x = frame._Axis.create(64, 64, 0.0, 64.0, 16)
    assert ax_x.aligned and ax_y.aligned
    fast = frame._upsample(src, ax_y, ax_x, 'bilinear', 0.1, {})
    slow = frame._upsample(src, dataclasses.replace(ax_y, aligned=False),
                           dataclasses.replace(ax_x, aligned=False), 'bilinear', 0.1, {})
    assert np.allclose(fast, slow, atol=1e-6)
    near = frame._upsample(src, ax_y, ax_x, 'nearest', 0.1, {})
    near_slow = frame._upsample(src, dataclasses.replace(ax_y, aligned=False),
                                dataclasses.replace(ax_x, aligned=False), 'nearest', 0.1, {})
    assert np.array_equal(near, near_slow)


def test_known_plane_cloud_follows_the_camera_exactly():
    # A wall 2.5 m ahead (brightness 96 -> 4 * 96/255 + 1 m): every cloud point must project
    # back, through the camera's own K, onto the camera pixel its output pixel stands for.
    cam = Intrinsics(500.0, 480.0, 300.0, 250.0, 640, 480)
    rgb = np.full((480, 640, 3), 96, np.uint8)
    m = dataclasses.replace(BRIGHT, input_height=120, input_width=160)
    result = run(m, Bright(), rgb, cam, depth_size_ratio=0.5, cloud_decimation=3, want_points=True)
    xyz, colour = unpack_cloud(result.cloud)
    assert xyz.shape == (80, 107, 3) and (colour == 96).all()
    z = 4 * 96 / 255 + 1
    assert np.allclose(xyz[..., 2], z, rtol=1e-6)
    v, u = np.mgrid[0:80, 0:107]
    # Kept pixel (3i, 3j) of the 320x240 depth; its centre in the 640x480 camera image:
    cam_u, cam_v = (3 * u + 0.5) * 2 - 0.5, (3 * v + 0.5) * 2 - 0.5
    uv = project(xyz.reshape(-1, 3), cam)
    assert np.allclose(uv[:, 0], cam_u.ravel(), atol=1e-3)
    assert np.allclose(uv[:, 1], cam_v.ravel(), atol=1e-3)
    # A 1 % wrong fx moves the corner points by ~3 px: this check would see it.
    wrong = Intrinsics(505.0, 480.0, 300.0, 250.0, 640, 480)
    assert np.abs(project(xyz.reshape(-1, 3), wrong)[:, 0] - cam_u.ravel()).max() > 2.5


def test_size_multiple_keeps_the_camera_aspect():
    m = dataclasses.replace(BRIGHT, input_height=120, input_width=160, size_multiple=14)
    # Each side of the same area (19200 px) at the camera's aspect, to the nearest multiple.
    assert model_input_size(m, 640, 480) == (154, 126)
    assert model_input_size(m, 1242, 375) == (252, 70)
    assert all(v % 14 == 0 for v in model_input_size(m, 1920, 1080))
    backend = Bright()
    result = run(m, backend, step_image(621), KITTI, depth_upsampling='bilinear')
    assert backend.shapes == [(1, 70, 252, 3)]
    assert result.model_camera.is_close(KITTI.resize(252, 70), 1e-9)
    assert result.depth.shape == (375, 1242)


def test_relative_model_needs_a_scale():
    raw = np.full((6, 8), 0.5, np.float32)
    raw[:, 4:] = 0.25                    # inverse depth: the right half is farther
    m = meta(output_mode='relative_inverse_depth', output_scale=2.0, output_shift=0.0)
    cam = Intrinsics(8.0, 8.0, 3.5, 2.5, 8, 6)
    rgb = np.zeros((6, 8, 3), np.uint8)
    result = run(m, Constant(raw), rgb, cam, want_points=True, want_colored=True)
    assert result.depth is None and result.cloud is None and result.colored is None
    assert np.allclose(result.relative[:, :4], 1.0) and np.allclose(result.relative[:, 4:], 2.0)

    class Source:
        def __init__(self, answer):
            self.answer, self.seen = answer, []

        def fit(self, sample):
            self.seen.append(sample)
            return self.answer

    source = Source((0.25, 0.0))         # inverse depth 0.25 * (2 y): 4 m and 8 m
    processor = FrameProcessor(m, Constant(raw), FrameConfig(want_points=True))
    result = processor.run(rgb, cam, scale=source)
    assert np.allclose(result.depth[:, :4], 4.0) and np.allclose(result.depth[:, 4:], 8.0)
    assert result.scale == (0.25, 0.0) and result.cloud is not None
    sample = source.seen[0]
    assert sample.inverse and sample.camera == cam and np.allclose(sample.native[:, :4], 1.0)
    assert np.allclose(sample.depth_like()[:, 4:], 2.0)
    assert processor.run(rgb, cam, scale=Source(None)).depth is None
    assert np.allclose(processor.run(rgb, cam, scale=(0.5, 0.0)).depth[:, :4], 2.0)
    with pytest.raises(FrameError, match='unusable scale'):
        processor.run(rgb, cam, scale=(0.0, 1.0))


def test_metric_model_scale_correction_acts_in_its_space():
    m = meta(output_mode='metric', output_scale=1.0)
    cam = Intrinsics(8.0, 8.0, 3.5, 2.5, 8, 6)
    out = FrameProcessor(m, Constant(np.full((6, 8), 2.0))).run(
        np.zeros((6, 8, 3), np.uint8), cam, scale=(1.5, 0.5))
    assert np.allclose(out.depth, 3.5)


def test_preprocessor_layouts_and_normalisation():
    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    x = Preprocessor(meta())(rgb)
    assert x.shape == (1, 6, 8, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    x = Preprocessor(meta(input_layout='NCHW', input_dtype='float32'))(rgb)
    assert x.shape == (1, 3, 6, 8) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    m = meta(input_layout='NCHW', input_dtype='float32', normalize_in_graph=False)
    x = Preprocessor(m)(np.full((6, 8, 3), 255, np.uint8))
    assert np.allclose(x[0, :, 0, 0], (1.0 - np.array(m.mean)) / np.array(m.std), atol=1e-5)
    with pytest.raises(ValueError, match='RGB'):
        Preprocessor(meta())(np.zeros((6, 8), np.uint8))


def test_onnxruntime_backend_runs_and_auto_says_what_it_picked(tmp_path):
    path = tmp_path / 'b.onnx'
    written = brightness_model(path, 6, 8)
    lines = []
    backend = create_backend('auto', str(path), log=lines.append)
    assert backend.name == 'onnxruntime' and backend.meta == written
    assert 'onnxruntime' in lines[0] and 'skipped tensorrt' in lines[0]
    out = backend.infer(np.full((1, 6, 8, 3), 51, np.uint8))
    assert out.shape == (6, 8) and np.allclose(out, 0.2)
    assert available_backends()['onnxruntime'][0]
    # The real ONNX model and the stand-in agree through the whole pipeline.
    rgb = step_image(5, 16, 12)
    cam = Intrinsics(16.0, 16.0, 7.5, 5.5, 16, 12)
    assert np.allclose(run(written, backend, rgb, cam).depth, run(written, Bright(), rgb,
                                                                  cam).depth, equal_nan=True)


def test_backend_errors_are_clear(tmp_path):
    with pytest.raises(BackendError, match='not found'):
        create_backend('auto', str(tmp_path / 'none.onnx'))
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'garbage')
    with pytest.raises(BackendError, match='cannot load'):
        create_backend('onnxruntime', str(bad))
    with pytest.raises(BackendError, match='unknown backend'):
        create_backend('openvino', str(bad))


@pytest.mark.parametrize('mode', ['crop', 'pad'])
@pytest.mark.parametrize('scale', [0.5, 0.3])
def test_crop_and_pad_geometry_at_a_smaller_output(mode, scale):
    # 0.5 keeps whole output pixels (cv2 path); 0.3 (373x112 of 1242x375) does not (exact
    # separable path). Either way depth is where the model saw the camera, and the ramp's
    # value at each output pixel follows from its centre's camera coordinate.
    rgb = np.zeros((375, 1242, 3), np.uint8)
    rgb[..., :] = (np.arange(1242) * 255 // 1241).astype(np.uint8)[None, :, None]
    result = run(BRIGHT, Bright(), rgb, KITTI, resize_mode=mode, depth_size_ratio=scale,
                 depth_upsampling='bilinear')
    out_h, out_w = result.depth.shape
    assert result.camera.is_close(KITTI.resize(out_w, out_h))
    row = result.depth[out_h // 2]
    centres = (np.arange(out_w) + 0.5) * 1242 / out_w   # camera edge coordinates
    box = (371, 871) if mode == 'crop' else (0, 1242)
    inside = (centres >= box[0]) & (centres <= box[1])
    assert np.array_equal(np.isfinite(row), inside)
    # Away from the box's border, depth rises with the camera column like the ramp does.
    ramp = 1 + 4 * np.clip(centres - 0.5, 0, 1241) / 1241
    core = inside & (centres > box[0] + 30) & (centres < box[1] - 30)
    assert np.allclose(row[core], ramp[core], atol=0.03)


def test_pad_with_a_half_resolution_output_cuts_whole_output_pixels():
    class HalfBright(Bright):
        def infer(self, tensor):
            full = super().infer(tensor)
            return cv2.resize(full, (full.shape[1] // 2, full.shape[0] // 2),
                              interpolation=cv2.INTER_AREA)

    # KITTI into 64x48 pads 14 rows above the 19 image rows: at 32x24 the image spans
    # output rows 7..16.5, so rows 7..15 (whole pixels) are kept, camera rows 0..355.3.
    result = run(BRIGHT, HalfBright(), np.full((375, 1242, 3), 200, np.uint8), KITTI,
                 resize_mode='pad', depth_upsampling='bilinear')
    grid = result.model_camera
    assert (grid.width, grid.height) == (32, 9)
    assert grid.is_close(Intrinsics(KITTI.fx * 32 / 1242, KITTI.fy * 9 / (9 * 2 * 375 / 19),
                                    (KITTI.cx + 0.5) * 32 / 1242 - 0.5,
                                    (KITTI.cy + 0.5) * 9 / (9 * 2 * 375 / 19) - 0.5, 32, 9),
                         1e-9)
    valid_rows = np.isfinite(result.depth).all(axis=1)
    centres = np.arange(375) + 0.5
    assert np.array_equal(valid_rows, centres <= 9 * 2 * 375 / 19)
    assert np.allclose(result.depth[valid_rows], 4 * 200 / 255 + 1, atol=1e-5)


@pytest.mark.parametrize('step', [2, 3])
def test_cloud_colours_are_the_kept_pixels(step):
    rgb = np.random.default_rng(step).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    cam = Intrinsics(30.0, 30.0, 15.5, 11.5, 32, 24)
    m = dataclasses.replace(BRIGHT, input_height=24, input_width=32)
    result = run(m, Constant(np.full((24, 32), 0.5)), rgb, cam, cloud_decimation=step,
                 want_points=True)
    _xyz, colour = unpack_cloud(result.cloud)
    assert np.array_equal(colour, rgb[::step, ::step])


def test_cloud_points_are_nan_exactly_where_depth_is():
    raw = np.full((6, 8), 3.0, np.float32)
    raw[1, 2], raw[4, 6] = 0.2, 50.0     # out of [1, 5]
    cam = Intrinsics(16.0, 16.0, 7.5, 5.5, 16, 12)
    result = run(meta(), Constant(raw), np.zeros((12, 16, 3), np.uint8), cam, min_depth=1.0,
                 max_depth=5.0, cloud_decimation=1, want_points=True)
    xyz, _rgb = unpack_cloud(result.cloud)
    invalid = ~np.isfinite(result.depth)  # +-Inf out of range (REP 117), NaN no estimate
    assert invalid.any() and (~invalid).any()
    assert np.array_equal(np.isnan(xyz).all(axis=2), invalid)
    assert not np.isnan(xyz[~invalid]).any()
