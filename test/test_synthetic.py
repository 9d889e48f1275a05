"""Synthetic scenes: exact depth on analytic cases, determinism, smooth sequences."""

from mono_depth_ros.core.geometry import backproject
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.sim.synthetic import Box, Cylinder, look_at, Scene, Sphere, SyntheticStream
import numpy as np
import pytest

INTR = Intrinsics(80.0, 80.0, 39.5, 29.5, 80, 60)


def empty_room(seed=0):
    scene = Scene.random(seed=seed)
    scene.boxes, scene.spheres, scene.cylinders = [], [], []
    scene.size = np.array([6.0, 5.0, 3.0])
    return scene


def test_facing_a_wall_gives_constant_depth():
    scene = empty_room()
    # Camera at x = 2 looking along +x at the wall x = 6: depth 4 m everywhere on the wall.
    frame = scene.render(INTR, look_at([2.0, 2.5, 1.5], [6.0, 2.5, 1.5]))
    assert frame.rgb.shape == (60, 80, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.dtype == np.float32
    assert np.allclose(frame.depth, 4.0, atol=1e-5)


def test_sphere_centre_pixel_depth_is_distance_minus_radius():
    scene = empty_room()
    scene.spheres = [Sphere(np.array([4.0, 2.5, 1.5]), 0.5, 3)]
    frame = scene.render(INTR, look_at([1.0, 2.5, 1.5], [4.0, 2.5, 1.5]))
    # The optical axis passes through pixel (cx, cy) = (39.5, 29.5): between four pixels;
    # check the analytic depth of each of the four around it.
    for u, v in ((39, 29), (40, 30)):
        x, y = (u - INTR.cx) / INTR.fx, (v - INTR.cy) / INTR.fy
        ray = np.array([x, y, 1.0])
        oc = np.array([0.0, 0.0, -3.0])
        a, b, c = ray @ ray, oc @ ray, oc @ oc - 0.25
        t = (-b - np.sqrt(b * b - a * c)) / a
        assert frame.depth[v, u] == pytest.approx(t, abs=1e-4)
    assert frame.depth[29:31, 39:41].max() < 2.51


def test_floor_points_lie_on_the_floor_for_a_pitched_camera():
    scene = empty_room()
    pose = look_at([3.0, 2.5, 1.6], [4.5, 3.0, 0.0])
    frame = scene.render(INTR, pose)
    xyz = backproject(frame.depth, INTR).reshape(-1, 3).astype(np.float64)
    world = (pose[:3, :3] @ xyz.T).T + pose[:3, 3]
    # Every point lies on one of the six room planes (exact ground truth).
    size = scene.size
    dist = np.min(np.abs(np.concatenate([world, world - size], axis=1)), axis=1)
    assert dist.max() < 1e-4
    floor = np.abs(world[:, 2]) < 1e-4
    assert floor.mean() > 0.3  # looking down, much of the view is floor


def test_objects_occlude_and_all_primitives_render():
    scene = empty_room()
    scene.boxes = [Box(np.array([4.0, 2.0, 0.5]), np.array([0.3, 0.3, 0.5]), 0.4, 4)]
    scene.cylinders = [Cylinder(np.array([4.0, 3.2]), 0.25, 0.0, 1.2, 5)]
    frame = scene.render(INTR, look_at([1.0, 2.5, 1.2], [4.0, 2.5, 0.6]))
    assert np.isfinite(frame.depth).all()
    assert frame.depth.min() < 3.5 and frame.depth.max() > 4.5


def test_deterministic_by_seed_and_different_across_seeds():
    a = SyntheticStream(64, 48, seed=3, frames_per_room=5).frame(2)
    b = SyntheticStream(64, 48, seed=3, frames_per_room=5).frame(2)
    c = SyntheticStream(64, 48, seed=4, frames_per_room=5).frame(2)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.rgb, c.rgb)


def test_consecutive_frames_are_small_smooth_motions():
    stream = SyntheticStream(64, 48, seed=1, frames_per_room=30)
    frames = [stream.frame(i) for i in range(6)]
    steps = [np.linalg.norm(f1.pose[:3, 3] - f0.pose[:3, 3]) for f0, f1 in
             zip(frames, frames[1:])]
    assert max(steps) < 0.2 and min(steps) > 0.0
    angles = [np.degrees(np.arccos(np.clip((np.trace(f0.pose[:3, :3].T @ f1.pose[:3, :3]) -
                                            1) / 2, -1, 1))) for f0, f1 in zip(frames, frames[1:])]
    assert max(angles) < 8.0
    corr = np.corrcoef(frames[0].rgb.ravel().astype(float), frames[1].rgb.ravel())[0, 1]
    assert corr > 0.5
    # Poses are rigid: rotation orthonormal, optical convention (z forward, y down).
    r = frames[0].pose[:3, :3]
    assert np.allclose(r.T @ r, np.eye(3), atol=1e-9) and np.linalg.det(r) == pytest.approx(1)


def test_any_intrinsics_and_size_and_camera_inside_room():
    odd = Intrinsics(60.0, 70.0, 20.3, 41.7, 97, 61)
    stream = SyntheticStream(97, 61, intrinsics=odd, seed=5, frames_per_room=10)
    for i in range(0, 20, 3):
        f = stream.frame(i)
        assert f.rgb.shape == (61, 97, 3) and f.depth.shape == (61, 97)
        assert np.allclose(f.K, odd.K)
        assert np.isfinite(f.depth).all() and f.depth.min() > 0.05
        scene = stream._scene
        assert np.all(f.pose[:3, 3] > 0) and np.all(f.pose[:3, 3] < scene.size)


