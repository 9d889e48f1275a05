"""Exact geometry: intrinsics transforms, back-projection, cloud packing."""

import math

import cv2
from mono_depth_ros.core.geometry import backproject, project, RayCache
from mono_depth_ros.core.intrinsics import (Intrinsics, IntrinsicsError, load_camera_info_yaml,
                                            preset, save_camera_info_yaml)
from mono_depth_ros.core.pointcloud import pack_cloud, unpack_cloud
import numpy as np
import pytest

K = Intrinsics(500.0, 480.0, 319.5, 241.0, 640, 480)


def test_presets_match_the_published_values():
    nyu, kitti = preset('kinect_nyu'), preset('kitti')
    assert (nyu.fx, nyu.fy, nyu.cx, nyu.cy, nyu.width, nyu.height) == (
        518.8579, 519.4696, 325.5824, 253.7362, 640, 480)
    assert (kitti.fx, kitti.fy, kitti.cx, kitti.cy, kitti.width, kitti.height) == (
        721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
    assert preset('kinect') == nyu
    with pytest.raises(IntrinsicsError, match='unknown'):
        preset('realsense')


@pytest.mark.parametrize('k, w, h, words', [
    ([0, 0, 320, 0, 500, 240, 0, 0, 1], 640, 480, 'focal'),
    ([-5, 0, 320, 0, 500, 240, 0, 0, 1], 640, 480, 'focal'),
    ([500, 0, 320, 0, 500, 240, 0, 0, 0], 640, 480, 'K\\[2,2\\]'),
    ([500, 0, 320, 0, 500, 240, 0, 0, 1], 0, 480, 'size'),
    ([math.nan, 0, 320, 0, 500, 240, 0, 0, 1], 640, 480, 'finite'),
])
def test_bad_camera_matrix_is_rejected(k, w, h, words):
    with pytest.raises(IntrinsicsError, match=words):
        Intrinsics.from_K(k, w, h)


def test_resize_round_trip_and_pixel_centre_convention():
    small = K.resize(160, 120)
    assert small.fx == pytest.approx(125.0) and small.fy == pytest.approx(120.0)
    # Pixel centres: cx' = (cx + 0.5) * s - 0.5.
    assert small.cx == pytest.approx((319.5 + 0.5) * 0.25 - 0.5)
    assert small.resize(640, 480).is_close(K, 1e-9)
    assert K.crop(10, 20, 300, 200).crop(-10, -20, 640, 480).is_close(K)
    assert K.flip_horizontal().flip_horizontal().is_close(K)
    norm = K.to_normalized()
    assert Intrinsics.from_normalized(norm, 640, 480).is_close(K, 1e-9)
    assert Intrinsics.from_normalized(norm, 320, 240).is_close(K.resize(320, 240), 1e-9)


def test_resize_convention_matches_cv2_resize():
    # A bright dot projected with K lands, after cv2.resize, where K.resize projects it.
    img = np.zeros((480, 640), np.float32)
    point = np.array([[0.3, -0.2, 2.0]])
    u, v = project(point, K)[0]
    img[int(round(v)) - 4:int(round(v)) + 4, int(round(u)) - 4:int(round(u)) + 4] = 1.0
    ui, vi = int(round(u)), int(round(v))
    small = cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(small > 0)
    w = small[ys, xs]
    centroid = np.array([np.sum(xs * w) / w.sum(), np.sum(ys * w) / w.sum()])
    # The dot's true centre in the full image is (ui - 0.5, vi - 0.5) (8 pixels, even size).
    expected = (np.array([ui - 0.5, vi - 0.5]) + 0.5) * 0.25 - 0.5
    assert np.allclose(centroid, expected, atol=1e-3)
    uv_small = project(point, K.resize(160, 120))[0]
    assert np.allclose(uv_small, (np.array([u, v]) + 0.5) * 0.25 - 0.5)


def test_fronto_parallel_plane_is_exact():
    small = Intrinsics(100.0, 100.0, 2.0, 1.0, 5, 3)
    depth = np.full((3, 5), 2.5, np.float32)
    xyz = backproject(depth, small)
    u, v = np.meshgrid(np.arange(5), np.arange(3))
    assert np.array_equal(xyz[..., 2], depth)
    assert np.allclose(xyz[..., 0], (u - 2.0) / 100.0 * 2.5, atol=0, rtol=1e-6)
    assert np.allclose(xyz[..., 1], (v - 1.0) / 100.0 * 2.5, atol=0, rtol=1e-6)
    assert xyz[1, 2].tolist() == [0.0, 0.0, 2.5]  # the principal point is on the z axis


def test_tilted_plane_gives_coplanar_points():
    normal = np.array([0.2, -0.6, -0.77])
    normal /= np.linalg.norm(normal)
    d = 3.0  # plane n . X = -d, in front of the camera
    u, v = np.meshgrid(np.arange(K.width), np.arange(K.height))
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u, float)], -1)
    t = -d / (rays @ normal)
    depth = np.where(t > 0, t, np.nan).astype(np.float32)
    xyz = backproject(depth, K).reshape(-1, 3)
    pts = xyz[np.isfinite(xyz[:, 2])].astype(np.float64)
    assert len(pts) > 0.5 * K.width * K.height
    centred = pts - pts.mean(0)
    sv = np.linalg.svd(centred, compute_uv=False)
    assert sv[2] / math.sqrt(len(pts)) < 1e-5 * np.abs(pts).max()
    assert np.allclose(pts @ normal, -d, atol=1e-5 * d * 10)


