"""Losses: hand-computed values, masks that really exclude pixels, empty masks."""

import math

import pytest
import torch
from training.layers import gradient_masks, image_gradients, ssim
from training.losses import berhu_loss, seeds_loss, silog_loss


def t(values):
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


def test_berhu_hand_values():
    pred, gt = t([1.0, 2.0, 3.0, 4.0, 50.0]), t([1.0, 1.0, 1.0, 1.0, 1.0])
    mask = t([1, 1, 1, 1, 0]).bool()
    # r = 0, 1, 2, 3 (the 49 is masked out), c = 0.2 * 3 = 0.6.
    expected = (0.0 + (1 + 0.36) / 1.2 + (4 + 0.36) / 1.2 + (9 + 0.36) / 1.2) / 4
    assert float(berhu_loss(pred, gt, mask)) == pytest.approx(expected)
    small = t([1.1, 1.0])
    # both residuals below c: plain L1.
    assert float(berhu_loss(small, t([1.0, 1.0]), torch.ones_like(small).bool(),
                            threshold=1.0)) == pytest.approx(0.05)


def test_silog_hand_values_and_scale_invariance():
    pred, gt = t([2.0, 1.0]), t([1.0, 1.0])
    mask = torch.ones_like(gt).bool()
    ln2 = math.log(2.0)
    # mean d^2 = ln2^2 / 2, mean d = ln2 / 2: 0.5 ln2^2 - 0.5 * 0.25 ln2^2.
    assert float(silog_loss(pred, gt, mask)) == pytest.approx(0.375 * ln2 ** 2)
    bts = silog_loss(pred, gt, mask, lam=0.85, variant='bts')
    assert float(bts) == pytest.approx(10 * math.sqrt(0.5 * ln2 ** 2 - 0.85 * 0.25 * ln2 ** 2),
                                       rel=1e-4)
    gt2 = t([1.0, 2.0, 5.0])
    assert float(silog_loss(3.0 * gt2, gt2, torch.ones_like(gt2).bool(), lam=1.0)) == \
        pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match='variant'):
        silog_loss(pred, gt, mask, variant='x')


def test_ssim_of_constants_and_of_identical_images():
    a = torch.full((1, 1, 6, 6), 2.0, dtype=torch.float64)
    b = torch.full((1, 1, 6, 6), 3.0, dtype=torch.float64)
    c1 = (0.01 * 10.0) ** 2
    expected = (2 * 2 * 3 + c1) / (4 + 9 + c1)
    assert torch.allclose(ssim(a, b, 10.0, window='box'), torch.full_like(a, expected))
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    assert torch.allclose(ssim(x, x, 1.0), torch.ones_like(x))


def test_gradients_and_masks():
    x = t([1.0, 4.0, 9.0]).view(1, 1, 1, 3)
    dx, dy = image_gradients(x)
    assert dx.flatten().tolist() == [3.0, 5.0] and dy.numel() == 0
    mdx, _ = gradient_masks(torch.tensor([True, False, True]).view(1, 1, 1, 3))
    assert mdx.flatten().tolist() == [False, False]


def test_seeds_loss_terms_by_hand():
    gt = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    pred = gt.clone()
    pred[0, 0, 1, 1] = 2.0
    mask = torch.ones_like(gt).bool()
    terms = seeds_loss(pred, gt, mask, return_terms=True)
    assert float(terms['l1']) == pytest.approx(1.0 / 16)
    # The spike makes 2 of the 12 horizontal and 2 of the 12 vertical differences 1.
    assert float(terms['gradient']) == pytest.approx(2 / 12 + 2 / 12)
    expected_ssim = ((1 - ssim(pred, gt, 10.0)) / 2).clamp(0, 1).mean()
    assert float(terms['ssim']) == pytest.approx(float(expected_ssim))
    assert float(terms['loss']) == pytest.approx(
        0.1 / 16 + 1 / 3 + float(expected_ssim))
    # A constant offset: L1 = 1, gradients equal.
    ramp = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4) + 1
    terms = seeds_loss(ramp + 1, ramp, mask, return_terms=True)
    assert float(terms['l1']) == pytest.approx(1.0) and float(terms['gradient']) == 0.0
    same = seeds_loss(ramp, ramp, mask, return_terms=True)
    assert float(same['loss']) == pytest.approx(0.0, abs=1e-9)


def test_seeds_loss_inverse_depth():
    gt = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    terms = seeds_loss(2 * gt, gt, gt.bool(), inverse=True, return_terms=True)
    assert float(terms['l1']) == pytest.approx(0.5)


@pytest.mark.parametrize('loss', [seeds_loss, silog_loss, berhu_loss])
def test_masked_pixels_do_not_count(loss):
    torch.manual_seed(0)
    gt = torch.rand(2, 1, 12, 12, dtype=torch.float64) + 1.0
    pred = (gt + 0.3 * torch.rand_like(gt)).requires_grad_(True)
    mask = torch.ones_like(gt).bool()
    mask[:, :, :, :4] = False
    base = loss(pred, gt, mask)
    base.backward()
    assert float(pred.grad[mask.logical_not()].abs().max()) == 0.0
    assert float(pred.grad[mask].abs().max()) > 0.0
    garbage = pred.detach().clone()
    garbage[mask.logical_not()] = 1e6
    if loss is seeds_loss:
        garbage_gt = gt.clone()
        garbage_gt[mask.logical_not()] = 0.0
    else:
        garbage_gt = gt
    # The seeds' loss fills invalid pixels before SSIM, so even its windows see no garbage.
    assert float(loss(garbage, garbage_gt, mask)) == pytest.approx(float(base.detach()),
                                                                   abs=1e-12)


@pytest.mark.parametrize('loss', [seeds_loss, silog_loss, berhu_loss])
def test_empty_mask_gives_zero_with_a_graph(loss):
    pred = torch.rand(1, 1, 8, 8, requires_grad=True)
    value = loss(pred, torch.rand(1, 1, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.bool))
    value.backward()
    assert float(value.detach()) == 0.0 and float(pred.grad.abs().sum()) == 0.0


def test_bad_inputs_are_named():
    x = torch.ones(1, 1, 4, 4)
    with pytest.raises(ValueError, match='shape'):
        berhu_loss(x, torch.ones(1, 1, 4, 5), None)
    with pytest.raises(TypeError, match='bool'):
        silog_loss(x, x, torch.ones(1, 1, 4, 4))
