"""
Scale sources on synthetic rooms with exact ground truth (no ROS).

The relative "model" here is an oracle stand-in for a backend: it returns the ground-truth
inverse depth (or depth) of a rendered room under a random affine map, exactly what an
affine-invariant network such as Depth Anything promises at best. A source must undo that
map from the robot's knowledge (camera height and pitch) or sensors alone.
"""

import math
from types import SimpleNamespace

from mono_depth_ros.core import scale as sc
from mono_depth_ros.core.intrinsics import Intrinsics, preset
from mono_depth_ros.sim.synthetic import look_at, Scene
import numpy as np
import pytest

INTR = preset('kinect_nyu').resize(160, 120)
# Rooms at least 5.8 m on each side, so that a camera 1.5 m high and level still sees floor
# across the room (a Kinect's lower field edge meets the floor 3.2 m away).
BIG_ROOMS = (1, 4, 5)


def render_floor_view(seed, height, pitch):
    """Render a view from near one corner across the room, at a height and downward pitch."""
    scene = Scene.random(seed=seed)
    eye = np.array([1.6, 1.6, height])
    d = scene.size[:2] - 0.5 - eye[:2]
    d /= np.linalg.norm(d)
    pose = look_at(eye, eye + np.array([d[0], d[1], -math.tan(pitch)]))
    return scene.render(INTR, pose).depth.astype(np.float64)


def render_wall_view(distance, height=1.2, seed=3):
    """Render an empty room seen level, facing a wall ``distance`` metres ahead."""
    scene = Scene.random(seed=seed, n_objects=(0, 1))
    eye = np.array([scene.size[0] - distance, scene.size[1] / 2, height])
    return scene.render(INTR, look_at(eye, eye + np.array([1.0, 0.0, 0.0]))).depth.astype(
        np.float64)


def oracle(depth, kind, rng, shift=True):
    """Return the ground truth under a random affine map, as a relative model gives it."""
    a = rng.uniform(0.3, 4.0)
    if kind == 'inverse':
        b = rng.uniform(-0.2, 0.5) * a if shift else 0.0
        return (a / depth + b).astype(np.float32)
    return (a * depth).astype(np.float32)


def median_rel_error(depth, truth):
    valid = np.isfinite(depth) & np.isfinite(truth)
    assert valid.mean() > 0.9, 'the fitted map left most pixels without a depth'
    return float(np.median(np.abs(depth[valid] / truth[valid] - 1.0)))


@pytest.fixture(scope='module')
def views():
    """Return rendered depth per (seed, height, pitch in degrees)."""
    return {(seed, h, p): render_floor_view(seed, h, math.radians(p))
            for seed in BIG_ROOMS[:2] for h in (0.3, 0.8, 1.5) for p in (0, 10, 20)}


# -- ground plane ---------------------------------------------------------------------------
def test_ground_plane_recovers_scale_and_shift_of_inverse_depth(views):
    rng = np.random.default_rng(11)
    for (seed, h, p), depth in views.items():
        base = oracle(depth, 'inverse', rng)
        fit = sc.fit_ground_plane(base, 'inverse', INTR, h, math.radians(p))
        assert fit.ok, (seed, h, p, fit.reason)
        err = median_rel_error(sc.apply_scale(base, 'inverse', fit.scale, fit.shift), depth)
        assert err < 0.03, (seed, h, p, err)


def test_ground_plane_depth_base_checks_the_normal(views):
    rng = np.random.default_rng(12)
    for (seed, h, p), depth in views.items():
        base = oracle(depth, 'depth', rng)
        fit = sc.fit_ground_plane(base, 'depth', INTR, h, math.radians(p))
        assert fit.ok and fit.shift == 0.0, (seed, h, p, fit.reason)
        assert median_rel_error(sc.apply_scale(base, 'depth', fit.scale, 0.0), depth) < 0.03
    # A pitch prior 25 degrees off the truth: the observed normal is out of tolerance.
    depth = views[(BIG_ROOMS[0], 0.8, 0)]
    fit = sc.fit_ground_plane(oracle(depth, 'depth', rng), 'depth', INTR, 0.8,
                              math.radians(25))
    assert not fit.ok and 'normal' in fit.reason


