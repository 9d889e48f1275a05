"""
Furniture-like composites for the synthetic rooms, built from boxes.

Real indoor pictures are full of thin horizontal and vertical structure at known sizes:
table tops on legs, chairs, bookshelves with rows of books, cabinets, sofas, doors, windows
and pictures on the walls. Each composite here is a list of :class:`Part` (an axis-aligned
box in the composite's own frame: x along it, y away from the wall it stands against,
z up, metres) with a *role* ('wood', 'fabric', 'item', 'window', ...) that the scene maps
to a material. :func:`furnish` lays composites out in a room without overlaps and returns
them in world coordinates, as (centre, half extents, yaw, role) tuples.

The sizes follow common furniture dimensions (seat 0.45 m, table 0.72-0.76 m, door
2.0-2.1 m by 0.8-0.95 m), because a network that sees them learns real metric cues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

ROLES = ('wood', 'fabric', 'metal', 'item', 'door', 'frame', 'window', 'art', 'accent')


@dataclass
class Part:
    """A box in a composite's frame: centre, half extents (x along, y out, z up), role."""

    centre: Tuple[float, float, float]
    half: Tuple[float, float, float]
    role: str


@dataclass
class Placed:
    """A part in the world: centre (x, y, z), half extents in its yawed frame, yaw, role."""

    centre: np.ndarray
    half: np.ndarray
    yaw: float
    role: str


def _legs(w: float, d: float, h: float, t: float, y0: float = 0.0) -> List[Part]:
    """Four legs of thickness t under a w x d top whose underside is at height h."""
    out = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            out.append(Part((sx * (w / 2 - t), y0 + d / 2 + sy * (d / 2 - t), h / 2),
                            (t / 2, t / 2, h / 2), 'metal' if t < 0.035 else 'wood'))
    return out


def table(rng: np.random.Generator, against_wall: bool = True) -> Tuple[List[Part], float]:
    """Return a table or desk (top on four legs), maybe with a monitor or items on it."""
    w, d = rng.uniform(0.8, 1.8), rng.uniform(0.55, 0.95)
    h, top = rng.uniform(0.70, 0.77), rng.uniform(0.025, 0.05)
    y0 = 0.02 if against_wall else -d / 2
    parts = [Part((0.0, y0 + d / 2, h - top / 2), (w / 2, d / 2, top / 2), 'wood')]
    parts += _legs(w, d, h - top, rng.uniform(0.03, 0.06), y0)
    for _ in range(int(rng.integers(0, 3))):
        iw, idp, ih = rng.uniform(0.1, 0.5), rng.uniform(0.05, 0.35), rng.uniform(0.03, 0.4)
        x = rng.uniform(-w / 2 + iw / 2, w / 2 - iw / 2)
        y = y0 + rng.uniform(idp / 2, d - idp / 2)
        parts.append(Part((x, y, h + ih / 2), (iw / 2, idp / 2, ih / 2), 'item'))
    return parts, w


def chair(rng: np.random.Generator) -> Tuple[List[Part], float]:
    """Return a chair: seat at about 0.45 m on four legs, with a back rest."""
    w = rng.uniform(0.4, 0.5)
    seat_h, seat_t = rng.uniform(0.42, 0.48), rng.uniform(0.03, 0.07)
    role = 'fabric' if rng.random() < 0.6 else 'wood'
    parts = [Part((0.0, w / 2, seat_h - seat_t / 2), (w / 2, w / 2, seat_t / 2), role)]
    parts += _legs(w, w, seat_h - seat_t, rng.uniform(0.02, 0.04))
    back_h = rng.uniform(0.3, 0.5)
    parts.append(Part((0.0, 0.03, seat_h + back_h / 2), (w / 2, 0.025, back_h / 2), role))
    return parts, w


