"""
Scale from the camera's own motion, sources in one fit, and the estimator's defects (no ROS).

The motion tests render a textured synthetic room from poses a known metric distance apart
(exact geometry, so the triangulated depth can be checked against the rendered one), plus
the degenerate cases: rotation in place, a missing transform, an object moving on its own.
"""

import math

from mono_depth_ros.core import motion as mo
from mono_depth_ros.core import scale as sc
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import ModelMeta, ModelMetaError
from mono_depth_ros.sim.synthetic import look_at, Scene
import numpy as np
import pytest

CAM = Intrinsics(320.0, 320.0, 320.0, 240.0, 640, 480)


@pytest.fixture(scope='module')
def room():
    """Return views of one room along a path: [(rgb, depth, camera-to-world pose)]."""
    scene = Scene.random(seed=4)
    eye = np.array([1.6, 1.6, 1.2])
    target = np.array([scene.size[0] - 0.5, scene.size[1] - 0.5, 0.8])
    views = []
    for step in range(6):
        d = np.array([0.03, -0.03, 0.0]) * step  # 4.2 cm of travel per step, sideways
        pose = look_at(eye + d, target + d)
        frame = scene.render(CAM, pose)
        views.append((frame.rgb, frame.depth.astype(np.float64), pose))
    return views


def _depth_at(points, depth):
    u = np.floor(points[:, 0] / points[:, 2] * CAM.fx + CAM.cx + 0.5).astype(int)
    v = np.floor(points[:, 1] / points[:, 2] * CAM.fy + CAM.cy + 0.5).astype(int)
    return depth[np.clip(v, 0, CAM.height - 1), np.clip(u, 0, CAM.width - 1)]


# -- the tracker ------------------------------------------------------------------------------
def test_triangulated_points_have_the_rendered_depth(room):
    tracker = mo.MotionTracker(mo.MotionConfig(min_baseline=0.05))
    first = tracker.update(room[0][0], room[0][2], CAM, 0.0)
    assert first.reason == 'new_keyframe'
    got = tracker.update(room[2][0], room[2][2], CAM, 0.1)
    assert got.ok, got.detail
    assert got.baseline == pytest.approx(0.06 * math.sqrt(2), rel=1e-6)
    assert got.points.shape[0] >= 30
    truth = _depth_at(got.points, room[2][1])
    assert np.median(np.abs(got.points[:, 2] / truth - 1.0)) < 0.05


