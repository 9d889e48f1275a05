"""training/bench_zoo.py: one command times a zoo network through the torch and ONNX backends."""

import csv

import pytest
from training import bench_zoo

pytestmark = pytest.mark.needs_torch


def test_bench_zoo_times_checkpoint_and_onnx_and_shares_the_peak(tmp_path):
    out = tmp_path / 'out'
    code = bench_zoo.main(['--archs', 'eigen_multiscale', '--sizes', '32x64', '64x64',
                           '--iterations', '2', '--warmup', '0', '--peak-tflops', '1', '2',
                           '--output-dir', str(out)])
    assert code == 0
    rows = list(csv.DictReader(open(out / 'zoo.csv')))
    assert {(r['backend'], r['size'], r['status']) for r in rows} == {
        (backend, size, 'ok') for backend in ('torch', 'onnxruntime')
        for size in ('32x64', '64x64')}
    for row in rows:
        assert row['arch'] == 'eigen_multiscale'
        # Same network, same FLOPs whether counted by hooks or from the ONNX graph.
        assert float(row['gflops']) > 0
        assert float(row['peak_share']) == pytest.approx(float(row['tflops_s']), rel=1e-3)
    flops = {(r['backend'], r['size']): float(r['gflops']) for r in rows}
    # The ONNX graph's count agrees with one from forward hooks on the network itself.
    import torch
    from mono_depth_ros.tools.depth_bench import torch_flops
    from training.networks import build_model
    torch.manual_seed(0)
    hooks = torch_flops(build_model('eigen_multiscale').eval(), torch.zeros(1, 3, 64, 64))
    assert flops[('onnxruntime', '64x64')] == pytest.approx(hooks / 1e9, rel=0.02)
    assert flops[('torch', '64x64')] == pytest.approx(flops[('onnxruntime', '64x64')],
                                                      rel=0.02)
    assert '| arch | backend |' in (out / 'zoo.md').read_text()


def test_bench_zoo_rejects_an_unknown_architecture(tmp_path, capsys):
    assert bench_zoo.main(['--archs', 'nope', '--output-dir', str(tmp_path)]) == 1
    assert 'unknown architecture' in capsys.readouterr().err


def test_bench_zoo_summary_gives_params_flops_latency_training_and_ratios(tmp_path):
    out = tmp_path / 'out'
    code = bench_zoo.main(['--archs', 'eigen_multiscale', 'squeezenet_unet', '--sizes',
                           '32x64', '--backends', 'onnxruntime', '--iterations', '2',
                           '--warmup', '0', '--train-steps', '1', '--train-batch', '2',
                           '--reference', 'eigen_multiscale', '--output-dir', str(out)])
    assert code == 0
    rows = {r['arch']: r for r in csv.DictReader(open(out / 'zoo.csv'))}
    summary = {r['arch']: r for r in csv.DictReader(open(out / 'summary.csv'))}
    assert set(summary) == {'eigen_multiscale', 'squeezenet_unet'}
    from training.networks import build_model
    for arch, row in summary.items():
        params = sum(p.numel() for p in build_model(arch).parameters())
        assert float(row['params_m']) == pytest.approx(params / 1e6, rel=1e-3)
        assert float(row['gflops']) == pytest.approx(float(rows[arch]['gflops']), rel=1e-3)
        assert float(row['train_images_s']) > 0
    ref, other = summary['eigen_multiscale'], summary['squeezenet_unet']
    assert float(ref['latency_ratio']) == pytest.approx(1.0)
    assert float(other['latency_ratio']) == pytest.approx(
        float(other['ort_p50_ms']) / float(ref['ort_p50_ms']), rel=0.01)
    assert float(other['train_ratio']) == pytest.approx(
        float(other['train_images_s']) / float(ref['train_images_s']), rel=0.01)
    assert '## Summary at 32x64' in (out / 'zoo.md').read_text()
