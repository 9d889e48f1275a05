"""Stacked ensemble: per-pixel weights, frozen bases, learning to trust the exact base, ONNX."""

import os
import shutil
import subprocess
import sys

from mono_depth_ros.core.model_meta import IMAGENET_MEAN, IMAGENET_STD, ModelMeta
import numpy as np
import pytest
import torch
from training.checkpoint import load_checkpoint
from training.config import load_config
from training.datasets.augment import normalize
from training.losses import silog_loss
from training.networks import build_model, load_model
from training.networks.base import DepthNet
from training.run import run_training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.usefixtures('one_thread')  # see conftest.py

TINY_BASES = [{'arch': 'squeezenet_unet', 'args': {'decoder_channels': [8, 8, 8]}},
              {'arch': 'eigen_multiscale', 'args': {'width': 0.125, 'hidden': 8}}]


def tiny(**args):
    torch.manual_seed(0)
    args = dict({'base_models': TINY_BASES, 'meta_width': 4, 'meta_levels': 2}, **args)
    return build_model('stacked_ensemble', **args)


class RedChannelDepth(DepthNet):
    """A fixed 'base learner' reading depth from the red channel: 1 + 4 * red, times a factor."""

    output = 'linear'

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor
        self.encoder = torch.nn.Identity()
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN[0]))
        self.register_buffer('std', torch.tensor(IMAGENET_STD[0]))

    def forward(self, x):
        red = x[:, :1] * self.std + self.mean
        return self.factor * (1.0 + 4.0 * red)


def red_depth_batch(gen, n=4, h=32, w=32):
    """Return (normalised images, depth): depth is encoded in red, a smooth random field."""
    coarse = torch.rand(n, 1, 4, 4, generator=gen)
    red = torch.nn.functional.interpolate(coarse, size=(h, w), mode='bilinear',
                                          align_corners=False)
    rgb = torch.cat([red, torch.rand(n, 2, h, w, generator=gen)], dim=1)
    return normalize(rgb, IMAGENET_MEAN, IMAGENET_STD), 1.0 + 4.0 * red


def abs_rel(pred, gt):
    return float(((pred - gt).abs() / gt).mean())


def test_untrained_ensemble_is_the_simple_average_and_weights_sum_to_one():
    model = tiny(inputs='rgb+d').eval()
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        parts = model.forward_parts(x)
        average = model.variants()['simple average'](x)
    assert torch.allclose(parts['depth'], average, atol=1e-6)
    # With a trained-looking (random) logit layer the weights are still a distribution.
    torch.nn.init.normal_(model.decoder.logits.weight, std=1.0)
    with torch.no_grad():
        parts = model.forward_parts(x)
    w = parts['weights']
    assert w.shape == (2, 2, 40, 56) and float(w.min()) >= 0
    assert torch.allclose(w.sum(dim=1), torch.ones(2, 40, 56), atol=1e-6)
    assert float(w.std()) > 1e-3  # not uniform any more
    mixed = (w * parts['bases']).sum(dim=1, keepdim=True)
    assert torch.allclose(parts['depth'], mixed, atol=1e-6)
    lo, hi = parts['bases'].min(dim=1, keepdim=True)[0], parts['bases'].max(dim=1, keepdim=True)[0]
    assert bool((parts['depth'] >= lo - 1e-6).all() and (parts['depth'] <= hi + 1e-6).all())


def test_modes_are_validated():
    with pytest.raises(ValueError, match='inputs'):
        tiny(inputs='depth')
    with pytest.raises(ValueError, match='bases'):
        tiny(bases='half')
    with pytest.raises(ValueError, match='schedule'):
        tiny(schedule='later')
    with pytest.raises(ValueError, match='at least 2'):
        build_model('stacked_ensemble', base_models=TINY_BASES[:1])
    with pytest.raises(ValueError, match='unknown key'):
        build_model('stacked_ensemble', base_models=[dict(TINY_BASES[0], weights='x')] * 2)


def _grads(module):
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize('schedule', ['separate', 'simultaneous'])
def test_frozen_bases_get_no_gradient_from_the_ensemble_loss(schedule):
    model = tiny(bases='frozen', schedule=schedule).train()
    x, gt = torch.randn(2, 3, 32, 32), torch.rand(2, 1, 32, 32) * 4 + 1
    torch.nn.init.normal_(model.decoder.logits.weight, std=0.5)
    parts = model.forward_parts(x)
    silog_loss(parts['depth'], gt, gt > 0, lam=0.85, variant='bts').backward()
    assert all(g is None or not bool(g.any()) for g in _grads(model.encoder))
    assert any(g is not None and bool(g.any()) for g in _grads(model.decoder))
    if schedule == 'separate':
        assert not any(p.requires_grad for p in model.encoder.parameters())
        assert all(not m.training for m in model.encoder.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))
    else:  # simultaneous: the bases still learn from their own losses
        silog_loss(parts['unclamped'][:, :1], gt, gt > 0).backward()
        assert any(g is not None and bool(g.any()) for g in _grads(model.encoder[0]))


