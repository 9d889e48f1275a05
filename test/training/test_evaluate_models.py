"""evaluate.py runs what the node runs (an ONNX file too), and its data errors name the fix."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EVALUATE = os.path.join(REPO, 'training', 'evaluate.py')
BUNDLED = os.path.join(REPO, 'models', 'starter_indoor.onnx')


def evaluate(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, EVALUATE, *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def test_the_bundled_onnx_model_is_evaluated(tmp_path):
    done = evaluate('--checkpoint', BUNDLED, '--dataset', 'synthetic', '--num-images', '2',
                    '--output-dir', str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert '| model |' in done.stdout and 'abs_rel' in done.stdout
    assert (tmp_path / 'metrics.json').is_file()


@pytest.mark.parametrize('dataset, layout, words', [
    ('kitti', 'empty', 'object-benchmark folder (image_2/, velodyne/, calib/'),
    ('folder', 'pairs', 'give --intrinsics a preset (kinect_nyu, kitti)'),
])
def test_data_errors_name_the_fix(tmp_path, dataset, layout, words):
    if layout == 'pairs':  # rgb/ + depth/ but no intrinsics file
        for sub in ('rgb', 'depth'):
            (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / 'rgb' / 'a.png'), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(tmp_path / 'depth' / 'a.png'), np.ones((8, 8), np.uint16))
    done = evaluate('--checkpoint', BUNDLED, '--dataset', dataset, '--data-root',
                    str(tmp_path), '--output-dir', str(tmp_path / 'out'))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('evaluate: error:'), done.stderr
    assert words in lines[0]


def test_a_checkpoint_on_another_backend_is_refused(tmp_path):
    fake = tmp_path / 'model.pt'
    fake.write_bytes(b'not a checkpoint')
    done = evaluate('--checkpoint', str(fake), '--dataset', 'synthetic', '--backend',
                    'onnxruntime', '--num-images', '1')
    assert done.returncode == 1
    assert 'runs on the torch backend, not onnxruntime' in done.stderr
