"""
Rendering a synthetic room: analytic ray casting, textures and lights (no ROS).

Rays are built with a unit z component in the camera frame, so the hit parameter ``t``
*is* the REP 118 depth (not the ray length). Lighting is ambient plus a directional and
point lights (Lambert, no shadows), with a contact-shadow (ambient occlusion) term near
the room's corners for the ``robot`` style; emissive materials (windows) are unlit.
"""

from dataclasses import dataclass

from mono_depth_ros.core.intrinsics import Intrinsics, preset
from mono_depth_ros.sim.shapes import (hit_box, hit_cylinder, hit_room, hit_sphere, NO_HIT,
                                       surface)
import numpy as np


@dataclass
class Frame:
    """One rendered view: RGB uint8 (H, W, 3), depth float32 metres, K 3x3, pose 4x4."""

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray  # noqa: N815 - the field's name
    pose: np.ndarray
    index: int = 0


def as_intrinsics(intrinsics, width: int, height: int) -> Intrinsics:
    """Return the intrinsics given (any object with fx..height), or Kinect's at width x height."""
    if intrinsics is None:
        return preset('kinect_nyu').resize(width, height)
    return Intrinsics(intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy,
                      intrinsics.width, intrinsics.height)


_RAY_CACHE: dict = {}


def rays(intr: Intrinsics) -> np.ndarray:
    """Return the (3, N) camera-frame rays of every pixel, z = 1 (cached per camera)."""
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


def render(scene, intrinsics, pose: np.ndarray, index: int = 0) -> Frame:
    """Render RGB and exact depth for a camera-to-world pose."""
    intr = as_intrinsics(intrinsics, intrinsics.width, intrinsics.height)
    h, w = intr.height, intr.width
    rays_cam = rays(intr)  # (3, N), z = 1
    rot = pose[:3, :3].astype(np.float32)
    d = rot @ rays_cam
    o = pose[:3, 3].astype(np.float32)
    n = d.shape[1]
    t = np.full(n, NO_HIT, np.float32)
    obj = np.full(n, -1, np.int32)
    hit_room(scene.size, o, d, t, obj)
    ids = 10
    for box in scene.boxes:
        hit_box(o, d, t, obj, box, ids)
        ids += 1
    for sphere in scene.spheres:
        hit_sphere(o, d, t, obj, sphere, ids)
        ids += 1
    for cyl in scene.cylinders:
        hit_cylinder(o, d, t, obj, cyl, ids)
        ids += 1
    p = o[:, None] + d * t[None]
    rgb = shade(scene, p, obj)
    depth = t.reshape(h, w)
    return Frame(rgb=rgb.reshape(h, w, 3), depth=depth, K=intr.K, pose=np.array(pose),
                 index=index)


def shade(scene, p, obj):
    """Return the uint8 RGB of the hit points: texture times light."""
    u, v, normal, mat = surface(scene, p, obj)
    colour = np.empty((p.shape[1], 3), np.float32)
    for m in np.unique(mat):
        sel = mat == m
        material = scene.materials[int(m)]
        size = material.texture.shape[0]
        scale = size / material.metres_per_tile
        iu = (u[sel] * scale).astype(np.int32) & (size - 1)
        iv = (v[sel] * scale).astype(np.int32) & (size - 1)
        colour[sel] = material.texture[iv, iu]
    lam = np.clip(-(scene.light_dir.astype(np.float32) @ normal), 0.0, 1.0)
    lights = scene.point_lights or [(scene.light_pos, 1.2)]
    point = np.zeros(p.shape[1], np.float32)
    for pos, power in lights:
        to_light = np.asarray(pos, np.float32)[:, None] - p
        dist2 = np.einsum('ij,ij->j', to_light, to_light)
        point += np.float32(power) * np.clip(np.einsum('ij,ij->j', to_light, normal), 0.0,
                                             None) / (dist2 * np.sqrt(dist2) + 1e-6)
    light = scene.ambient + np.float32(scene.directional) * lam + point
    if scene.occlusion > 0:
        light = light * occlusion(scene, p, obj)
    emissive = [i for i, mat in enumerate(scene.materials) if mat.emissive]
    if emissive:
        light = np.where(np.isin(mat, emissive), np.float32(1.0), light)
    return np.clip(colour * light[:, None] * 255.0, 0, 255).astype(np.uint8)


def occlusion(scene, p, obj):
    """Darken points near the room's corners and objects near the floor (contact)."""
    size = scene.size.astype(np.float32)
    dist = np.abs(np.stack([p[0], size[0] - p[0], p[1], size[1] - p[1], p[2],
                            size[2] - p[2]]))
    near = np.partition(dist, 1, axis=0)
    # a room surface is at distance 0 from its own plane: use the next one
    d = np.where(obj < 4, near[1], near[0])
    return (1.0 - np.float32(scene.occlusion) * np.exp(-d / np.float32(0.25))).astype(
        np.float32)