def bookshelf(rng: np.random.Generator) -> Tuple[List[Part], float]:
    """Return a bookshelf or open shelving: sides, back, boards and rows of books on them."""
    w, d, h = rng.uniform(0.6, 1.8), rng.uniform(0.25, 0.42), rng.uniform(0.8, 2.2)
    t = rng.uniform(0.015, 0.03)
    n = max(2, int(h / rng.uniform(0.3, 0.45)))
    parts = [Part((-w / 2 + t / 2, d / 2, h / 2), (t / 2, d / 2, h / 2), 'wood'),
             Part((w / 2 - t / 2, d / 2, h / 2), (t / 2, d / 2, h / 2), 'wood'),
             Part((0.0, t / 2, h / 2), (w / 2, t / 2, h / 2), 'wood')]
    spacing = (h - t) / n
    for i in range(n + 1):
        z = i * spacing + t / 2
        parts.append(Part((0.0, d / 2, z), (w / 2 - t, d / 2, t / 2), 'wood'))
        if i == n:
            break
        x = -w / 2 + t
        while x < w / 2 - t - 0.1 and rng.random() < 0.85:
            bw = min(rng.uniform(0.08, 0.5), w / 2 - t - x)
            bh = rng.uniform(0.5, 0.9) * (spacing - t)
            bd = rng.uniform(0.6, 0.95) * d
            parts.append(Part((x + bw / 2, t + bd / 2, z + t / 2 + bh / 2),
                              (bw / 2, bd / 2, bh / 2), 'item'))
            x += bw + rng.uniform(0.0, 0.2)
    return parts, w


def cabinet(rng: np.random.Generator) -> Tuple[List[Part], float]:
    """Return a cabinet, chest of drawers or counter: a solid body with a slightly larger top."""
    w, d, h = rng.uniform(0.5, 2.0), rng.uniform(0.35, 0.65), rng.uniform(0.45, 1.1)
    top = 0.03
    parts = [Part((0.0, d / 2, (h - top) / 2), (w / 2, d / 2, (h - top) / 2),
                  'wood' if rng.random() < 0.5 else 'accent'),
             Part((0.0, d / 2 + 0.01, h - top / 2), (w / 2 + 0.01, d / 2 + 0.01, top / 2),
                  'wood')]
    if rng.random() < 0.6:
        iw, ih = rng.uniform(0.1, min(0.4, w / 2)), rng.uniform(0.05, 0.45)
        parts.append(Part((rng.uniform(-w / 2 + iw / 2, w / 2 - iw / 2), d / 2, h + ih / 2),
                          (iw / 2, min(iw, d) / 2, ih / 2), 'item'))
    return parts, w


def sofa(rng: np.random.Generator) -> Tuple[List[Part], float]:
    """Return a sofa or bed: a low base, a back or head board, maybe arms."""
    bed = rng.random() < 0.35
    w = rng.uniform(1.4, 2.1) if bed else rng.uniform(1.2, 2.3)
    d = rng.uniform(1.9, 2.1) if bed else rng.uniform(0.8, 0.95)
    h = rng.uniform(0.4, 0.6) if bed else rng.uniform(0.38, 0.46)
    back_h, back_t = (rng.uniform(0.8, 1.1), 0.06) if bed else (rng.uniform(0.75, 0.9), 0.2)
    parts = [Part((0.0, d / 2, h / 2), (w / 2, d / 2, h / 2), 'fabric'),
             Part((0.0, back_t / 2, back_h / 2), (w / 2, back_t / 2, back_h / 2),
                  'wood' if bed else 'fabric')]
    if not bed and rng.random() < 0.7:
        arm_h = h + rng.uniform(0.12, 0.22)
        for sx in (-1, 1):
            parts.append(Part((sx * (w / 2 - 0.09), d / 2, arm_h / 2), (0.09, d / 2, arm_h / 2),
                              'fabric'))
    return parts, w