def test_wrong_camera_height_scales_the_depth_proportionally(views):
    depth = views[(BIG_ROOMS[1], 0.8, 10)]
    base = oracle(depth, 'inverse', np.random.default_rng(13))
    right = sc.fit_ground_plane(base, 'inverse', INTR, 0.8, math.radians(10))
    wrong = sc.fit_ground_plane(base, 'inverse', INTR, 0.8 * 1.25, math.radians(10))
    d_right = sc.apply_scale(base, 'inverse', right.scale, right.shift)
    d_wrong = sc.apply_scale(base, 'inverse', wrong.scale, wrong.shift)
    valid = np.isfinite(d_right) & np.isfinite(d_wrong)
    np.testing.assert_allclose(d_wrong[valid] / d_right[valid], 1.25, rtol=2e-3)
    assert median_rel_error(d_wrong, depth) == pytest.approx(0.25, abs=0.01)


def test_no_floor_in_view_gives_no_fit():
    # Level, 1.5 m up and 0.8 m from a wall: the lower image is all wall, no floor.
    depth = render_wall_view(0.8, height=1.5)
    base = oracle(depth, 'inverse', np.random.default_rng(14))
    fit = sc.fit_ground_plane(base, 'inverse', INTR, 1.5, 0.0)
    assert not fit.ok and 'inliers' in fit.reason
    # Even when few inliers would do, the wall does not pass for a floor: it does not recede.
    fit = sc.fit_ground_plane(base, 'inverse', INTR, 1.5, 0.0, min_inliers=10,
                              min_inlier_fraction=0.0)
    assert not fit.ok and 'recede' in fit.reason