def test_texture_folder(tmp_path):
    import cv2
    from mono_depth_ros.sim.synthetic import load_texture_folder
    img = np.zeros((32, 32, 3), np.uint8)
    img[::4] = (0, 0, 255)  # BGR red stripes
    cv2.imwrite(str(tmp_path / 'red.png'), img)
    (tmp_path / 'notes.txt').write_text('not an image')
    loaded = load_texture_folder(str(tmp_path))
    assert len(loaded) == 1 and loaded[0][..., 0].max() == 1.0 and loaded[0][..., 2].max() == 0
    scene = Scene.random(seed=0, texture_dir=str(tmp_path))
    assert any(np.array_equal(m.texture, loaded[0]) for m in scene.materials)
    frame = scene.render(INTR, scene.camera_path(1)[0])
    assert frame.rgb.std() > 1.0
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no readable images'):
        load_texture_folder(str(tmp_path / 'empty'))


# -- robot style: furniture, photo textures, robot cameras, camera response --------------------
def _photo_folder(tmp_path):
    import cv2
    rng = np.random.default_rng(0)
    for i in range(2):
        img = (rng.random((80, 120, 3)) * 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / f'photo{i}.jpg'), cv2.GaussianBlur(img, (5, 5), 2))
    return str(tmp_path)


def test_robot_style_is_deterministic_finite_and_furnished(tmp_path):
    folder = _photo_folder(tmp_path)
    a = SyntheticStream(64, 48, seed=2, frames_per_room=3, style='robot', texture_dir=folder)
    b = SyntheticStream(64, 48, seed=2, frames_per_room=3, style='robot', texture_dir=folder)
    fa, fb = a.frame(4), b.frame(4)
    assert np.array_equal(fa.rgb, fb.rgb) and np.array_equal(fa.depth, fb.depth)
    assert np.isfinite(fa.depth).all() and fa.depth.min() > 0.0
    scene = a._scene
    assert scene.style == 'robot' and len(scene.parts) >= 5
    assert len(scene.boxes) >= len(scene.parts)
    # every furniture part lies inside the room
    for part in scene.parts:
        assert np.all(part.centre[:2] > -0.01) and np.all(part.centre[:2] < scene.size[:2] + 0.01)
        assert 0.0 <= part.centre[2] - part.half[2] + 1e-9 and \
            part.centre[2] + part.half[2] <= scene.size[2]
    # some materials are cut from the photos (256-texel seamless tiles)
    assert any(m.texture.shape[0] == 256 for m in scene.materials)
    with pytest.raises(ValueError, match='style'):
        SyntheticStream(64, 48, style='fancy')


def test_robot_path_keeps_height_and_tilt_and_avoids_furniture():
    from mono_depth_ros.sim.furniture import inside_any
    scene = Scene.random(seed=7, style='robot')
    poses = scene.robot_path(12, seed=1, speed=0.3)
    heights = [p[2, 3] for p in poses]
    assert max(heights) - min(heights) < 1e-6 and 0.2 <= heights[0] <= 1.7
    # the optical axis keeps one pitch (z component of the forward column)
    tilt = [p[2, 2] for p in poses]
    assert max(tilt) - min(tilt) < 1e-6 and -0.6 < tilt[0] < 0.1
    assert not any(inside_any(p[:3, 3], scene.parts, 0.1) for p in poses[1:])


def test_table_top_depth_is_exact():
    from mono_depth_ros.sim.furniture import _to_world, table
    rng = np.random.default_rng(3)
    parts, _w = table(rng, against_wall=False)
    scene = empty_room()
    for p in _to_world(parts, np.array([3.0, 2.5]), 0.0):
        scene.boxes.append(Box(p.centre, p.half, p.yaw, 4))
    top = parts[0]
    z_top = top.centre[2] + top.half[2]
    # Looking straight down from 1.5 m at the table centre: depth = 1.5 - top height.
    frame = scene.render(INTR, look_at([3.0, 2.5 + top.centre[1], 1.5],
                                       [3.0, 2.5 + top.centre[1], 0.0], up=(1, 0, 0)))
    assert frame.depth[29:31, 39:41] == pytest.approx(1.5 - z_top, abs=1e-4)


def test_photo_texture_is_seamless_and_muted():
    from mono_depth_ros.sim.photos import photo_texture
    rng = np.random.default_rng(0)
    photo = (rng.random((60, 90, 3)) * 255).astype(np.uint8)
    tex = photo_texture(np.random.default_rng(1), [photo], 64)
    assert tex.shape == (64, 64, 3) and tex.dtype == np.float32
    assert 0.0 <= tex.min() and tex.max() <= 1.0
    # mirrored tiling: the texture wraps without a seam
    assert np.array_equal(tex[:, 0], tex[:, -1]) and np.array_equal(tex[0], tex[-1])


def test_camera_response_exposes_to_target_and_noise_is_seeded():
    from mono_depth_ros.sim.sensor import CameraResponse
    rgb = np.full((48, 64, 3), 40, np.uint8)
    rgb[:, 32:] = 60
    clean = CameraResponse(exposure=0.5)
    out = clean.apply(rgb, np.random.default_rng(0))
    assert abs(np.median(out) / 255.0 - 0.5) < 0.02  # auto exposure on the median
    noisy = CameraResponse(read_noise=0.02, blur_sigma=2.0, motion_px=6.0, vignetting=0.3)
    a = noisy.apply(rgb, np.random.default_rng(5))
    b = noisy.apply(rgb, np.random.default_rng(5))
    c = noisy.apply(rgb, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a[0, 0].mean() < a[24, 16].mean()  # vignetting darkens the corners
    drawn = CameraResponse.draw(np.random.default_rng(1))
    assert 0.3 <= drawn.exposure <= 0.55 and drawn.gain > 0
