"""
Procedural RGB-D rooms with exact ground truth, rendered by analytic ray casting.

A scene is a box room (floor, four walls, ceiling) holding boxes (possibly yawed), spheres
and vertical cylinders, each with a procedural (or folder) texture mapped in world units,
so the texture stays put on a surface as the camera moves: consecutive frames are
photometrically consistent, as self-supervised training needs. Lighting is ambient plus a
directional and a point light (Lambert, no shadows).

Two styles. ``classic`` (the default: fast, what the demo and tests use) is the box room
above. ``robot`` is meant to transfer to real pictures: furniture-like composites
(``sim.furniture``: tables, chairs, bookshelves with books, cabinets, sofas, doors,
windows, pictures), real photographs as textures when a folder is given (``sim.photos``),
painted-looking walls, several lights and a contact-shadow (ambient occlusion) term near
the room's corners, cameras at a robot's heights and tilts (``Scene.robot_path``), and a
camera response per room with per-frame sensor noise (``sim.sensor``).

World frame: x, y horizontal, z up, metres. Cameras use the optical convention (x right,
y down, z forward); ``pose`` is camera-to-world. Rays are built with a unit z component in
the camera frame, so the hit parameter ``t`` *is* the REP 118 depth (not the ray length).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
from mono_depth_ros.core.intrinsics import Intrinsics, preset
from mono_depth_ros.sim import furniture
from mono_depth_ros.sim.photos import load_photos, photo_texture
from mono_depth_ros.sim.sensor import CameraResponse
import numpy as np

TEX = 128  # texture size in texels (a power of two: wrap with a bit mask)
PHOTO_TEX = 256  # photo textures keep more detail
NO_HIT = np.float32(np.inf)
STYLES = ('classic', 'robot')


@dataclass
class Frame:
    """One rendered view: RGB uint8 (H, W, 3), depth float32 metres, K 3x3, pose 4x4."""

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray  # noqa: N815 - the field's name
    pose: np.ndarray
    index: int = 0


@dataclass
class Material:
    """A tiled texture (a power-of-two square) and its size in metres."""

    texture: np.ndarray  # (T, T, 3) float32 in [0, 1]
    metres_per_tile: float
    emissive: bool = False  # lit from behind (a window): lighting does not apply


@dataclass
class Box:
    """A box standing on the floor, yawed about z."""

    centre: np.ndarray  # (x, y, z) of the centre
    half: np.ndarray    # half extents along its local axes
    yaw: float
    material: int


@dataclass
class Sphere:
    """A sphere."""

    centre: np.ndarray
    radius: float
    material: int


@dataclass
class Cylinder:
    """A vertical cylinder from z0 to z1, with a top cap."""

    centre_xy: np.ndarray
    radius: float
    z0: float
    z1: float
    material: int


# -- textures ---------------------------------------------------------------------------------
def _value_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    grid = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(np.tile(grid, (2, 2)), (2 * TEX, 2 * TEX),
                      interpolation=cv2.INTER_CUBIC)[TEX // 2:TEX // 2 + TEX,
                                                     TEX // 2:TEX // 2 + TEX]


def procedural_texture(rng: np.random.Generator, kind: Optional[str] = None) -> np.ndarray:
    """Return a (TEX, TEX, 3) float32 tileable texture in [0, 1]."""
    kind = kind or rng.choice(['checker', 'stripes', 'noise', 'tiles', 'wood'])
    c1, c2 = rng.uniform(0.15, 0.95, 3), rng.uniform(0.15, 0.95, 3)
    y, x = np.mgrid[0:TEX, 0:TEX].astype(np.float32) / TEX
    if kind == 'checker':
        n = int(rng.choice([2, 4, 8]))
        t = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(np.float32)
    elif kind == 'stripes':
        n = int(rng.choice([2, 4, 8, 16]))
        t = 0.5 + 0.5 * np.sin(2 * np.pi * n * (x if rng.random() < 0.5 else y))
    elif kind == 'tiles':
        n = int(rng.choice([2, 4]))
        fx, fy = (x * n) % 1.0, (y * n) % 1.0
        grout = (fx < 0.06) | (fy < 0.06)
        t = np.where(grout, 0.0, 0.7 + 0.3 * _value_noise(rng, 8))
    elif kind == 'wood':
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (6 * y + 2.0 * _value_noise(rng, 4)))
    else:
        t = 0.6 * _value_noise(rng, 8) + 0.4 * _value_noise(rng, 32)
    # Fine grain everywhere: flat colours give a network (and photometric losses) nothing.
    t = np.clip(0.85 * t + 0.15 * _value_noise(rng, 64), 0.0, 1.0)
    return (c1[None, None] * t[..., None] + c2[None, None] * (1 - t[..., None])).astype(
        np.float32)


def load_texture_folder(folder: str) -> List[np.ndarray]:
    """Load every image in a folder as a (TEX, TEX, 3) float32 RGB texture."""
    out = []
    for name in sorted(os.listdir(folder)):
        image = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        if image is None:
            continue
        rgb = cv2.cvtColor(cv2.resize(image, (TEX, TEX), interpolation=cv2.INTER_AREA),
                           cv2.COLOR_BGR2RGB)
        out.append(rgb.astype(np.float32) / 255.0)
    if not out:
        raise ValueError(f'no readable images in texture folder {folder}')
    return out


# -- camera helpers ---------------------------------------------------------------------------
def look_at(eye: Sequence[float], target: Sequence[float],
            up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Return the camera-to-world pose of an optical-frame camera at eye looking at target."""
    eye = np.asarray(eye, np.float64)
    forward = np.asarray(target, np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, np.float64))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError('look_at: view direction is parallel to up')
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose


