"""
What a real camera does to a rendered image.

Exposure, white balance, gamma, vignetting, blur (defocus or motion) and sensor noise. A
renderer gives clean, perfectly exposed pixels; robot cameras give auto-exposed, noisy,
sometimes blurred ones. :class:`CameraResponse` is drawn once per camera (per room: auto
exposure and white balance drift slowly) and applied per frame with a per-frame noise
draw, all from seeds, so that renders stay deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class CameraResponse:
    """One camera's photometric behaviour (see :meth:`draw`)."""

    exposure: float = 0.0        # auto exposure: median intensity target (0 = off)
    gain: float = 1.0            # exposure multiplier on linear intensity
    gamma: float = 1.0           # > 1 darkens mid-tones, < 1 brightens them
    white_balance: tuple = (1.0, 1.0, 1.0)
    vignetting: float = 0.0      # relative darkening at the image corners
    blur_sigma: float = 0.0      # Gaussian defocus, in pixels at 640 px width
    motion_px: float = 0.0       # length of a linear motion blur, pixels at 640 px width
    motion_angle: float = 0.0    # radians
    shot_noise: float = 0.0      # variance per unit intensity (intensity in [0, 1])
    read_noise: float = 0.0      # standard deviation in [0, 1] units

    @classmethod
    def draw(cls, rng: np.random.Generator) -> 'CameraResponse':
        """Draw a camera response like those of robot and handheld RGB cameras."""
        blur = rng.uniform(0.0, 1.5) if rng.random() < 0.5 else 0.0
        motion = rng.uniform(2.0, 8.0) if rng.random() < 0.15 else 0.0
        return cls(exposure=float(rng.uniform(0.3, 0.55)),
                   gain=float(np.exp(rng.normal(0.0, 0.2))),
                   gamma=float(rng.uniform(0.8, 1.25)),
                   white_balance=tuple(float(v) for v in rng.uniform(0.88, 1.12, 3)),
                   vignetting=float(rng.uniform(0.0, 0.4)),
                   blur_sigma=float(blur), motion_px=float(motion),
                   motion_angle=float(rng.uniform(0, np.pi)),
                   shot_noise=float(rng.uniform(0.0, 0.004)),
                   read_noise=float(rng.uniform(0.0, 0.015)))

    def apply(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return rgb (uint8 H x W x 3) as this camera would record it; noise from rng."""
        h, w = rgb.shape[:2]
        x = rgb.astype(np.float32) / 255.0
        gain = self.gain
        if self.exposure > 0:  # metering on the median, as auto exposure does
            gain *= self.exposure / max(float(np.median(x)), 0.02)
            gain = min(gain, 8.0)
        x *= np.asarray(self.white_balance, np.float32) * np.float32(gain)
        if self.vignetting > 0:
            yy, xx = np.ogrid[0:h, 0:w]
            r2 = ((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2
            x *= (1.0 - self.vignetting * np.clip(r2 / 2.0, 0, 1)).astype(np.float32)[..., None]
        per_px = w / 640.0  # blur lengths are given for a 640-pixel-wide image
        if self.blur_sigma * per_px > 0.3:
            x = cv2.GaussianBlur(x, (0, 0), self.blur_sigma * per_px)
        length = int(round(self.motion_px * per_px))
        if length >= 2:
            kernel = np.zeros((length, length), np.float32)
            c = (length - 1) / 2.0
            dx, dy = np.cos(self.motion_angle) * c, np.sin(self.motion_angle) * c
            cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))),
                     (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
            kernel /= kernel.sum()
            x = cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT)
        x = np.clip(x, 0.0, 1.0)
        if self.shot_noise > 0 or self.read_noise > 0:
            sigma = np.sqrt(self.shot_noise * x + self.read_noise ** 2).astype(np.float32)
            x = x + sigma * rng.standard_normal(x.shape, dtype=np.float32)
        x = np.clip(x, 0.0, 1.0) ** np.float32(self.gamma)
        return (x * 255.0 + 0.5).astype(np.uint8)