def test_a_known_plane_catches_focal_and_scale_errors_that_planarity_cannot():
    # A sloping floor 1.5 m from the camera, rising to the left: n . X = d (optical frame).
    normal = np.array([0.35, 0.85, 0.3])
    normal /= np.linalg.norm(normal)
    d = 1.5
    u, v = np.meshgrid(np.arange(K.width), np.arange(K.height))
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u, float)], -1)
    facing = rays @ normal
    t = np.where(facing > 1e-3, d / np.maximum(facing, 1e-3), np.nan)
    depth = np.where(t < 20, t, np.nan).astype(np.float32)

    def errors(intr, scale=1.0):
        xyz = backproject(depth * np.float32(scale), intr).reshape(-1, 3)
        pts = xyz[np.isfinite(xyz[:, 2])].astype(np.float64)
        planarity = np.linalg.svd(pts - pts.mean(0), compute_uv=False)[2] / math.sqrt(len(pts))
        return planarity, np.abs(pts @ normal - d).max()
    planar, off = errors(K)
    assert planar < 1e-5 and off < 1e-4
    wrong = {'fx 3% long': (Intrinsics(K.fx * 1.03, K.fy, K.cx, K.cy, K.width, K.height), 1.0),
             'fy 3% long': (Intrinsics(K.fx, K.fy * 1.03, K.cx, K.cy, K.width, K.height), 1.0),
             'cy 8 px off': (Intrinsics(K.fx, K.fy, K.cx, K.cy + 8, K.width, K.height), 1.0),
             'depth 3% far': (K, 1.03)}
    for what, (intr, scale) in wrong.items():
        planar, off = errors(intr, scale)
        # Still a plane (a linear map of a plane is a plane), but not the known one.
        assert planar < 1e-5, what
        assert off > 0.02, what


def test_invalid_and_out_of_range_depth_gives_nan():
    depth = np.array([[1.0, 0.0, -1.0], [np.nan, np.inf, 20.0]], np.float32)
    small = Intrinsics(1.0, 1.0, 1.0, 0.5, 3, 2)
    xyz = backproject(depth, small, min_depth=0.5, max_depth=10.0)
    finite = np.isfinite(xyz).all(-1)
    assert finite.tolist() == [[True, False, False], [False, False, False]]
    with pytest.raises(ValueError, match='intrinsics'):
        backproject(depth, K)


def test_subsampled_cloud_matches_full_cloud_at_kept_pixels():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 8.0, (K.height, K.width)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    full = backproject(depth, K)
    for stride in (2, 3, 4, 7):
        sub = backproject(np.ascontiguousarray(depth[::stride, ::stride]), K.subsample(stride))
        assert np.allclose(sub, full[::stride, ::stride], rtol=1e-6, atol=1e-6,
                           equal_nan=True)


def test_ray_cache_reuses_rays():
    cache = RayCache(max_entries=2)
    depth = np.ones((480, 640), np.float32)
    for _ in range(3):
        backproject(depth, K, cache=cache)
    assert cache.misses == 1
    backproject(np.ones((240, 320), np.float32), K.resize(320, 240), cache=cache)
    assert cache.misses == 2


@pytest.mark.parametrize('with_rgb', [False, True])
def test_cloud_layout_round_trips(with_rgb):
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(4, 6, 3)).astype(np.float32)
    xyz[0, 0] = np.nan
    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) if with_rgb else None
    cloud = pack_cloud(xyz, rgb)
    assert (cloud.height, cloud.width, cloud.is_dense) == (4, 6, False)
    assert cloud.point_step == (16 if with_rgb else 12)
    assert cloud.row_step == cloud.point_step * 6
    assert len(cloud.data) == cloud.row_step * 4
    assert [f[0] for f in cloud.fields] == (['x', 'y', 'z', 'rgb'] if with_rgb else
                                            ['x', 'y', 'z'])
    back, back_rgb = unpack_cloud(cloud)
    assert np.array_equal(back, xyz, equal_nan=True)
    if with_rgb:
        assert np.array_equal(back_rgb, rgb)
        # rgb is a float32 whose bytes are 0x00RRGGBB (depth_image_proc, RViz).
        word = np.frombuffer(cloud.data[12:16], '<u4')[0]
        r, g, b = rgb[0, 0]
        assert word == (int(r) << 16) | (int(g) << 8) | int(b)


def test_camera_info_yaml_round_trip(tmp_path):
    path = tmp_path / 'cam.yaml'
    save_camera_info_yaml(str(path), K, 'test_cam')
    assert load_camera_info_yaml(str(path)).is_close(K)
    (tmp_path / 'bad.yaml').write_text('image_width: 3\n')
    with pytest.raises(IntrinsicsError, match='camera_matrix'):
        load_camera_info_yaml(str(tmp_path / 'bad.yaml'))


def test_fused_packer_equals_two_step_and_survives_size_changes():
    from mono_depth_ros.core.pointcloud import CloudPacker
    rng = np.random.default_rng(2)
    packer = CloudPacker()
    for intr in (K.resize(64, 48), K.resize(32, 24), K.resize(64, 48)):
        depth = rng.uniform(0.2, 12.0, (intr.height, intr.width)).astype(np.float32)
        depth[0, :5] = [np.nan, np.inf, -1.0, 0.0, 11.0]
        rgb = rng.integers(0, 256, (intr.height, intr.width, 3), dtype=np.uint8)
        for colour in (None, rgb):
            fused = packer.pack(depth, intr, colour, 0.5, 10.0)
            two = pack_cloud(backproject(depth, intr, 0.5, 10.0), colour)
            assert fused.data == two.data and fused.fields == two.fields
            assert fused.point_step == two.point_step and fused.row_step == two.row_step
