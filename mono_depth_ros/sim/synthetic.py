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

This module draws random rooms (:class:`Scene`) and streams their frames
(:class:`SyntheticStream`); the room's primitives and ray hits are :mod:`.shapes`, its
textures :mod:`.textures`, the camera paths :mod:`.camera_paths` and the rendering
:mod:`.render`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

from mono_depth_ros.sim import furniture
# look_at is re-exported for the callers that know it from here.
from mono_depth_ros.sim.camera_paths import camera_path, look_at, robot_path  # noqa: F401
from mono_depth_ros.sim.photos import load_photos, photo_texture
from mono_depth_ros.sim.render import as_intrinsics, Frame, render
from mono_depth_ros.sim.sensor import CameraResponse
from mono_depth_ros.sim.shapes import Box, Cylinder, Material, Sphere
from mono_depth_ros.sim.textures import (load_texture_folder, PHOTO_TEX, procedural_texture,
                                         value_noise)
import numpy as np

STYLES = ('classic', 'robot')


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
            t = 1.0 + contrast * (value_noise(rng, 8) + 0.5 * value_noise(rng, 64) - 0.75)
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
        """Return n_frames smooth camera poses inside the free middle of the room."""
        return camera_path(self, n_frames, seed, speed)

    def robot_path(self, n_frames: int, seed: int = 0,
                   speed: float = 0.03) -> List[np.ndarray]:
        """Return n_frames camera poses as a robot or a hand-held camera would move."""
        return robot_path(self, n_frames, seed, speed)

    # -- rendering ------------------------------------------------------------------------
    def render(self, intrinsics, pose: np.ndarray, index: int = 0) -> Frame:
        """Render RGB and exact depth for a camera-to-world pose."""
        return render(self, intrinsics, pose, index)


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
        self.intrinsics = as_intrinsics(intrinsics, width, height)
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