def test_finetuned_bases_get_the_ensemble_gradient():
    model = tiny(bases='finetune').train()
    x, gt = torch.randn(2, 3, 32, 32), torch.rand(2, 1, 32, 32) * 4 + 1
    silog_loss(model(x), gt, gt > 0, lam=0.85, variant='bts').backward()
    for base in model.encoder:
        assert any(g is not None and bool(g.any()) for g in _grads(base))


@pytest.mark.parametrize('inputs', ['d', 'rgb+d'])
def test_meta_learner_learns_to_trust_the_exact_base(inputs):
    model = tiny(inputs=inputs, bases='frozen')
    model.encoder[0] = RedChannelDepth(1.0)   # exact
    model.encoder[1] = RedChannelDepth(2.5)   # 150% too far everywhere
    model.freeze_encoder()
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.meta_parameters(), lr=0.01)
    model.train()
    for _ in range(60):
        x, gt = red_depth_batch(gen)
        loss = silog_loss(model(x), gt, gt > 0, lam=0.85, variant='bts')
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, gt = red_depth_batch(torch.Generator().manual_seed(99), n=8)
    with torch.no_grad():
        parts = model.forward_parts(x)
        views = {name: view(x) for name, view in model.variants().items()}
    exact, bad = abs_rel(views['base 0 (squeezenet_unet)'], gt), abs_rel(
        views['base 1 (eigen_multiscale)'], gt)
    assert exact < 1e-5 and bad > 1.0
    assert abs_rel(views['simple average'], gt) > 0.5
    ensemble = abs_rel(parts['depth'], gt)
    assert ensemble < 0.03, ensemble
    assert float(parts['weights'][:, 0].mean()) > 0.98


def test_onnx_export_matches_pytorch_and_runs_in_the_pipeline(tmp_path):
    import onnxruntime as ort
    from mono_depth_ros.core.frame import FrameConfig, FrameProcessor, Preprocessor
    from mono_depth_ros.core.intrinsics import Intrinsics
    from mono_depth_ros.inference.base import create_backend
    from training.export_onnx import export_model
    model = tiny(inputs='rgb+d').eval()
    torch.nn.init.normal_(model.decoder.logits.weight, std=0.5)
    meta = ModelMeta(arch='stacked_ensemble', arch_args={'base_models': TINY_BASES},
                     input_height=48, input_width=64, **model.output_spec(0.1, 10.0))
    assert meta.output_mode == 'metric' and meta.output_scale == 1.0
    path = str(tmp_path / 'ensemble.onnx')
    out_meta, records = export_model(model, meta, path, log=lambda _m: None)
    assert records and all(r['max_abs_error'] <= r['tolerance'] for r in records)
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    got = ort.InferenceSession(path, providers=['CPUExecutionProvider']).run(
        None, {'image': Preprocessor(out_meta)(rgb)})[0]
    float_meta = ModelMeta(arch='x', input_height=48, input_width=64, input_layout='NCHW',
                           input_dtype='float32', normalize_in_graph=False)
    with torch.no_grad():
        want = model(torch.from_numpy(Preprocessor(float_meta)(rgb))).numpy()
    assert float(np.abs(got - want).max()) < 1e-4 + 1e-3 * float(np.abs(want).max())
    backend = create_backend('onnxruntime', path)
    assert backend.meta.arch == 'stacked_ensemble'
    result = FrameProcessor(backend.meta, backend, FrameConfig()).run(
        rgb, Intrinsics(60.0, 60.0, 32.0, 24.0, 64, 48))
    assert result.depth.shape == (48, 64) and np.isfinite(result.depth).mean() > 0.9


