"""Depth metrics: hand-computed values, named crops on the right pixels, ANDed masks."""

import math

import cv2
import numpy as np
import pytest
from training.metrics import (average_metrics, compute_depth_metrics, crop_mask, EIGEN_CROP,
                              EIGEN_CROP_KITTI, GARG_CROP, METRIC_NAMES, NoValidPixelsError)


def test_all_correct_prediction():
    gt = np.linspace(0.5, 9.5, 48).reshape(6, 8)
    m = compute_depth_metrics(gt.copy(), gt, max_depth=10.0)
    assert m['d1'] == 1.0 and m['d2'] == 1.0 and m['d3'] == 1.0
    for name in ('abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'log10', 'silog'):
        assert m[name] == pytest.approx(0.0, abs=1e-12), name
    assert set(METRIC_NAMES) <= set(m) and m['coverage'] == 1.0


def test_hand_computed_values():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    pred = np.array([[1.0, 1.0], [4.0, 16.0]])
    m = compute_depth_metrics(pred, gt, max_depth=80.0)
    ln2 = math.log(2.0)
    assert m['abs_rel'] == pytest.approx((0 + 0.5 + 0 + 1.0) / 4)
    assert m['sq_rel'] == pytest.approx((0 + 1 / 2 + 0 + 64 / 8) / 4)
    assert m['rmse'] == pytest.approx(math.sqrt((1 + 64) / 4))
    assert m['rmse_log'] == pytest.approx(ln2 / math.sqrt(2))
    assert m['log10'] == pytest.approx(math.log10(2) / 2)
    # log errors 0, -ln2, 0, ln2: mean 0, so silog = 100 * sqrt(mean d^2).
    assert m['silog'] == pytest.approx(100 * ln2 / math.sqrt(2))
    # ratios 1, 2, 1, 2: 2 > 1.25^3 = 1.953.
    assert (m['d1'], m['d2'], m['d3']) == (0.5, 0.5, 0.5)


def test_median_scaling_and_clamping():
    gt = np.array([[1.0, 2.0], [3.0, 4.0]])
    m = compute_depth_metrics(gt * 0.5, gt, median_scaling=True)
    assert m['scale'] == pytest.approx(2.0) and m['abs_rel'] == pytest.approx(0.0)
    assert 'scale' not in compute_depth_metrics(gt, gt)
    far = compute_depth_metrics(np.full((2, 2), 100.0), np.full((2, 2), 10.0), max_depth=20.0)
    assert far['abs_rel'] == pytest.approx(1.0)    # 100 clamped to 20
    near = compute_depth_metrics(np.full((2, 2), -5.0), np.full((2, 2), 1.0), min_depth=0.5)
    assert near['abs_rel'] == pytest.approx(0.5)   # -5 clamped to 0.5


def test_masks_are_anded():
    gt = np.full((4, 4), 2.0)
    pred = np.full((4, 4), 2.0)
    user = np.ones((4, 4), bool)
    user[0, 0] = False
    pred[0, 0] = 50.0                 # excluded by the user mask only
    gt[0, 1] = 90.0                   # excluded by the depth range only
    pred[0, 1] = 2.0
    gt[0, 2] = np.nan                 # excluded as non-finite ground truth
    crop = np.ones((4, 4), bool)
    crop[3, 3] = False
    pred[3, 3] = 0.01                 # excluded by the crop only
    m = compute_depth_metrics(pred, gt, mask=user, max_depth=80.0, crop=crop)
    assert m['abs_rel'] == 0.0 and m['d1'] == 1.0
    # Dropping any one of them lets its bad pixel in (an OR of masks would not).
    assert compute_depth_metrics(pred, gt, max_depth=80.0, crop=crop)['abs_rel'] > 0
    assert compute_depth_metrics(pred, gt, mask=user, max_depth=80.0)['abs_rel'] > 0
    assert compute_depth_metrics(pred, gt, mask=user, max_depth=100.0,
                                 crop=crop)['abs_rel'] > 0


def test_non_finite_predictions_reduce_coverage():
    gt = np.full((2, 4), 3.0)
    pred = gt.copy()
    pred[0, :2] = np.nan
    m = compute_depth_metrics(pred, gt)
    assert m['coverage'] == pytest.approx(0.75) and m['abs_rel'] == 0.0


def test_no_valid_pixels_and_bad_inputs():
    with pytest.raises(NoValidPixelsError):
        compute_depth_metrics(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match='equal'):
        compute_depth_metrics(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match='mask'):
        compute_depth_metrics(np.ones((2, 2)), np.ones((2, 2)), mask=np.ones((2, 2)))
    with pytest.raises(ValueError, match='unknown crop'):
        crop_mask('nyu', (4, 4))


def test_eigen_crop_nyu_pixels():
    mask = EIGEN_CROP((480, 640))
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (45, 470, 41, 600)
    assert mask.sum() == 426 * 560
    assert EIGEN_CROP.bounds((240, 320)) == (22, 235, 20, 300)


def test_kitti_crops_pixels():
    assert GARG_CROP.bounds((375, 1242)) == (153, 371, 44, 1197)
    assert EIGEN_CROP_KITTI.bounds((375, 1242)) == (124, 342, 44, 1197)
    mask = crop_mask('garg', (375, 1242))
    assert mask[153, 44] and mask[370, 1196]
    assert not mask[152, 44] and not mask[371, 600] and not mask[200, 43]
    assert not mask[200, 1197]


def test_average_is_per_image():
    a = compute_depth_metrics(np.full((1, 2), 2.0), np.full((1, 2), 1.0))      # abs_rel 1
    b = compute_depth_metrics(np.full((10, 10), 1.0), np.full((10, 10), 1.0))  # abs_rel 0
    avg = average_metrics([a, b])
    assert avg['abs_rel'] == pytest.approx(0.5)     # pooled pixels would give 2/102
    with pytest.raises(ValueError):
        average_metrics([])


def test_real_nyu_depth_with_the_eigen_crop(shared_data):
    gt = cv2.imread(str(shared_data / 'nyu' / 'depth' / '0003.png'),
                    cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000.0
    assert gt.shape == (480, 640)
    m = compute_depth_metrics(gt * 1.1, gt, min_depth=1e-3, max_depth=10.0, crop='eigen')
    assert m['abs_rel'] == pytest.approx(0.1, abs=1e-6)
    assert m['d1'] == 1.0 and m['rmse'] > 0
    ratio = compute_depth_metrics(gt * 0.8, gt, max_depth=10.0, crop=EIGEN_CROP,
                                  median_scaling=True)
    assert ratio['scale'] == pytest.approx(1.25) and ratio['abs_rel'] < 1e-9
