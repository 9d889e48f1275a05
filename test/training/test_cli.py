"""The two commands users type: train.py with smoke.yaml, then evaluate.py on synthetic data."""

import csv
import json
import os
import subprocess
import sys

import cv2
from training.evaluate import MIN_PANEL_WIDTH
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FEW_STEPS = ['--set', 'data.synthetic.train_size=8', '--set', 'data.synthetic.val_size=2',
             '--set', 'train.epochs=1', '--set', 'data.height=32', '--set', 'data.width=48',
             '--set', 'train.progress=false']


def test_train_then_evaluate(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    run = tmp_path / 'run'
    # As a module from the repository root ...
    subprocess.run([sys.executable, '-m', 'training.train', '--config',
                    'training/configs/smoke.yaml', '--output-dir', str(run)] + FEW_STEPS,
                   cwd=REPO, env=env, check=True, capture_output=True, timeout=180)
    for name in ('config.yaml', 'git_revision.txt', 'last.pt', 'best.pt', 'train_log.csv',
                 'val_log.csv'):
        assert (run / name).is_file(), name
    assert os.listdir(run / 'tensorboard')
    resolved = yaml.safe_load((run / 'config.yaml').read_text())
    assert resolved['data']['synthetic']['train_size'] == 8 and resolved['loss']['name']
    # ... and as a script from elsewhere.
    out = tmp_path / 'eval'
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, 'training', 'evaluate.py'), '--checkpoint',
         str(run / 'best.pt'), '--dataset', 'synthetic', '--num-images', '3',
         '--output-dir', str(out)], cwd=tmp_path, env=env, check=True, capture_output=True,
        text=True, timeout=180)
    assert '| model |' in result.stdout and '| constant' in result.stdout
    assert 'abs_rel' in result.stdout and 'd3' in result.stdout
    with open(out / 'per_image.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and float(rows[0]['abs_rel']) >= 0
    grid = cv2.imread(str(out / 'grid.png'))
    # Four panels per row, one row per image; 48x32 panels are enlarged (nearest) to stay
    # legible, by the whole factor that makes them at least MIN_PANEL_WIDTH wide.
    factor = -(-MIN_PANEL_WIDTH // 48)
    assert factor > 1
    assert grid.shape[1] == 4 * 48 * factor and grid.shape[0] == 3 * 32 * factor
    assert cv2.imread(str(out / 'error_histogram.png')) is not None
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['images'] == 3 and 'model' in summary['results']


def test_bad_override_is_a_clear_error():
    result = subprocess.run([sys.executable, 'training/train.py', '--set', 'optim.lrr=1'],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown key 'optim.lrr'" in result.stderr