def test_separate_schedule_trains_bases_then_meta_and_evaluates_side_by_side(tmp_path):
    overrides = [
        'device=cpu', 'task=ensemble', 'model.arch=stacked_ensemble',
        'model.args={base_models: [{arch: squeezenet_unet, args: {decoder_channels: [8, 8, 8]},'
        ' epochs: 1}, {arch: eigen_multiscale, args: {width: 0.125, hidden: 8}, epochs: 1}],'
        ' meta_width: 4, meta_levels: 2, inputs: rgb+d, bases: frozen, schedule: separate}',
        'data.dataset=synthetic', 'data.height=32', 'data.width=48', 'data.num_workers=0',
        'data.synthetic.train_size=8', 'data.synthetic.val_size=2', 'data.batch_size=4',
        'augment.enabled=false', 'train.progress=false', 'train.tensorboard=false',
        'train.epochs=1', 'loss.name=silog', 'loss.args={lam: 0.85, variant: bts}']
    config = load_config(None, overrides)
    out = tmp_path / 'run'
    summary = run_training(config, str(out), log=lambda _m: None)
    assert summary['steps'] == 2
    for i, arch in enumerate(('squeezenet_unet', 'eigen_multiscale')):
        assert (out / f'base_{i}_{arch}' / 'best.pt').is_file()
    ck = load_checkpoint(str(out / 'best.pt'))
    specs = ck['meta']['arch_args']['base_models']
    assert [s['checkpoint'] for s in specs] == ['', '']  # the ensemble holds the weights
    # The bases' own files are not needed any more.
    for i, arch in enumerate(('squeezenet_unet', 'eigen_multiscale')):
        shutil.rmtree(out / f'base_{i}_{arch}')
    model, meta = load_model(str(out / 'best.pt'))
    assert meta.arch == 'stacked_ensemble' and model.bases == 'frozen'
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, 'training', 'evaluate.py'), '--checkpoint',
         str(out / 'best.pt'), '--dataset', 'synthetic', '--num-images', '2'],
        env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ('base 0 (squeezenet_unet)', 'base 1 (eigen_multiscale)', 'simple average',
                 'ensemble', 'params', 'ms'):
        assert name in result.stdout, name


def test_parameter_counts_of_the_variants():
    from training.networks.ensemble import count_parameters
    model = tiny()
    views = model.variants()
    bases = [count_parameters(b) for b in model.encoder]
    assert [count_parameters(views[n]) for n in views if n.startswith('base ')] == bases
    assert count_parameters(views['simple average']) == sum(bases)
    assert count_parameters(views['ensemble']) == sum(bases) + count_parameters(model.decoder)


def test_grid_script_prints_the_mode_table(tmp_path, capsys):
    from training import ensemble_grid as grid
    out = tmp_path / 'grid'
    assert grid.main(['--train-size', '8', '--val-size', '2', '--eval-size', '2',
                      '--base-epochs', '1', '--meta-epochs', '1', '--inputs', 'rgb+d',
                      '--bases', 'frozen', '--schedules', 'separate', 'simultaneous',
                      '--output-dir', str(out)]) == 0
    import csv
    rows = list(csv.DictReader(open(out / 'grid.csv')))
    assert {(r['inputs'], r['schedule']) for r in rows} == {
        ('rgb+d', s) for s in ('separate', 'simultaneous')}
    for row in rows:
        assert row['diverged'] == '0' and 0 < float(row['abs_rel']) < 10
        assert float(row['gain_vs_average']) == pytest.approx(
            float(row['average_abs_rel']) - float(row['abs_rel']), abs=2e-3)
    assert '| inputs | bases | schedule | abs_rel |' in capsys.readouterr().out


def test_bench_script_times_the_ensemble_against_its_bases(tmp_path):
    from training.checkpoint import save_checkpoint
    from training import bench_ensemble as bench
    model = tiny().eval()
    meta = ModelMeta(arch='stacked_ensemble', arch_args={
        'base_models': TINY_BASES, 'meta_width': 4, 'meta_levels': 2},
        input_height=32, input_width=48, **model.output_spec(0.1, 10.0))
    path = str(tmp_path / 'ensemble.pt')
    save_checkpoint(path, model, meta)
    out = tmp_path / 'bench'
    assert bench.main(['--checkpoint', path, '--iterations', '2', '--pipeline-frames', '2',
                       '--rounds', '1', '--output-dir', str(out)]) == 0
    import csv
    rows = {r['model']: r for r in csv.DictReader(open(out / 'ensemble.csv'))}
    assert set(rows) == {'base 0 (squeezenet_unet)', 'base 1 (eigen_multiscale)',
                         'simple average', 'ensemble'}
    base_ratios = [float(rows[n]['ort_ratio']) for n in rows if n.startswith('base ')]
    assert min(base_ratios) == pytest.approx(1.0)
    assert all(float(r['ort_p50_ms']) > 0 and float(r['pipeline_p50_ms']) > 0
               for r in rows.values())