# -- sparse depth ---------------------------------------------------------------------------
def _samples(depth, n, rng, scale_res=1):
    """Return a sparse depth image (at 1/scale_res resolution) with n valid samples."""
    h, w = depth.shape
    img = np.zeros((h // scale_res, w // scale_res), np.float32)
    rows = rng.integers(0, img.shape[0], n)
    cols = rng.integers(0, img.shape[1], n)
    img[rows, cols] = depth[rows * scale_res + scale_res // 2, cols * scale_res + scale_res // 2]
    return img


@pytest.mark.parametrize('kind', ['inverse', 'depth'])
def test_sparse_50_samples_within_2_percent(views, kind):
    rng = np.random.default_rng(21)
    for key in list(views)[::3]:
        depth = views[key]
        base = oracle(depth, kind, rng)
        if kind == 'depth':
            base = base + np.float32(rng.uniform(-0.5, 0.5))  # an affine depth shift too
        samples = sc.SparseSamples.from_depth_image(_samples(depth, 50, rng), 0.0)
        b, z = samples.pairs(base)
        fit = sc.fit_sparse(b, z, kind, min_inliers=20)
        assert fit.ok, fit.reason
        assert median_rel_error(sc.apply_scale(base, kind, fit.scale, fit.shift), depth) < 0.02


def test_sparse_robust_to_20_percent_outliers_3x(views):
    rng = np.random.default_rng(22)
    depth = views[(BIG_ROOMS[0], 0.8, 10)]
    base = oracle(depth, 'inverse', rng)
    img = _samples(depth, 200, rng)
    rows, cols = np.nonzero(img)
    bad = rng.choice(rows.size, rows.size // 5, replace=False)
    img[rows[bad], cols[bad]] *= np.where(rng.random(bad.size) < 0.5, 3.0, 1 / 3.0)
    b, z = sc.SparseSamples.from_depth_image(img, 0.0).pairs(base)
    plain = np.polyfit(b, 1 / z, 1)  # a non-robust fit is pulled off by the outliers
    assert median_rel_error(sc.apply_scale(base, 'inverse', *plain), depth) > 0.05
    fit = sc.fit_sparse(b, z, 'inverse')
    assert fit.ok and fit.inliers <= 0.85 * b.size
    assert median_rel_error(sc.apply_scale(base, 'inverse', fit.scale, fit.shift), depth) < 0.02


def test_sparse_millimetres_other_resolution_and_points(views):
    rng = np.random.default_rng(23)
    depth = views[(BIG_ROOMS[1], 0.3, 0)]
    base = oracle(depth, 'inverse', rng)
    low = _samples(depth, 120, rng, scale_res=4)  # a 40x30 sensor registered to the camera
    mm = np.round(low * 1000).astype(np.uint16)
    b, z = sc.SparseSamples.from_depth_image(mm, 0.0).pairs(base)
    assert b.size > 50
    fit = sc.fit_sparse(b, z, 'inverse')
    assert median_rel_error(sc.apply_scale(base, 'inverse', fit.scale, fit.shift), depth) < 0.02
    # The same kind of samples as optical-frame points (x, y, z), projected with K.
    v, u = rng.integers(0, 120, 80), rng.integers(0, 160, 80)
    zz = depth[v, u]
    pts = np.stack([(u - INTR.cx) / INTR.fx * zz, (v - INTR.cy) / INTR.fy * zz, zz], axis=1)
    b, z = sc.SparseSamples.from_points(pts, 0.0).pairs(base, INTR)
    assert b.size == 80
    fit = sc.fit_sparse(b, z, 'inverse')
    assert median_rel_error(sc.apply_scale(base, 'inverse', fit.scale, fit.shift), depth) < 0.02
    with pytest.raises(sc.ScaleError):
        sc.SparseSamples.from_points(pts, 0.0).pairs(base)  # points need the intrinsics


# -- range ----------------------------------------------------------------------------------
def test_range_on_a_wall_in_front():
    rng = np.random.default_rng(31)
    depth = render_wall_view(2.5)
    wall = depth[50:70, 70:90]
    assert np.ptp(wall) < 0.1 * wall.mean()  # the check below measures a wall, not a corner
    for kind in ('inverse', 'depth'):
        base = oracle(depth, kind, rng, shift=False)
        fit = sc.fit_range(base, kind, float(depth[60, 80]))
        assert fit.ok, fit.reason
        out = sc.apply_scale(base, kind, fit.scale, fit.shift)
        assert median_rel_error(out[30:90, 40:120], depth[30:90, 40:120]) < 0.03
    assert not sc.fit_range(base, 'depth', -1.0).ok


# -- the estimator: smoothing, rejection, hold, stale samples ------------------------------
def _estimator(source='sparse_depth', kind='inverse', **kw):
    config = sc.ScaleConfig(source=source, camera_height=kw.pop('camera_height', 0.8), **kw)
    return sc.ScaleEstimator(config, kind)


def test_stale_sparse_samples_are_ignored(views):
    depth = views[(BIG_ROOMS[0], 0.8, 10)]
    base = oracle(depth, 'inverse', np.random.default_rng(41))
    est = _estimator(sparse_max_age=0.1)
    est.add_sparse(sc.SparseSamples.from_depth_image(
        _samples(depth, 200, np.random.default_rng(1)), stamp=10.0))
    assert est.update(base, INTR, 10.5) is None  # 0.5 s old: ignored
    assert est.counts['stale_samples'] == 1 and est.counts['fits'] == 0
    got = est.update(base, INTR, 10.05)  # within 0.1 s: used
    assert got is not None and est.counts['fits'] == 1
    out = sc.apply_scale(base, 'inverse', *got)
    assert median_rel_error(out, depth) < 0.02


def test_no_floor_holds_then_stops(views):
    rng = np.random.default_rng(42)
    floor = views[(BIG_ROOMS[0], 1.5, 10)]
    wall = render_wall_view(0.8, height=1.5)
    est = _estimator('ground_plane', camera_height=1.5, camera_pitch=math.radians(10),
                     scale_hold=0.5)
    a = 2.0
    good = est.update((a / floor).astype(np.float32), INTR, 0.0)
    assert good is not None
    # No floor: the last good scale is held for scale_hold seconds, then metres stop.
    assert est.update((a / wall).astype(np.float32), INTR, 0.3) == good
    assert est.counts['rejected_fit'] == 1
    diag = est.diagnostics(0.3)
    assert diag['scale_fit_age_s'] == '0.300' and diag['scale_rejected_fit'] == '1'
    assert diag['scale'] == f'{good[0]:.6g}' and diag['scale_last_fit'] != 'ok'
    assert est.update((a / wall).astype(np.float32), INTR, 0.6) is None
    assert est.counts['expired'] == 1
    diag = est.diagnostics(0.6)
    assert diag['scale'] == 'none' and diag['scale_source'] == 'ground_plane'
    # The floor comes back: a new fit is taken as it is.
    assert est.update((a / floor).astype(np.float32) + np.float32(rng.uniform(0.1, 0.2)),
                      INTR, 0.7) is not None


def test_jumping_scale_is_rejected_and_smoothing_is_exponential():
    est = _estimator('fixed', kind='depth', scale=2.0, scale_max_jump=0.3)
    base = np.ones((120, 160), np.float32)
    assert est.update(base, INTR, 0.0) == (2.0, 0.0)
    # 'fixed' never jumps; a fit-based source does: feed fits through the filter directly.
    est = _estimator(scale_max_jump=0.3, scale_smoothing=1.0, scale_hold=5.0)
    est._accept(sc.ScaleFit(2.0, 0.1, 50, 50, 0.0), 0.0)
    est.fit = lambda *a: sc.ScaleFit(4.0, 0.1, 50, 50, 0.0)  # a 2x jump
    assert est.update(base, INTR, 0.1) == (2.0, 0.1)
    assert est.counts['rejected_jump'] == 1
    est.fit = lambda *a: sc.ScaleFit(2.4, 0.3, 50, 50, 0.0)  # +20%: accepted, smoothed
    scale, shift = est.update(base, INTR, 0.5)
    alpha = 1 - math.exp(-0.5 / 1.0)
    # The metric result is smoothed: its depth is the geometric blend of the two maps'.
    z_held, z_new = 1 / (2.0 + 0.1), 1 / (2.4 + 0.3)
    assert 1 / (scale + shift) == pytest.approx(z_held ** (1 - alpha) * z_new ** alpha)
    assert scale == pytest.approx(math.exp((1 - alpha) * math.log(2.0) + alpha * math.log(2.4)))


def test_too_few_inliers_is_rejected_and_counted(views):
    depth = views[(BIG_ROOMS[0], 0.8, 10)]
    base = oracle(depth, 'inverse', np.random.default_rng(43))
    est = _estimator(scale_min_inliers=30)
    est.add_sparse(sc.SparseSamples.from_depth_image(
        _samples(depth, 10, np.random.default_rng(2)), stamp=0.0))
    assert est.update(base, INTR, 0.0) is None
    assert est.counts['rejected_fit'] == 1
    assert 'only 10 sparse samples' in est.last_fit.reason


def test_metric_model_gets_a_scale_correction_only(views):
    depth = views[(BIG_ROOMS[1], 0.8, 10)]
    model = (0.8 * depth).astype(np.float32)  # a metric model 20% short
    config = sc.ScaleConfig(source='sparse_depth')
    est = sc.ScaleEstimator(config, 'depth', metric_model=True)
    est.add_sparse(sc.SparseSamples.from_depth_image(
        _samples(depth, 100, np.random.default_rng(3)), stamp=0.0))
    scale, shift = est.update(model, INTR, 0.0)
    assert shift == 0.0 and scale == pytest.approx(1.25, rel=1e-3)
    none = sc.ScaleEstimator(sc.ScaleConfig(), 'depth', metric_model=True)
    assert none.update(model, INTR, 0.0) == (1.0, 0.0)
    relative = sc.ScaleEstimator(sc.ScaleConfig(), 'inverse')
    assert relative.update(model, INTR, 0.0) is None  # a relative model has no metres


def test_config_is_validated():
    with pytest.raises(sc.ScaleError, match='camera_height'):
        sc.ScaleEstimator(sc.ScaleConfig(source='ground_plane'), 'inverse')
    with pytest.raises(sc.ScaleError, match='scale_source'):
        sc.ScaleEstimator(sc.ScaleConfig(source='lidar'), 'inverse')
    with pytest.raises(sc.ScaleError, match='scale_hold'):
        sc.ScaleEstimator(sc.ScaleConfig(source='fixed', scale_hold=-1.0), 'inverse')
    assert sc.base_kind('relative_inverse_depth') == sc.base_kind('disparity') == 'inverse'
    assert sc.base_kind('relative_depth') == sc.base_kind('metric') == 'depth'


def test_frame_adapter_feeds_the_estimator(views):
    depth = views[(BIG_ROOMS[0], 0.8, 10)]
    base = oracle(depth, 'inverse', np.random.default_rng(44))
    est = _estimator('ground_plane', camera_pitch=math.radians(10))
    sample = SimpleNamespace(native=base, inverse=True, camera=INTR)
    got = est.for_frame(3.0).fit(sample)
    assert got is not None and est.age(3.5) == pytest.approx(0.5)
    assert median_rel_error(sc.apply_scale(base, 'inverse', *got), depth) < 0.03
    with pytest.raises(sc.ScaleError, match='depth'):
        est.for_frame(3.1).fit(SimpleNamespace(native=base, inverse=False, camera=INTR))


def test_relative_depth_like_order():
    base = np.array([[0.5, 2.0, -1.0, np.nan]], np.float32)
    out = sc.relative_depth_like(base, 'inverse')
    np.testing.assert_allclose(out[0, :2], [2.0, 0.5])
    assert np.isnan(out[0, 2:]).all()


def test_sparse_message_buffers():
    img = np.zeros((6, 8), np.float32)
    img[2, 3], img[5, 7], img[0, 0] = 1.5, 4.0, np.nan
    step = 8 * 4 + 4  # a padded row
    rows = np.zeros((6, step), np.uint8)
    rows[:, :32] = img.view(np.uint8).reshape(6, 32)
    s = sc.sparse_from_image_buffer('32FC1', 8, 6, step, rows.tobytes(), False, 1.0)
    np.testing.assert_allclose(sorted(s.depth), [1.5, 4.0])
    mm = (np.nan_to_num(img) * 1000).astype('>u2')
    s = sc.sparse_from_image_buffer('16UC1', 8, 6, 16, mm.tobytes(), True, 1.0)
    np.testing.assert_allclose(sorted(s.depth), [1.5, 4.0])
    assert s.u_norm[np.argmax(s.depth)] == pytest.approx(7.5 / 8)
    for args, reason in ((('rgb8', 8, 6, 24, bytes(144)), 'encoding'),
                         (('32FC1', 8, 6, 16, bytes(96)), 'step'),
                         (('32FC1', 8, 6, 32, bytes(100)), 'bytes'),
                         (('32FC1', 0, 6, 32, bytes(0)), 'zero size')):
        with pytest.raises(sc.ScaleError, match=reason):
            sc.sparse_from_image_buffer(*args, False, 0.0)
    pts = np.array([[0.1, -0.2, 2.0, 7.0], [0.0, 0.0, -1.0, 7.0]], np.float32)  # x y z pad
    fields = [('x', 0, 7), ('y', 4, 7), ('z', 8, 7)]
    s = sc.sparse_from_cloud_buffer(fields, 16, 2, pts.tobytes(), False, 2.0)
    np.testing.assert_allclose(s.points, [[0.1, -0.2, 2.0]], rtol=1e-6)  # behind: dropped
    with pytest.raises(sc.ScaleError, match='no z'):
        sc.sparse_from_cloud_buffer(fields[:2], 16, 2, pts.tobytes(), False, 2.0)
    with pytest.raises(sc.ScaleError, match='FLOAT32'):
        sc.sparse_from_cloud_buffer([('x', 0, 7), ('y', 4, 7), ('z', 8, 8)], 16, 2,
                                    pts.tobytes(), False, 2.0)
    with pytest.raises(sc.ScaleError, match='bytes'):
        sc.sparse_from_cloud_buffer(fields, 16, 3, pts.tobytes(), False, 2.0)


def test_sparse_image_samples_follow_their_rays_into_a_cropped_view(views):
    # The model sees a centred 120x120 crop of the 160x120 camera image (resize_mode crop);
    # the sparse image is registered to the whole camera image.
    depth = views[(BIG_ROOMS[0], 0.8, 10)]
    small = depth[:, 20:140]
    base_intr = Intrinsics(INTR.fx, INTR.fy, INTR.cx - 20, INTR.cy, 120, 120)
    a, b0 = 2.0, 0.3
    base = (a / small + b0).astype(np.float32)
    sparse = _samples(depth, 300, np.random.default_rng(4))
    samples = sc.SparseSamples.from_depth_image(sparse, 0.0)

    def agreeing(b, z):
        """Return the share of pairs that agree with the oracle's own map within 0.1%."""
        return float(np.mean(np.abs((b - b0) / a * z - 1.0) < 1e-3))

    b, z = samples.pairs(base, base_intr, camera=INTR)
    assert 0.6 * 300 < b.size < 0.8 * 300  # the samples outside the crop drop out
    assert agreeing(b, z) == 1.0
    fit = sc.fit_sparse(b, z, 'inverse')
    assert median_rel_error(sc.apply_scale(base, 'inverse', fit.scale, fit.shift), small) < 1e-3
    # Taken as a view of the whole image instead, the samples land on the wrong pixels.
    assert agreeing(*samples.pairs(base)) < 0.75