def test_no_motion_and_rotation_only_give_no_points(room):
    tracker = mo.MotionTracker(mo.MotionConfig(min_baseline=0.05))
    rgb, _, pose = room[0]
    tracker.update(rgb, pose, CAM, 0.0)
    assert tracker.update(rgb, pose, CAM, 0.1).reason == 'no_baseline'
    # Turned 5 degrees about the optical centre: parallax without baseline.
    turn = np.eye(4)
    c, s = math.cos(math.radians(5)), math.sin(math.radians(5))
    turn[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    got = tracker.update(rgb, pose @ turn, CAM, 0.2)
    assert got.reason == 'no_baseline' and got.baseline < 1e-9
    assert tracker.counts['no_baseline'] == 2


def test_missing_transform_is_counted(room):
    tracker = mo.MotionTracker()
    got = tracker.update(room[0][0], None, CAM, 0.0)
    assert got.reason == 'no_transform' and tracker.counts['no_transform'] == 1
    bad = np.full((4, 4), np.nan)
    assert tracker.update(room[0][0], bad, CAM, 0.1).reason == 'no_transform'


def test_a_moving_object_is_rejected(room):
    tracker = mo.MotionTracker(mo.MotionConfig(min_baseline=0.05))
    tracker.update(room[0][0], room[0][2], CAM, 0.0)
    rgb = room[2][0].copy()
    # A block of the image moves up by 12 px on its own: across the (near horizontal)
    # epipolar lines of the sideways motion.
    rgb[100:300, 200:440] = room[2][0][112:312, 200:440]
    got = tracker.update(rgb, room[2][2], CAM, 0.1)
    assert got.ok, got.detail
    assert got.moving >= 5 and tracker.counts['moving'] == got.moving
    truth = _depth_at(got.points, room[2][1])
    assert np.median(np.abs(got.points[:, 2] / truth - 1.0)) < 0.05


def test_motion_source_scales_a_relative_model_and_holds_through_degenerate_frames(room):
    cfg = sc.ScaleConfig(source='motion', motion_min_baseline=0.05, scale_hold=1.0,
                         scale_min_inliers=20)
    est = sc.ScaleEstimator(cfg, 'inverse', fit_shift=True)
    a, b = 1.7, 0.05

    def base(i):
        return (a / room[i][1] + b).astype(np.float32)

    assert est.update(base(0), CAM, 0.0, image=room[0][0], pose=room[0][2]) is None
    got = est.update(base(2), CAM, 0.1, image=room[2][0], pose=room[2][2])
    assert got is not None, est.last_fit.reason
    depth = sc.apply_scale(base(2), 'inverse', *got)
    valid = np.isfinite(depth)
    assert np.median(np.abs(depth[valid] / room[2][1][valid] - 1.0)) < 0.05
    # Missing transform, then no motion: the scale is held, and each case is counted.
    assert est.update(base(2), CAM, 0.2, image=room[2][0], pose=None) == got
    assert est.counts['motion_no_transform'] == 1
    # Back where the keyframe was taken: no baseline.
    assert est.update(base(0), CAM, 0.3, image=room[0][0], pose=room[0][2]) == got
    assert est.counts['motion_no_baseline'] >= 1
    assert est.counts['rejected_fit'] == 3  # the first keyframe, no transform, no baseline
    diag = est.diagnostics()
    assert diag['scale_motion_no_transform'] == '1' and diag['scale_source'] == 'motion'
    # Beyond scale_hold without a good fit: no metres.
    assert est.update(base(2), CAM, 1.5, image=room[2][0], pose=None) is None


def test_a_textureless_view_gives_too_few_tracks(room):
    est = sc.ScaleEstimator(sc.ScaleConfig(source='motion', scale_hold=1.0), 'inverse')
    base = (1.0 / room[0][1]).astype(np.float32)
    est._accept(sc.ScaleFit(2.0, 0.0, 50, 50, 0.0), 0.0)
    blank = np.full_like(room[0][0], 128)
    for k, i in enumerate((0, 2, 4)):
        got = est.update(base, CAM, 0.1 * (k + 1), image=blank, pose=room[i][2])
        assert got == (2.0, 0.0)
    assert est.counts['motion_few_tracks'] == 3 and est.counts['fits'] == 1
    assert 'textureless' in est.last_fit.reason


def test_motion_parameters_are_validated():
    with pytest.raises(sc.ScaleError, match='min_baseline'):
        sc.ScaleEstimator(sc.ScaleConfig(source='motion', motion_min_baseline=0.0), 'inverse')
    with pytest.raises(sc.ScaleError, match='tracks'):
        sc.ScaleEstimator(sc.ScaleConfig(source='motion', motion_tracks=2), 'inverse')


# -- metadata: only what is unknown is fitted ---------------------------------------------------
def test_metadata_says_what_is_unknown():
    rel = dict(arch='x', input_height=8, input_width=8, output_mode='relative_inverse_depth')
    assert ModelMeta(**rel).unknown == 'scale_shift'
    assert ModelMeta(**rel, scale_unknown='scale').unknown == 'scale'
    assert ModelMeta(arch='x', input_height=8, input_width=8).unknown == 'none'
    with pytest.raises(ModelMetaError, match='scale_unknown'):
        ModelMeta(**rel, scale_unknown='none')
    with pytest.raises(ModelMetaError, match='scale_unknown'):
        ModelMeta(arch='x', input_height=8, input_width=8, scale_unknown='scale')
    with pytest.raises(ModelMetaError, match='scale_unknown'):
        ModelMeta(**rel, scale_unknown='shift')
    meta = ModelMeta.from_json(ModelMeta(**rel, scale_unknown='scale').to_json())
    assert meta.unknown == 'scale'


def test_a_scale_only_model_gets_a_scale_only_fit():
    # Inverse depth known up to a factor (a self-supervised model): its zero is right.
    rng = np.random.default_rng(5)
    z = rng.uniform(0.8, 6.0, 400)
    base = 0.3 / z
    # Noisy samples: with a free shift the noise moves the zero too.
    noisy = z * (1 + rng.normal(0, 0.03, z.size))
    cfg = sc.ScaleConfig(source='sparse_depth', scale_min_inliers=20)
    image = np.zeros((20, 20))
    est = sc.ScaleEstimator(cfg, 'inverse', fit_shift=False)
    assert est.fit_shift is False
    fit = sc.fit_sparse(base, noisy, 'inverse', fit_shift=est.fit_shift)
    assert fit.ok and fit.shift == 0.0 and fit.scale == pytest.approx(1 / 0.3, rel=0.01)
    # The estimator fits what it was told: a scale only.
    est.add_sparse(sc.SparseSamples.from_points(
        np.column_stack([np.zeros(z.size), np.zeros(z.size), noisy]), 0.0))
    flat = np.full((20, 20), np.nan, np.float32)
    flat[10, 10] = 0.1
    del image
    got = est.update(flat, Intrinsics(10.0, 10.0, 10.0, 10.0, 20, 20), 0.0)
    assert got is not None and got[1] == 0.0


# -- the estimator's defects ------------------------------------------------------------------
def _fits(est, scales):
    it = iter(scales)
    est.fit = lambda *a, **k: sc.ScaleFit(next(it), 0.0, 50, 50, 0.0)


def test_time_going_back_resets_the_history():
    logged = []
    est = sc.ScaleEstimator(sc.ScaleConfig(source='sparse_depth', scale_hold=1.0), 'depth',
                            log=logged.append)
    base = np.ones((4, 4), np.float32)
    # A bag played with --loop: 0..1.9 s at scale 2, one stray frame 1000 s ahead, then the
    # loop starts again at 0 s with the scene at a new true range (scale 3).
    stamps = [0.1 * i for i in range(20)] + [1001.0] + [0.1 * i for i in range(20)]
    scales = [2.0] * 21 + [3.0] * 20
    _fits(est, scales)
    out = [est.update(base, None, t) for t in stamps]
    assert out[19] == (2.0, 0.0)
    assert est.counts['time_jumps_back'] == 1
    assert len(logged) == 1 and 'back' in logged[0]
    # After the jump back the new scale is taken at once, and kept.
    assert all(o == (3.0, 0.0) for o in out[21:]), out[21:]


def test_a_wrong_first_fit_does_not_lock_out_the_right_ones():
    est = sc.ScaleEstimator(sc.ScaleConfig(source='sparse_depth', scale_hold=5.0,
                                           scale_max_jump=0.3), 'depth')
    base = np.ones((4, 4), np.float32)
    _fits(est, [6.0] + [2.0] * 10)  # the first fit is 3x off
    out = [est.update(base, None, 0.1 * i) for i in range(11)]
    assert out[0] == (6.0, 0.0)
    # Within JUMP_CONFIRM frames (not scale_hold = 5 s) the consistent fits win ...
    assert out[sc.JUMP_CONFIRM] == (2.0, 0.0) and out[-1] == (2.0, 0.0)
    assert est.counts['rescaled'] == 1
    # ... while a lone outlier is still rejected.
    _fits(est, [6.0, 2.0])
    assert est.update(base, None, 1.2) == (2.0, 0.0)
    assert est.update(base, None, 1.3) == (2.0, 0.0)
    assert est.counts['rejected_jump'] == sc.JUMP_CONFIRM


def test_smoothing_blends_the_metric_result():
    # Two scale-and-shift maps that each fit; blending scale and shift apart gives depths
    # outside both maps' (here, at the far end of the base).
    base = np.linspace(0.1, 1.0, 200, dtype=np.float32)[None, :].repeat(4, axis=0)
    held, new = (3.6, -0.2), (1.0, 0.8)
    est = sc.ScaleEstimator(sc.ScaleConfig(source='sparse_depth', scale_smoothing=1.0,
                                           scale_max_jump=0.0, scale_hold=10.0), 'inverse')
    _fits(est, [held[0]])
    est.fit = lambda *a, **k: sc.ScaleFit(*held, 50, 50, 0.0)
    est.update(base, None, 0.0)
    est.fit = lambda *a, **k: sc.ScaleFit(*new, 50, 50, 0.0)
    got = est.update(base, None, math.log(2.0))  # alpha = 0.5
    z0, z1 = (sc.apply_scale(base, 'inverse', *m) for m in (held, new))
    z = sc.apply_scale(base, 'inverse', *got)
    lo, hi = np.minimum(z0, z1), np.maximum(z0, z1)
    assert np.isfinite(z).all()
    # Scale and shift blended apart put 22% of the pixels more than 3% outside both maps'
    # depths; the metric blend (one affine map cannot follow it exactly) 3%.
    outside = (z < lo * 0.97) | (z > hi * 1.03)
    assert outside.mean() < 0.05
    # ... and it is close to the geometric mean of the two depths.
    assert np.median(np.abs(z / np.sqrt(z0 * z1) - 1)) < 0.05


def test_range_window_is_centred_on_the_principal_point():
    h, w = 120, 160
    base = np.full((h, w), 2.0, np.float32)
    # The principal point is 15 px right of the image centre; the beam lands there.
    intr = Intrinsics(150.0, 150.0, w / 2 - 0.5 + 15, h / 2 - 0.5, w, h)
    base[:, 90:] = 5.0
    fit = sc.fit_range(base, 'depth', 10.0, window=0.05, intrinsics=intr)
    assert fit.ok and fit.scale == pytest.approx(2.0)  # 10 m / 5
    centre = sc.fit_range(base, 'depth', 10.0, window=0.05)
    assert centre.scale == pytest.approx(5.0)  # without intrinsics: the image centre
    est = sc.ScaleEstimator(sc.ScaleConfig(source='range'), 'depth', fit_shift=False)
    est.add_range(0.0, 10.0)
    assert est.update(base, intr, 0.0) == (pytest.approx(2.0), 0.0)


def test_sources_combine_in_one_weighted_fit():
    # A wall 4 m away seen by sparse depth, and a box 1.5 m ahead by the rangefinder: each
    # alone cannot tell scale and shift of an affine inverse-depth map; together they do.
    h, w = 120, 160
    z = np.full((h, w), 4.0)
    z[50:70, 70:90] = 1.5
    a, b = 0.8, 0.1
    base = (a / z + b).astype(np.float32)
    intr = Intrinsics(150.0, 150.0, w / 2 - 0.5, h / 2 - 0.5, w, h)
    sparse = np.zeros((h, w))
    sparse[5::10, 5::10] = 4.0
    alone = sc.ScaleEstimator(sc.ScaleConfig(source='sparse_depth'), 'inverse')
    alone.add_sparse(sc.SparseSamples.from_depth_image(sparse, 0.0))
    assert alone.update(base, intr, 0.0) is None
    cfg = sc.ScaleConfig(source='sparse_depth', combine='range:1')
    assert cfg.sources() == {'sparse_depth': 1.0, 'range': 1.0}
    est = sc.ScaleEstimator(cfg, 'inverse')
    est.add_sparse(sc.SparseSamples.from_depth_image(sparse, 0.0))
    est.add_range(0.0, 1.5)
    got = est.update(base, intr, 0.0)
    assert got is not None, est.last_fit.reason
    assert got[0] == pytest.approx(1 / a, rel=1e-3)
    assert got[1] == pytest.approx(-b / a, abs=1e-3)
    for bad in ('lidar', 'range:0', 'range:x', 'range,range', 'sparse_depth'):
        with pytest.raises(sc.ScaleError, match='scale_combine'):
            sc.ScaleConfig(source='sparse_depth', combine=bad).validate()


def test_imports_and_exports_say_what_is_unknown(tmp_path):
    import onnx
    from onnx import TensorProto
    from mono_depth_ros.tools import import_model as im
    from test_import_model import conventions_graph

    src = conventions_graph(tmp_path / 'mean.onnx', [1, 16, 16, 3], [1, 1, 16, 16], nhwc=True,
                            dtype=TensorProto.UINT8)

    def imported(*flags):
        out = tmp_path / f'out{len(flags)}.onnx'
        args = im.build_parser().parse_args([str(src), '--output', str(out), *flags])
        im.import_model(args, out=open(tmp_path / 'log.txt', 'w'))
        props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        return ModelMeta.from_onnx_props(props)

    affine = imported('--output-mode', 'relative_inverse_depth', '--output-scale', '0.004')
    assert affine.scale_unknown == 'scale_shift'  # written, not left to the mode
    selfsup = imported('--output-mode', 'relative_inverse_depth', '--output-scale', '0.004',
                       '--scale-unknown', 'scale')
    assert selfsup.unknown == 'scale'
    with pytest.raises(im.ImportModelError, match='scale_unknown'):
        imported('--output-mode', 'metric', '--output-scale', '0.04', '--scale-unknown',
                 'scale', '--max-depth', '20')


def test_export_relative_marks_the_unknowns():
    pytest.importorskip('torch')
    from training import export_onnx as ex

    metric = ModelMeta(arch='x', input_height=8, input_width=8, output_mode='inverse_depth')
    silog = ex.as_relative(metric, 'scale')
    assert silog.output_mode == 'relative_inverse_depth' and silog.unknown == 'scale'
    assert ex.export_meta(metric, 8, 8, 'uint8', False).scale_unknown == 'none'
    assert ex.export_meta(silog, 8, 8, 'uint8', False).scale_unknown == 'scale'
    with pytest.raises(ex.ExportError):
        ex.as_relative(metric, 'none')
