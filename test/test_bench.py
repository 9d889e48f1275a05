"""depth_bench: tables for every backend, skips with reasons, FLOPs, the per-frame pipeline."""

import csv

from export_helpers import export_tiny
from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from mono_depth_ros.tools.depth_bench import (BenchConfig, BenchError, main, onnx_flops,
                                              parse_size, pipeline_frames, run, run_pipeline_bench,
                                              STAGES, torch_flops)
from onnx_models import brightness_model
import pytest


def test_bench_writes_markdown_and_csv(tmp_path, capsys):
    model = str(tmp_path / 'm.onnx')
    brightness_model(model, height=24, width=32)
    out = tmp_path / 'out'
    code = main(['--model', model, '--backends', 'onnxruntime', 'torch', '--precisions', 'fp32',
                 'fp16', '--sizes', '24x32',
                 '48x64', '--iterations', '3', '--warmup', '1', '--pipeline-frames', '2',
                 '--output-dir', str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert '| backend | precision | size |' in printed
    rows = list(csv.DictReader(open(out / 'bench.csv')))
    by_key = {(r['backend'], r['size']): r for r in rows if r['precision'] == 'fp32'}
    ok = by_key[('onnxruntime', '24x32')]
    assert ok['status'] == 'ok'
    assert 0 < float(ok['p50_ms']) <= float(ok['p95_ms'])
    assert float(ok['fps']) == pytest.approx(1000.0 / float(ok['p50_ms']), rel=0.01)
    assert 'fixed 24x32 input' in by_key[('onnxruntime', '48x64')]['status']
    fp16 = [r for r in rows if r['backend'] == 'onnxruntime' and r['precision'] == 'fp16']
    assert [r['status'] for r in fp16] == ['skipped: onnxruntime runs this model in fp32'] * 2
    assert by_key[('torch', '24x32')]['status'].startswith('skipped: the torch backend runs')
    markdown = (out / 'bench.md').read_text()
    assert '## Per-frame pipeline' in markdown
    stages = [r['stage'] for r in csv.DictReader(open(out / 'pipeline.csv'))]
    assert stages == list(STAGES) + ['total']


def test_bench_torchscript_and_dynamic_onnx_at_two_sizes(tmp_path):
    onnx_path, ts_path, _meta, _model = export_tiny(tmp_path, dynamic=True)
    for model in (onnx_path, ts_path):
        result = run(BenchConfig(model=model, backends=['onnxruntime', 'torch'],
                                 sizes=[(32, 48), (64, 96)], iterations=2, warmup=0,
                                 pipeline_frames=0, trust_model_code=True),
                     log=lambda _m: None)
        ok = [r for r in result['rows'] if r['status'] == 'ok']
        assert sorted(r['size'] for r in ok) == ['32x48', '64x96']
        if model == onnx_path:
            flops = {r['size']: r['gflops'] for r in ok}
            assert flops['64x96'] == pytest.approx(4 * flops['32x48'])
            assert all(r['tflops_s'] > 0 for r in ok)


def test_cuda_graph_rows_are_skipped_on_cpu(tmp_path):
    _onnx, ts_path, _meta, _model = export_tiny(tmp_path)
    result = run(BenchConfig(model=ts_path, backends=['torch'], cuda_graphs=[False, True],
                             iterations=1, warmup=0, pipeline_frames=0, trust_model_code=True),
                 log=lambda _m: None)
    statuses = {r['cuda_graphs']: r['status'] for r in result['rows']}
    assert statuses[False] == 'ok'
    assert 'CUDA graphs need torch on CUDA' in statuses[True] or statuses[True] == 'ok'


def test_onnx_flops_counts_conv_and_transpose(tmp_path):
    onnx_path, _ts, _meta, model = export_tiny(tmp_path, torchscript=False)
    h, w = 32, 48
    # down: 8 out ch at h/2 x w/2, 3x3x3; mid: 8 at h/2 x w/2, 4x3x3 (groups 2);
    # up (transpose): input 8 ch at h/2 x w/2, 4 x 2x2 per input; head: 1 at h x w, 4x3x3.
    macs = (8 * 16 * 24 * 27) + (8 * 16 * 24 * 36) + (8 * 16 * 24 * 16) + (h * w * 36)
    assert onnx_flops(onnx_path, h, w) == 2 * macs
    import torch
    assert torch_flops(model, torch.zeros(1, 3, h, w)) == 2 * macs


def test_pipeline_stages_on_synthetic_frames(tmp_path):
    model = str(tmp_path / 'm.onnx')
    brightness_model(model, height=24, width=32)
    frames = pipeline_frames(2, shared_data=str(tmp_path / 'absent'))
    assert [f[2] for f in frames] == ['synthetic', 'synthetic']
    rows = run_pipeline_bench(OnnxRuntimeBackend.from_file(model), frames)
    assert [r['stage'] for r in rows] == list(STAGES) + ['total']
    assert all(r['p50_ms'] >= 0 for r in rows)
    total = rows[-1]['p50_ms']
    assert total >= max(r['p50_ms'] for r in rows[:-1]) * 0.5


def test_pipeline_reads_real_images(shared_data):
    frames = pipeline_frames(2, shared_data=str(shared_data))
    assert frames[0][2] == 'nyu' and frames[0][0].shape == (480, 640, 3)
    assert frames[0][1].fx == pytest.approx(518.8579, rel=1e-3)


def test_bad_arguments():
    with pytest.raises(BenchError):
        parse_size('320')
    with pytest.raises(BenchError):
        parse_size('0x10')
    assert parse_size('240x320') == (240, 320)
    assert main(['--model', '/nonexistent.onnx', '--backends', 'onnxruntime']) == 1
    with pytest.raises(SystemExit):
        main(['--model', 'x.onnx', '--sizes', 'big'])
