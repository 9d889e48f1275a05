"""train.py with the self-supervised smoke config, evaluate.py, and the export the node runs."""

import json
import os
import subprocess
import sys

from mono_depth_ros.core.frame import FrameConfig, FrameProcessor
from mono_depth_ros.inference.base import create_backend
from mono_depth_ros.sim.synthetic import SyntheticStream
import numpy as np
import pytest
import torch
from training.checkpoint import load_checkpoint
from training.datasets.augment import normalize
from training.export_onnx import export_model
from training.networks import load_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ['data.synthetic.train_size=8', 'data.synthetic.val_size=2', 'train.epochs=1',
        'data.synthetic.frames_per_room=4', 'data.batch_size=4', 'train.progress=false',
        'train.tensorboard=false', 'data.synthetic.supersample=1']


@pytest.fixture(scope='module')
def selfsup_run(tmp_path_factory):
    """One tiny run of train.py on the smoke_selfsup config, as users type it."""
    run = tmp_path_factory.mktemp('selfsup') / 'run'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    args = [sys.executable, 'training/train.py', '--config',
            'training/configs/smoke_selfsup.yaml', '--output-dir', str(run)]
    for item in TINY:
        args += ['--set', item]
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return run


def test_train_then_evaluate_selfsup(selfsup_run, tmp_path):
    ck = load_checkpoint(str(selfsup_run / 'best.pt'))
    meta = ck['meta']
    # Trained from video alone: relative, and the pose network is in the checkpoint too.
    assert meta['output_mode'] == 'relative_inverse_depth'
    assert meta['output_scale'] == pytest.approx(1 / 0.1 - 1 / 10.0)
    assert meta['output_shift'] == pytest.approx(0.1)
    assert 'pose' in ck['task_modules'] and ck['config']['task'] == 'selfsup'
    assert any(k.startswith('encoder.conv1') for k in ck['task_modules']['pose'])
    with open(selfsup_run / 'val_log.csv', encoding='utf-8') as handle:
        header = handle.readline().strip().split(',')
    assert 'scale' in header and 'scale_std' in header and 'd1' in header
    out = tmp_path / 'eval'
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, 'training', 'evaluate.py'), '--checkpoint',
         str(selfsup_run / 'best.pt'), '--dataset', 'synthetic', '--num-images', '2',
         '--output-dir', str(out)], cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'median scaling' in result.stdout and '| model |' in result.stdout
    assert 'median scaling ratio: mean' in result.stdout
    summary = json.loads((out / 'metrics.json').read_text())
    model = summary['results']['model']
    assert summary['median_scaling'] is True
    assert model['scale'] > 0 and model['scale_std'] >= 0 and 0 <= model['d1'] <= 1


def test_export_runs_as_a_relative_model(selfsup_run, tmp_path, one_thread):
    net, meta = load_model(str(selfsup_run / 'best.pt'))
    path = str(tmp_path / 'selfsup.onnx')
    out_meta, checks = export_model(net, meta, path, log=lambda _m: None)
    assert checks and all(c['max_abs_error'] <= c['tolerance'] for c in checks)
    backend = create_backend('onnxruntime', path)
    assert backend.meta.output_mode == 'relative_inverse_depth' and not backend.meta.is_metric
    stream = SyntheticStream(meta.input_width, meta.input_height, seed=3)
    frame = stream.frame(0)
    processor = FrameProcessor(backend.meta, backend, FrameConfig(max_output_pixels=0))
    result = processor.run(frame.rgb, stream.intrinsics)
    # No metres without a scale source: only the depth-like relative map.
    assert result.depth is None and result.relative is not None
    # The exported graph is Monodepth2's: relative = 1 / (a sigmoid + b), as torch says.
    with torch.no_grad():
        x = torch.from_numpy(frame.rgb).permute(2, 0, 1)[None].float() / 255.0
        sigma = net(normalize(x, meta.mean, meta.std))[0, 0].numpy()
    expected = 1.0 / (meta.output_scale * sigma + meta.output_shift)
    np.testing.assert_allclose(result.relative, expected, rtol=1e-3)
    # A scale (and shift, in inverse depth) from a scale source gives metres.
    scaled = processor.run(frame.rgb, stream.intrinsics, scale=(0.5, 0.0))
    finite = np.isfinite(scaled.depth)
    assert finite.mean() > 0.5
    np.testing.assert_allclose(scaled.depth[finite], 2.0 * expected[finite], rtol=1e-3)
