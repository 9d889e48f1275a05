"""Every augmentation: geometry follows exactly, depth is never interpolated, photometry."""

from mono_depth_ros.core.intrinsics import Intrinsics
import numpy as np
import pytest
import torch
from training.datasets.augment import (crop_sample, flip_sample, GeometricAugment, normalize,
                                       PhotometricAugment, RawSample, resize_depth, resize_sample,
                                       rotate_sample, sample_seed)


def _sample(h=40, w=60):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(1.0, 5.0, (h, w)).astype(np.float32)
    depth[::3, ::4] = 0.0  # holes
    return RawSample(rgb, depth, Intrinsics(50.0, 50.0, 29.0, 18.0, w, h), id='x')


def test_flip_mirrors_pixels_and_cx():
    s = _sample()
    f = flip_sample(s)
    np.testing.assert_array_equal(f.rgb[:, 0], s.rgb[:, -1])
    np.testing.assert_array_equal(f.depth[:, 5], s.depth[:, 60 - 1 - 5])
    assert f.intrinsics.cx == 60 - 1 - 29.0 and f.intrinsics.fx == 50.0
    assert flip_sample(f).intrinsics == s.intrinsics


def test_crop_moves_principal_point():
    s = _sample()
    c = crop_sample(s, 7, 3, 32, 24)
    assert (c.intrinsics.cx, c.intrinsics.cy) == (22.0, 15.0)
    np.testing.assert_array_equal(c.depth, s.depth[3:27, 7:39])
    with pytest.raises(ValueError, match='does not fit'):
        crop_sample(s, 40, 0, 32, 24)


def test_resize_depth_never_mixes_valid_and_invalid():
    s = _sample()
    r = resize_sample(s, 30, 20)
    values = set(np.unique(s.depth).tolist())
    assert set(np.unique(r.depth).tolist()) <= values  # only original values, no blends
    assert r.intrinsics.cx == pytest.approx((29.0 + 0.5) * 0.5 - 0.5)
    up = resize_depth(s.depth, 120, 80)
    assert set(np.unique(up).tolist()) <= values


def test_sparse_depth_keeps_nearest_return_when_shrunk():
    depth = np.zeros((40, 60), np.float32)
    depth[10, 10], depth[11, 11] = 7.0, 3.0  # land on the same target pixel at half size
    depth[30, 50] = 9.0
    small = resize_depth(depth, 30, 20)
    assert small[5, 5] == 3.0 and small[15, 25] == 9.0
    assert (small > 0).sum() == 2


def test_rotation_keeps_depth_values_and_marks_outside_invalid():
    s = _sample()
    s.depth[:] = 2.0
    r = rotate_sample(s, 10.0)
    assert r.intrinsics == s.intrinsics
    assert set(np.unique(r.depth).tolist()) <= {0.0, 2.0}
    assert r.depth[0, 0] == 0.0 and r.depth[18, 29] == 2.0  # corners leave, centre stays


def test_geometric_draws_are_seeded_and_switchable():
    aug = GeometricAugment(32, 24, {'hflip': 0.5, 'rotation_deg': 5.0}, train=True)
    a = aug.draw(np.random.default_rng(5), (60, 40))
    b = aug.draw(np.random.default_rng(5), (60, 40))
    assert a == b
    off = GeometricAugment(32, 24, {'hflip': 0.5, 'enabled': False}, train=True)
    p = off.draw(np.random.default_rng(5), (60, 40))
    assert (p.x0, p.y0, p.flip, p.angle) == (14, 8, False, 0.0)  # centre crop only
    assert sample_seed(0, 1, 2) == sample_seed(0, 1, 2) != sample_seed(0, 2, 2)


def test_photometric_ops():
    images = torch.rand(16, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    gray = PhotometricAugment({'grayscale': 1.0})(images, gen)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    swap = PhotometricAugment({'channel_swap': 1.0})(images, torch.Generator().manual_seed(1))
    assert torch.allclose(swap.sort(dim=1).values, images.sort(dim=1).values)
    assert not torch.allclose(swap, images)
    bright = PhotometricAugment({'brightness': 0.5})(images, torch.Generator().manual_seed(2))
    ratio = (bright / images.clamp(min=1e-3)).flatten(1)
    assert float(ratio.std(dim=1).max()) < 1e-2 or bool((bright == 1.0).any())
    assert 0.0 <= float(bright.min()) and float(bright.max()) <= 1.0
    contrast = PhotometricAugment({'contrast': 0.5})(images, torch.Generator().manual_seed(3))
    assert not torch.allclose(contrast.std(dim=(2, 3)), images.std(dim=(2, 3)))
    sat = PhotometricAugment({'saturation': 0.9})(images, torch.Generator().manual_seed(4))
    assert not torch.allclose(sat, images)
    assert PhotometricAugment({'enabled': False, 'grayscale': 1.0})(images) is images
    a = PhotometricAugment({'brightness': 0.3, 'channel_swap': 0.5})
    np.testing.assert_array_equal(a(images, torch.Generator().manual_seed(9)).numpy(),
                                  a(images, torch.Generator().manual_seed(9)).numpy())


def test_imagenet_normalisation():
    images = torch.ones(1, 3, 2, 2) * torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    assert float(normalize(images).abs().max()) < 1e-6
    assert float(normalize(torch.ones(1, 3, 1, 1))[0, 0]) == pytest.approx((1 - 0.485) / 0.229)