def door(rng: np.random.Generator) -> Tuple[List[Part], float]:
    """Return a door in its frame, standing a few centimetres out of the wall."""
    w, h = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1)
    f = rng.uniform(0.04, 0.08)
    return [Part((0.0, 0.02, h / 2), (w / 2, 0.02, h / 2), 'door'),
            Part((-w / 2 - f / 2, 0.025, (h + f) / 2), (f / 2, 0.025, (h + f) / 2), 'frame'),
            Part((w / 2 + f / 2, 0.025, (h + f) / 2), (f / 2, 0.025, (h + f) / 2), 'frame'),
            Part((0.0, 0.025, h + f / 2), (w / 2, 0.025, f / 2), 'frame')], w + 2 * f


def window(rng: np.random.Generator, room_height: float) -> Tuple[List[Part], float]:
    """Return a window with frame and sill: a bright, unlit pane of outdoor picture."""
    w = rng.uniform(0.6, 1.8)
    z0 = rng.uniform(0.7, 1.0)
    h = min(rng.uniform(0.9, 1.5), room_height - z0 - 0.15)
    f = 0.05
    return [Part((0.0, 0.008, z0 + h / 2), (w / 2, 0.008, h / 2), 'window'),
            Part((0.0, 0.06, z0 - 0.02), (w / 2 + 0.05, 0.06, 0.02), 'frame'),
            Part((-w / 2 - f / 2, 0.02, z0 + h / 2), (f / 2, 0.02, h / 2 + f), 'frame'),
            Part((w / 2 + f / 2, 0.02, z0 + h / 2), (f / 2, 0.02, h / 2 + f), 'frame'),
            Part((0.0, 0.02, z0 + h + f / 2), (w / 2, 0.02, f / 2), 'frame')], w + 2 * f


def picture(rng: np.random.Generator) -> Tuple[List[Part], float]:
    """Return a picture, poster or whiteboard hung on the wall."""
    w, h = rng.uniform(0.3, 1.4), rng.uniform(0.3, 1.0)
    z = rng.uniform(1.1, 1.8)
    return [Part((0.0, 0.01, z), (w / 2, 0.01, h / 2), 'art')], w


FLOOR_KINDS = (('bookshelf', bookshelf), ('cabinet', cabinet), ('table', table),
               ('chair', chair), ('sofa', sofa))


def _to_world(parts: Sequence[Part], origin: np.ndarray, yaw: float) -> List[Placed]:
    c, s = np.cos(yaw), np.sin(yaw)
    out = []
    for p in parts:
        lx, ly, lz = p.centre
        out.append(Placed(np.array([origin[0] + c * lx - s * ly, origin[1] + s * lx + c * ly,
                                    lz]), np.array(p.half, np.float64), float(yaw), p.role))
    return out


def _wall_frame(side: int, along: float, size: np.ndarray) -> Tuple[np.ndarray, float]:
    """Origin on wall side (0: y=0, 1: y=ly, 2: x=0, 3: x=lx) and the yaw facing the room."""
    lx, ly = size[0], size[1]
    if side == 0:
        return np.array([along, 0.0]), 0.0
    if side == 1:
        return np.array([lx - along, ly]), np.pi
    if side == 2:
        return np.array([0.0, ly - along]), -np.pi / 2
    return np.array([lx, along]), np.pi / 2


class _WallSlots:
    """Free intervals along each wall, so that composites do not overlap."""

    def __init__(self, size: np.ndarray):
        self.length = [size[0], size[0], size[1], size[1]]
        self.used: List[List[Tuple[float, float]]] = [[], [], [], []]

    def take(self, rng: np.random.Generator, width: float,
             tries: int = 8) -> Optional[Tuple[int, float]]:
        for _ in range(tries):
            side = int(rng.integers(4))
            length = self.length[side]
            if width + 0.2 > length:
                continue
            centre = rng.uniform(width / 2 + 0.1, length - width / 2 - 0.1)
            a, b = centre - width / 2 - 0.05, centre + width / 2 + 0.05
            if all(b <= u or a >= v for u, v in self.used[side]):
                self.used[side].append((a, b))
                return side, centre
        return None


