"""
The geometry of a synthetic room: its primitives, their ray hits and surfaces (no ROS).

A room is the box [0, size] (floor, four walls, ceiling) holding boxes (yawed about z),
spheres and vertical cylinders. Rays are hit in bulk: ``t`` (the hit parameter of every
ray, NO_HIT for none) and ``obj`` (what it hit: 0 x walls, 1 y walls, 2 floor, 3 ceiling,
then 10, 11, ... for the boxes, spheres and cylinders in that order) are updated in
place. :func:`surface` gives the texture coordinates in metres, the normals and the
materials of the hit points.
"""

from dataclasses import dataclass

import numpy as np

NO_HIT = np.float32(np.inf)


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


def hit_room(size, o, d, t, obj):
    """Hit the room's six faces from inside: t and obj (face 0-3) of every ray."""
    size = size.astype(np.float32)
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


def hit_box(o, d, t, obj, box, ident):
    """Keep the hits of a box nearer than t (t and obj updated in place)."""
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


def hit_sphere(o, d, t, obj, sphere, ident):
    """Keep the hits of a sphere nearer than t (t and obj updated in place)."""
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


def hit_cylinder(o, d, t, obj, cyl, ident):
    """Keep the hits of a cylinder (side or top cap) nearer than t (in place)."""
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


def surface(scene, p, obj):
    """Return per-point (u, v) texture coordinates in metres, normals and material ids."""
    n = p.shape[1]
    u = np.zeros(n, np.float32)
    v = np.zeros(n, np.float32)
    normal = np.zeros((3, n), np.float32)
    mat = np.zeros(n, np.int32)
    size = scene.size.astype(np.float32)
    floor_m, wall_m, ceil_m = scene.room_materials
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
    for box in scene.boxes:
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
    for sphere in scene.spheres:
        sel = obj == ident
        if sel.any():
            q = (p[:, sel] - sphere.centre[:, None]) / sphere.radius
            normal[:, sel] = q
            u[sel] = np.arctan2(q[1], q[0]) * sphere.radius * 2
            v[sel] = np.arccos(np.clip(q[2], -1, 1)) * sphere.radius * 2
            mat[sel] = sphere.material
        ident += 1
    for cyl in scene.cylinders:
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