def _catmull_rom(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Evaluate a closed Catmull-Rom curve through points, at parameters t in [0, len(points))."""
    n = len(points)
    i = np.floor(t).astype(int)
    s = (t - i)[:, None]
    p0, p1, p2, p3 = (points[(i + k) % n] for k in (-1, 0, 1, 2))
    return 0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s ** 2 +
                  (-p0 + 3 * p1 - 3 * p2 + p3) * s ** 3)


def _as_intrinsics(intrinsics, width: int, height: int) -> Intrinsics:
    if intrinsics is None:
        return preset('kinect_nyu').resize(width, height)
    return Intrinsics(intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy,
                      intrinsics.width, intrinsics.height)


# -- the scene --------------------------------------------------------------------------------
@dataclass
class Scene:
    """A room of size ``size`` (x, y, z) with objects, materials and lights."""

    size: np.ndarray
    materials: List[Material]
    room_materials: Tuple[int, int, int]  # floor, walls, ceiling
    boxes: List[Box] = field(default_factory=list)
    spheres: List[Sphere] = field(default_factory=list)
    cylinders: List[Cylinder] = field(default_factory=list)
    light_dir: np.ndarray = field(default_factory=lambda: np.array([0.3, 0.2, -1.0]))
    light_pos: np.ndarray = field(default_factory=lambda: np.array([1.0, 1.0, 2.5]))
    ambient: float = 0.35
    seed: int = 0
    # robot style: more lights (position, intensity), corner shading, furniture parts
    point_lights: List[Tuple[np.ndarray, float]] = field(default_factory=list)
    directional: float = 0.45
    occlusion: float = 0.0
    parts: List[furniture.Placed] = field(default_factory=list)
    style: str = 'classic'

    @classmethod
    def random(cls, seed: int = 0, n_objects: Tuple[int, int] = (4, 9),
               texture_dir: Optional[str] = None, style: str = 'classic') -> 'Scene':
        """
        Generate a random room, deterministic in seed (see the module docstring for styles).

        ``texture_dir``: a folder of images (``classic``: used as tiles for 70% of the
        materials), or for ``robot`` one or more photo folders (``os.pathsep`` or comma
        separated, searched recursively) that real-photo textures are cut from.
        """
        if style not in STYLES:
            raise ValueError(f'style must be one of {STYLES}, got {style!r}')
        if style == 'robot':
            return cls._random_robot(seed, texture_dir)
        rng = np.random.default_rng(seed)
        size = np.array([rng.uniform(3.5, 8.0), rng.uniform(3.5, 8.0), rng.uniform(2.4, 3.4)])
        folder = load_texture_folder(texture_dir) if texture_dir else None
        materials = []
        for _ in range(12):
            if folder is not None and rng.random() < 0.7:
                tex = folder[int(rng.integers(len(folder)))]
            else:
                tex = procedural_texture(rng)
            materials.append(Material(tex, float(rng.uniform(0.3, 1.5))))
        scene = cls(size=size, materials=materials, room_materials=(0, 1, 2), seed=seed)
        scene.light_dir = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), -1.0])
        scene.light_dir /= np.linalg.norm(scene.light_dir)
        scene.light_pos = np.array([rng.uniform(0.5, size[0] - 0.5),
                                    rng.uniform(0.5, size[1] - 0.5), size[2] - 0.2])
        scene.ambient = float(rng.uniform(0.25, 0.45))
        # Objects stand in a band along the walls, leaving the middle free for the camera.
        for _ in range(int(rng.integers(*n_objects))):
            kind = rng.choice(['box', 'box', 'sphere', 'cylinder'])
            xy = scene._band_point(rng)
            mat = int(rng.integers(3, len(materials)))
            if kind == 'box':
                half = np.array([rng.uniform(0.15, 0.6), rng.uniform(0.15, 0.6),
                                 rng.uniform(0.2, 0.9)])
                scene.boxes.append(Box(np.array([xy[0], xy[1], half[2]]), half,
                                       float(rng.uniform(0, np.pi)), mat))
            elif kind == 'sphere':
                r = rng.uniform(0.15, 0.45)
                z = r if rng.random() < 0.6 else rng.uniform(r, 1.6)
                scene.spheres.append(Sphere(np.array([xy[0], xy[1], z]), float(r), mat))
            else:
                r = rng.uniform(0.1, 0.35)
                scene.cylinders.append(Cylinder(np.array(xy), float(r), 0.0,
                                                float(rng.uniform(0.4, 2.0)), mat))
        return scene

    @classmethod
    def _random_robot(cls, seed: int, texture_dir: Optional[str]) -> 'Scene':
        rng = np.random.default_rng((seed, 2))
        size = np.array([rng.uniform(3.0, 9.0), rng.uniform(3.0, 9.0), rng.uniform(2.4, 3.2)])
        photos = load_photos(texture_dir) if texture_dir else None

        def photo_or(kind: Optional[str], p_photo: float) -> np.ndarray:
            if photos is not None and rng.random() < p_photo:
                return photo_texture(rng, photos, PHOTO_TEX)
            tex = procedural_texture(rng, kind)
            grey = tex.mean(axis=2, keepdims=True)  # real surfaces are mostly muted
            return np.clip(grey + rng.uniform(0.2, 0.7) * (tex - grey), 0, 1)

        def plain(lo: float, hi: float, contrast: float) -> np.ndarray:
            # painted surfaces: one colour with faint mottling
            base = rng.uniform(lo, hi) * rng.uniform(0.9, 1.1, 3)
            t = 1.0 + contrast * (_value_noise(rng, 8) + 0.5 * _value_noise(rng, 64) - 0.75)
            return np.clip(base[None, None] * t[..., None], 0, 1).astype(np.float32)

        floor = photo_or(str(rng.choice(['wood', 'tiles', 'noise'])), 0.5)
        wall = plain(0.5, 0.95, 0.08) if rng.random() < 0.75 else photo_or(None, 0.5)
        ceiling = plain(0.8, 0.98, 0.04)
        materials = [Material(floor, float(rng.uniform(0.6, 2.0))),
                     Material(wall, float(rng.uniform(1.0, 3.0))),
                     Material(ceiling, 2.0)]
        role_material = {}
        for role in furniture.ROLES:
            ids = []
            for _ in range(3 if role == 'item' else 2):
                if role in ('wood', 'door'):
                    tex = photo_or('wood', 0.4) if rng.random() < 0.8 else plain(0.2, 0.9, 0.1)
                elif role == 'fabric':
                    tex = photo_or('noise', 0.5)
                elif role == 'metal':
                    tex = plain(0.1, 0.8, 0.05)
                elif role == 'frame':
                    tex = plain(0.6, 0.95, 0.03)
                elif role == 'accent':
                    tex = plain(0.15, 0.9, 0.05)
                else:  # item, window, art: pictures, book spines, the outdoors
                    tex = photo_or(None, 0.9)
                if role == 'window':
                    tex = np.clip(tex * rng.uniform(1.1, 1.6) + rng.uniform(0.1, 0.3), 0, 1)
                metres = {'item': rng.uniform(0.15, 0.6), 'art': rng.uniform(0.4, 1.2),
                          'window': rng.uniform(1.0, 2.5)}.get(role, rng.uniform(0.3, 1.5))
                materials.append(Material(tex.astype(np.float32), float(metres),
                                          emissive=role == 'window'))
                ids.append(len(materials) - 1)
            role_material[role] = ids
        scene = cls(size=size, materials=materials, room_materials=(0, 1, 2), seed=seed,
                    style='robot')
        scene.parts = furniture.furnish(size, rng)
        for part in scene.parts:
            options = role_material[part.role]
            scene.boxes.append(Box(part.centre, part.half, part.yaw,
                                   options[int(rng.integers(len(options)))]))
        for _ in range(int(rng.integers(0, 3))):  # bins, pillars, balls on the floor
            xy = scene._band_point(rng)
            mat = role_material['accent'][int(rng.integers(2))]
            if rng.random() < 0.6:
                r = float(rng.uniform(0.1, 0.3))
                scene.cylinders.append(Cylinder(xy, r, 0.0, float(rng.uniform(0.3, 1.0)), mat))
            else:
                r = float(rng.uniform(0.1, 0.3))
                scene.spheres.append(Sphere(np.array([xy[0], xy[1], r]), r, mat))
        scene.light_dir = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), -1.0])
        scene.light_dir /= np.linalg.norm(scene.light_dir)
        scene.directional = float(rng.uniform(0.15, 0.6))
        scene.ambient = float(rng.uniform(0.2, 0.5))
        scene.occlusion = float(rng.uniform(0.2, 0.5))
        for _ in range(int(rng.integers(1, 4))):
            pos = np.array([rng.uniform(0.5, size[0] - 0.5), rng.uniform(0.5, size[1] - 0.5),
                            size[2] - 0.1])
            scene.point_lights.append((pos, float(rng.uniform(0.5, 2.0))))
        scene.light_pos = scene.point_lights[0][0]
        return scene

    def _band_point(self, rng: np.random.Generator) -> np.ndarray:
        lx, ly = self.size[:2]
        band = 0.9
        side = int(rng.integers(4))
        along = rng.uniform(0.4, (lx if side < 2 else ly) - 0.4)
        depth = rng.uniform(0.4, band)
        if side == 0:
            return np.array([along, depth])
        if side == 1:
            return np.array([along, ly - depth])
        if side == 2:
            return np.array([depth, along])
        return np.array([lx - depth, along])

    # -- cameras --------------------------------------------------------------------------
    def camera_path(self, n_frames: int, seed: int = 0, speed: float = 0.03) -> List[np.ndarray]:
        """
        Return n_frames smooth camera poses inside the free middle of the room.

        The eye and the look-at target each follow a closed Catmull-Rom curve through random
        waypoints; ``speed`` is the parameter step per frame (waypoints per frame).
        """
        rng = np.random.default_rng((self.seed, seed))
        margin = 1.4
        lo = np.array([margin, margin])
        hi = np.maximum(self.size[:2] - margin, lo + 0.2)
        n_way = 6
        eyes = np.column_stack([rng.uniform(lo[0], hi[0], n_way), rng.uniform(lo[1], hi[1], n_way),
                                rng.uniform(0.9, min(1.8, self.size[2] - 0.5), n_way)])
        targets = np.column_stack([rng.uniform(0.2, self.size[0] - 0.2, n_way),
                                   rng.uniform(0.2, self.size[1] - 0.2, n_way),
                                   rng.uniform(0.3, 1.5, n_way)])
        t = (rng.uniform(0, n_way) + speed * np.arange(n_frames)) % n_way
        eye = _catmull_rom(eyes, t)
        target = _catmull_rom(targets, t)
        poses = []
        for e, g in zip(eye, target):
            if np.linalg.norm(g[:2] - e[:2]) < 0.5:  # keep the view direction well defined
                g = e + np.array([1.0, 0.0, -0.2])
            poses.append(look_at(e, g))
        return poses

    def robot_path(self, n_frames: int, seed: int = 0,
                   speed: float = 0.03) -> List[np.ndarray]:
        """
        Return n_frames camera poses as a robot or a hand-held camera would move.

        One camera per path, at a fixed height (a third each: 0.25-0.6 m like a small
        ground robot, 0.6-1.1 m, 1.1-1.7 m like a person) and a fixed tilt (pitch 20 deg
        down to 5 deg up, steeper down for high cameras) with a small roll, driving along a
        smooth curve through the room's free floor and turning towards moving targets.
        Eyes that would fall inside furniture keep the previous pose.
        """
        rng = np.random.default_rng((self.seed, seed, 11))
        band = rng.random()
        height = rng.uniform(0.25, 0.6) if band < 1 / 3 else (
            rng.uniform(0.6, 1.1) if band < 2 / 3 else rng.uniform(1.1, 1.7))
        height = min(height, self.size[2] - 0.4)
        pitch = rng.uniform(-0.35, 0.09) - (0.15 * rng.random() if height > 1.1 else 0.0)
        roll = float(rng.normal(0.0, 0.03))
        lo, hi = np.array([0.4, 0.4]), self.size[:2] - 0.4
        n_way = 6
        eyes = []
        for _ in range(n_way):
            for _try in range(20):
                xy = rng.uniform(lo, hi)
                if not furniture.inside_any((xy[0], xy[1], height), self.parts, 0.3):
                    break
            eyes.append([xy[0], xy[1], height])
        eyes = np.array(eyes)
        targets = np.column_stack([rng.uniform(0.0, self.size[0], n_way),
                                   rng.uniform(0.0, self.size[1], n_way),
                                   np.full(n_way, height)])
        t = (rng.uniform(0, n_way) + speed * np.arange(n_frames)) % n_way
        eye_path = _catmull_rom(eyes, t)
        target_path = _catmull_rom(targets, t)
        poses: List[np.ndarray] = []
        for e, g in zip(eye_path, target_path):
            e = np.clip(e, [0.25, 0.25, 0.2],
                        [self.size[0] - 0.25, self.size[1] - 0.25, self.size[2] - 0.2])
            if poses and furniture.inside_any(e, self.parts, 0.15):
                poses.append(poses[-1].copy())
                continue
            heading = g[:2] - e[:2]
            if np.linalg.norm(heading) < 0.3:
                heading = np.array([1.0, 0.0])
            heading = heading / np.linalg.norm(heading)
            forward = np.array([heading[0] * np.cos(pitch), heading[1] * np.cos(pitch),
                                np.sin(pitch)])
            pose = look_at(e, e + forward)
            c, s = np.cos(roll), np.sin(roll)
            x_axis, y_axis = pose[:3, 0].copy(), pose[:3, 1].copy()
            pose[:3, 0], pose[:3, 1] = c * x_axis + s * y_axis, -s * x_axis + c * y_axis
            poses.append(pose)
        return poses

    # -- rendering ------------------------------------------------------------------------
    def render(self, intrinsics, pose: np.ndarray, index: int = 0) -> Frame:
        """Render RGB and exact depth for a camera-to-world pose."""
        intr = _as_intrinsics(intrinsics, intrinsics.width, intrinsics.height)
        h, w = intr.height, intr.width
        rays_cam = _rays(intr)  # (3, N), z = 1
        rot = pose[:3, :3].astype(np.float32)
        d = rot @ rays_cam
        o = pose[:3, 3].astype(np.float32)
        n = d.shape[1]
        t = np.full(n, NO_HIT, np.float32)
        obj = np.full(n, -1, np.int32)
        self._hit_room(o, d, t, obj)
        ids = 10
        for box in self.boxes:
            self._hit_box(o, d, t, obj, box, ids)
            ids += 1
        for sphere in self.spheres:
            self._hit_sphere(o, d, t, obj, sphere, ids)
            ids += 1
        for cyl in self.cylinders:
            self._hit_cylinder(o, d, t, obj, cyl, ids)
            ids += 1
        p = o[:, None] + d * t[None]
        rgb = self._shade(p, obj)
        depth = t.reshape(h, w)
        return Frame(rgb=rgb.reshape(h, w, 3), depth=depth, K=intr.K, pose=np.array(pose),
                     index=index)

    def _hit_room(self, o, d, t, obj):
        size = self.size.astype(np.float32)
        with np.errstate(divide='ignore', invalid='ignore'):
            best = np.full(d.shape[1], NO_HIT, np.float32)
            face = np.zeros(d.shape[1], np.int32)
            for axis in range(3):
                bound = np.where(d[axis] > 0, size[axis], 0.0).astype(np.float32)
                ta = (bound - o[axis]) / d[axis]
                ta[~np.isfinite(ta)] = NO_HIT
                better = ta < best
                best[better] = ta[better]
                # face ids: 0 x-walls, 1 y-walls, 2 floor, 3 ceiling
                face[better] = axis if axis < 2 else np.where(d[2][better] > 0, 3, 2)
        t[:] = best
        obj[:] = face

    def _hit_box(self, o, d, t, obj, box, ident):
        c, s = np.float32(np.cos(box.yaw)), np.float32(np.sin(box.yaw))
        # world -> box local (rotation by -yaw about z)
        ol = o - box.centre.astype(np.float32)
        olx, oly, olz = c * ol[0] + s * ol[1], -s * ol[0] + c * ol[1], ol[2]
        dlx, dly, dlz = c * d[0] + s * d[1], -s * d[0] + c * d[1], d[2]
        tnear = np.full(d.shape[1], -np.inf, np.float32)
        tfar = np.full(d.shape[1], np.inf, np.float32)
        with np.errstate(divide='ignore', invalid='ignore'):
            for oa, da, ha in ((olx, dlx, box.half[0]), (oly, dly, box.half[1]),
                               (olz, dlz, box.half[2])):
                inv = np.float32(1.0) / da
                t1, t2 = (-ha - oa) * inv, (ha - oa) * inv
                np.maximum(tnear, np.minimum(t1, t2), out=tnear)
                np.minimum(tfar, np.maximum(t1, t2), out=tfar)
        hit = (tnear <= tfar) & (tnear > 1e-4) & (tnear < t)
        t[hit] = tnear[hit]
        obj[hit] = ident

    def _hit_sphere(self, o, d, t, obj, sphere, ident):
        oc = o - sphere.centre.astype(np.float32)
        a = np.einsum('ij,ij->j', d, d)
        b = oc @ d
        cc = np.float32(oc @ oc - sphere.radius ** 2)
        disc = b * b - a * cc
        ok = disc > 0
        th = np.full(d.shape[1], NO_HIT, np.float32)
        th[ok] = (-b[ok] - np.sqrt(disc[ok])) / a[ok]
        hit = ok & (th > 1e-4) & (th < t)
        t[hit] = th[hit]
        obj[hit] = ident

    def _hit_cylinder(self, o, d, t, obj, cyl, ident):
        ox, oy = o[0] - np.float32(cyl.centre_xy[0]), o[1] - np.float32(cyl.centre_xy[1])
        a = d[0] * d[0] + d[1] * d[1]
        b = ox * d[0] + oy * d[1]
        cc = np.float32(ox * ox + oy * oy - cyl.radius ** 2)
        disc = b * b - a * cc
        ok = (disc > 0) & (a > 1e-12)
        th = np.full(d.shape[1], NO_HIT, np.float32)
        th[ok] = (-b[ok] - np.sqrt(disc[ok])) / a[ok]
        z = o[2] + d[2] * th
        side = ok & (th > 1e-4) & (z >= cyl.z0) & (z <= cyl.z1)
        with np.errstate(divide='ignore', invalid='ignore'):
            tc = (np.float32(cyl.z1) - o[2]) / d[2]
            cx, cy = ox + d[0] * tc, oy + d[1] * tc
            cap = (tc > 1e-4) & (cx * cx + cy * cy <= cyl.radius ** 2)
        tc = np.where(cap, tc, NO_HIT)
        th = np.where(side, th, NO_HIT)
        best = np.minimum(th, tc)
        hit = best < t
        t[hit] = best[hit]
        obj[hit] = ident

    def _surface(self, p, obj):
        """Return per-point (u, v) texture coordinates in metres, normals and material ids."""
        n = p.shape[1]
        u = np.zeros(n, np.float32)
        v = np.zeros(n, np.float32)
        normal = np.zeros((3, n), np.float32)
        mat = np.zeros(n, np.int32)
        size = self.size.astype(np.float32)
        floor_m, wall_m, ceil_m = self.room_materials
        sel = obj == 0  # x walls
        u[sel], v[sel] = p[1, sel], p[2, sel]
        normal[0, sel] = np.where(p[0, sel] < size[0] / 2, 1.0, -1.0)
        mat[sel] = wall_m
        sel = obj == 1  # y walls
        u[sel], v[sel] = p[0, sel], p[2, sel]
        normal[1, sel] = np.where(p[1, sel] < size[1] / 2, 1.0, -1.0)
        mat[sel] = wall_m
        for face, nz, m in ((2, 1.0, floor_m), (3, -1.0, ceil_m)):
            sel = obj == face
            u[sel], v[sel] = p[0, sel], p[1, sel]
            normal[2, sel] = nz
            mat[sel] = m
        ident = 10
        for box in self.boxes:
            sel = obj == ident
            if sel.any():
                c, s = np.cos(box.yaw), np.sin(box.yaw)
                q = p[:, sel] - box.centre[:, None].astype(np.float32)
                lx, ly, lz = c * q[0] + s * q[1], -s * q[0] + c * q[1], q[2]
                rel = np.abs(np.stack([lx / box.half[0], ly / box.half[1], lz / box.half[2]]))
                axis = np.argmax(rel, axis=0)
                sign = np.sign(np.stack([lx, ly, lz])[axis, np.arange(len(axis))])
                nl = np.zeros((3, len(axis)), np.float32)
                nl[axis, np.arange(len(axis))] = sign
                normal[0, sel] = c * nl[0] - s * nl[1]
                normal[1, sel] = s * nl[0] + c * nl[1]
                normal[2, sel] = nl[2]
                u[sel] = np.where(axis == 0, ly, lx)
                v[sel] = np.where(axis == 2, ly, lz)
                mat[sel] = box.material
            ident += 1
        for sphere in self.spheres:
            sel = obj == ident
            if sel.any():
                q = (p[:, sel] - sphere.centre[:, None]) / sphere.radius
                normal[:, sel] = q
                u[sel] = np.arctan2(q[1], q[0]) * sphere.radius * 2
                v[sel] = np.arccos(np.clip(q[2], -1, 1)) * sphere.radius * 2
                mat[sel] = sphere.material
            ident += 1
        for cyl in self.cylinders:
            sel = obj == ident
            if sel.any():
                qx = p[0, sel] - cyl.centre_xy[0]
                qy = p[1, sel] - cyl.centre_xy[1]
                top = p[2, sel] >= cyl.z1 - 1e-4
                normal[0, sel] = np.where(top, 0.0, qx / cyl.radius)
                normal[1, sel] = np.where(top, 0.0, qy / cyl.radius)
                normal[2, sel] = np.where(top, 1.0, 0.0)
                u[sel] = np.where(top, qx, np.arctan2(qy, qx) * cyl.radius)
                v[sel] = np.where(top, qy, p[2, sel])
                mat[sel] = cyl.material
            ident += 1
        return u, v, normal, mat

    def _shade(self, p, obj):
        u, v, normal, mat = self._surface(p, obj)
        colour = np.empty((p.shape[1], 3), np.float32)
        for m in np.unique(mat):
            sel = mat == m
            material = self.materials[int(m)]
            size = material.texture.shape[0]
            scale = size / material.metres_per_tile
            iu = (u[sel] * scale).astype(np.int32) & (size - 1)
            iv = (v[sel] * scale).astype(np.int32) & (size - 1)
            colour[sel] = material.texture[iv, iu]
        lam = np.clip(-(self.light_dir.astype(np.float32) @ normal), 0.0, 1.0)
        lights = self.point_lights or [(self.light_pos, 1.2)]
        point = np.zeros(p.shape[1], np.float32)
        for pos, power in lights:
            to_light = np.asarray(pos, np.float32)[:, None] - p
            dist2 = np.einsum('ij,ij->j', to_light, to_light)
            point += np.float32(power) * np.clip(np.einsum('ij,ij->j', to_light, normal), 0.0,
                                                 None) / (dist2 * np.sqrt(dist2) + 1e-6)
        light = self.ambient + np.float32(self.directional) * lam + point
        if self.occlusion > 0:
            light = light * self._occlusion(p, obj)
        emissive = [i for i, mat in enumerate(self.materials) if mat.emissive]
        if emissive:
            light = np.where(np.isin(mat, emissive), np.float32(1.0), light)
        return np.clip(colour * light[:, None] * 255.0, 0, 255).astype(np.uint8)

    def _occlusion(self, p, obj):
        """Darken points near the room's corners and objects near the floor (contact)."""
        size = self.size.astype(np.float32)
        dist = np.abs(np.stack([p[0], size[0] - p[0], p[1], size[1] - p[1], p[2],
                                size[2] - p[2]]))
        near = np.partition(dist, 1, axis=0)
        # a room surface is at distance 0 from its own plane: use the next one
        d = np.where(obj < 4, near[1], near[0])
        return (1.0 - np.float32(self.occlusion) * np.exp(-d / np.float32(0.25))).astype(
            np.float32)


_RAY_CACHE: dict = {}


def _rays(intr: Intrinsics) -> np.ndarray:
    key = (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height)
    rays = _RAY_CACHE.get(key)
    if rays is None:
        u, v = np.meshgrid(np.arange(intr.width, dtype=np.float32),
                           np.arange(intr.height, dtype=np.float32))
        rays = np.stack([((u - intr.cx) / intr.fx).ravel(), ((v - intr.cy) / intr.fy).ravel(),
                         np.ones(u.size, np.float32)]).astype(np.float32)
        if len(_RAY_CACHE) > 8:
            _RAY_CACHE.clear()
        _RAY_CACHE[key] = rays
    return rays


class SyntheticStream:
    """
    Endless (or looping) frames along smooth camera paths through procedural rooms.

    A new room is generated every ``frames_per_room`` frames; frames within a room are
    consecutive views along one smooth path. Deterministic in ``seed``. ``style='robot'``
    renders furnished rooms seen from robot cameras, through a camera response drawn per
    room, with sensor noise drawn per frame (``camera_effects`` turns that off).
    """

    def __init__(self, width: int = 640, height: int = 480, intrinsics=None, seed: int = 0,
                 frames_per_room: int = 150, speed: float = 0.03,
                 texture_dir: Optional[str] = None, style: str = 'classic',
                 camera_effects: Optional[bool] = None):
        if style not in STYLES:
            raise ValueError(f'style must be one of {STYLES}, got {style!r}')
        self.style = style
        self.camera_effects = style == 'robot' if camera_effects is None else camera_effects
        self._response: Optional[CameraResponse] = None
        self.intrinsics = _as_intrinsics(intrinsics, width, height)
        if (self.intrinsics.width, self.intrinsics.height) != (width, height):
            self.intrinsics = self.intrinsics.resize(width, height)
        self.seed = seed
        self.frames_per_room = max(1, int(frames_per_room))
        self.speed = speed
        self.texture_dir = texture_dir
        self._room = -1
        self._scene: Optional[Scene] = None
        self._poses: List[np.ndarray] = []

    def frame(self, index: int, camera_offset: Optional[np.ndarray] = None) -> Frame:
        """
        Return frame number index (random access, deterministic).

        ``camera_offset`` (4x4, in the path camera's own optical frame) renders the same
        instant from a camera rigidly attached to it, such as a stereo rig's right camera
        (translation (b, 0, 0)); the frame's pose is then that camera's.
        """
        room = index // self.frames_per_room
        if room != self._room:
            self._scene = Scene.random(seed=self.seed * 100003 + room,
                                       texture_dir=self.texture_dir, style=self.style)
            path = self._scene.robot_path if self.style == 'robot' else \
                self._scene.camera_path
            self._poses = path(self.frames_per_room, seed=room, speed=self.speed)
            self._response = CameraResponse.draw(
                np.random.default_rng((self.seed, room, 5))) if self.camera_effects else None
            self._room = room
        pose = self._poses[index % self.frames_per_room]
        if camera_offset is not None:
            pose = pose @ np.asarray(camera_offset, dtype=np.float64)
        frame = self._scene.render(self.intrinsics, pose, index=index)
        if self._response is not None:
            frame.rgb = self._response.apply(frame.rgb,
                                             np.random.default_rng((self.seed, index, 6)))
        return frame

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            yield self.frame(index)
            index += 1