def furnish(size: np.ndarray, rng: np.random.Generator,
            n_floor: Tuple[int, int] = (3, 8)) -> List[Placed]:
    """
    Lay out furniture, doors, windows and pictures in a room of ``size`` (x, y, z).

    Floor composites stand against walls (possibly with a chair in front of a table); with
    some probability a free-standing table with chairs stands in the room, leaving a
    corridor for the camera. Wall items use their own slots (they hang above furniture),
    doors take a floor slot and a wall slot.
    """
    floor_slots, wall_slots = _WallSlots(size), _WallSlots(size)
    placed: List[Placed] = []
    for _ in range(int(rng.integers(0, 2)) + (1 if rng.random() < 0.7 else 0)):
        parts, width = door(rng)
        slot = floor_slots.take(rng, width)
        if slot is not None:
            wall_slots.used[slot[0]].append((slot[1] - width / 2, slot[1] + width / 2))
            placed += _to_world(parts, *_wall_frame(slot[0], slot[1], size))
    for _ in range(int(rng.integers(0, 3))):
        parts, width = window(rng, float(size[2]))
        slot = wall_slots.take(rng, width)
        if slot is not None:
            placed += _to_world(parts, *_wall_frame(slot[0], slot[1], size))
    for _ in range(int(rng.integers(*n_floor))):
        kind, make = FLOOR_KINDS[int(rng.integers(len(FLOOR_KINDS)))]
        parts, width = make(rng)
        slot = floor_slots.take(rng, width)
        if slot is None:
            continue
        origin, yaw = _wall_frame(slot[0], slot[1], size)
        placed += _to_world(parts, origin, yaw)
        if kind == 'table' and rng.random() < 0.6:  # a chair pulled up to the desk
            seat, _w = chair(rng)
            depth = max(p.centre[1] + p.half[1] for p in parts)
            inward = np.array([-np.sin(yaw), np.cos(yaw)])
            spot = origin + inward * (depth + rng.uniform(0.0, 0.3))
            placed += _to_world(seat, spot, yaw + np.pi + rng.normal(0, 0.3))
    for _ in range(int(rng.integers(0, 3))):
        parts, width = picture(rng)
        slot = wall_slots.take(rng, width)
        if slot is not None:
            placed += _to_world(parts, *_wall_frame(slot[0], slot[1], size))
    if min(size[0], size[1]) > 4.0 and rng.random() < 0.5:
        parts, _w = table(rng, against_wall=False)
        centre = np.array([rng.uniform(1.6, size[0] - 1.6), rng.uniform(1.6, size[1] - 1.6)])
        yaw = float(rng.uniform(0, np.pi))
        placed += _to_world(parts, centre, yaw)
        for k in range(int(rng.integers(0, 4))):
            seat, _w = chair(rng)
            angle = yaw + k * np.pi / 2 + rng.normal(0, 0.2)
            spot = centre + 0.6 * np.array([np.cos(angle), np.sin(angle)])
            placed += _to_world(seat, spot, angle + np.pi / 2)
    return placed


def inside_any(point: Sequence[float], parts: Sequence[Placed], margin: float = 0.2) -> bool:
    """Return True when point (x, y, z) is within margin of any placed part."""
    px, py, pz = (float(v) for v in point)
    for p in parts:
        c, s = np.cos(p.yaw), np.sin(p.yaw)
        qx, qy = px - p.centre[0], py - p.centre[1]
        lx, ly, lz = c * qx + s * qy, -s * qx + c * qy, pz - p.centre[2]
        if abs(lx) <= p.half[0] + margin and abs(ly) <= p.half[1] + margin and \
                abs(lz) <= p.half[2] + margin:
            return True
    return False
