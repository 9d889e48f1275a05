"""training/floors.py and training/real_split.py: the floors a model must beat, on real data."""

import os

from mono_depth_ros.core.intrinsics import Intrinsics
import numpy as np
import pytest
from training import floors, real_split

pytestmark = pytest.mark.needs_torch  # the floors use training.metrics and its datasets


def test_ground_plane_prior_is_the_floor_seen_by_a_level_or_tilted_camera():
    intr = Intrinsics(100.0, 100.0, 39.5, 29.5, 80, 60)
    level = floors.ground_plane_prior(intr, (60, 80), camera_height=1.0, wall=5.0)
    assert level.shape == (60, 80)
    # row v below the horizon sees the floor at h * fy / (v - cy), capped by the wall
    assert level[59, 0] == pytest.approx(100.0 / 29.5, rel=1e-5)
    assert level[40, 10] == 5.0  # the floor there is 100 / 10.5 = 9.5 m, behind the wall
    assert np.all(level[:30] == 5.0)
    tilted = floors.ground_plane_prior(intr, (60, 80), 1.0, 50.0, pitch_deg=30.0)
    # the principal ray of a camera pitched 30 degrees down meets the floor at z = h / sin 30
    assert 0.5 * (tilted[29, 0] + tilted[30, 0]) == pytest.approx(2.0, rel=0.02)
    assert np.all(np.diff(tilted[:, 0]) <= 0)  # lower rows are nearer


def test_floors_on_the_real_samples(shared_data, tmp_path):
    folders = real_split.build(str(shared_data), str(tmp_path / 'real'))
    assert sorted(os.listdir(os.path.join(folders['nyu_test'], 'rgb'))) == [
        f'{s}.png' for s in real_split.NYU_TEST]
    assert not set(real_split.NYU_TRAIN) & set(real_split.NYU_TEST)
    (spec,) = floors.real_sets(str(tmp_path / 'real'), str(shared_data), ['tum'])
    result = floors.evaluate_floors(spec)
    const = result['constant median-scaled']
    # one image: the set's median is the image's median, so scaling changes nothing
    assert 0.0 < const['abs_rel'] < 1.0 and 0.0 < const['d1'] < 1.0
    assert result['constant']['abs_rel'] == pytest.approx(const['abs_rel'], rel=1e-6)
    assert result['_constant_m']['images'] == 1
    assert set(result) >= {'ground_plane', 'ground_plane_tilted median-scaled'}
