"""scripts/bench_zoo.py: one command times a zoo network through the torch and ONNX backends."""

import csv
import importlib.util
import os

import pytest

pytestmark = pytest.mark.needs_torch
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script():
    spec = importlib.util.spec_from_file_location(
        'bench_zoo', os.path.join(REPO, 'scripts', 'bench_zoo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_zoo_times_checkpoint_and_onnx_and_shares_the_peak(tmp_path):
    bench_zoo = _script()
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
    assert flops[('torch', '64x64')] == pytest.approx(flops[('onnxruntime', '64x64')],
                                                      rel=0.02)
    assert '| arch | backend |' in (out / 'zoo.md').read_text()


def test_bench_zoo_rejects_an_unknown_architecture(tmp_path, capsys):
    bench_zoo = _script()
    assert bench_zoo.main(['--archs', 'nope', '--output-dir', str(tmp_path)]) == 1
    assert 'unknown architecture' in capsys.readouterr().err
