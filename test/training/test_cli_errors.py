"""train.py and depth_bench refuse bad input in one line, never a traceback (issue 25)."""

import os
import subprocess
import sys
import tracemalloc

import cv2
import hostile_images as hostile
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train(tmp_path, capsys, *sets, resume=False):
    """Run train.py's main in this process (torch is imported once); return (code, stderr)."""
    from training.train import main
    args = ['--config', os.path.join(REPO, 'training', 'configs', 'smoke.yaml'),
            '--output-dir', str(tmp_path / 'run')] + ([] if resume else ['--no-resume'])
    for s in sets:
        args += ['--set', s]
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def _one_line(code, err, words):
    err = err.strip()
    assert code != 0
    assert 'Traceback' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if 'Warning' not in line]
    assert len(lines) == 1 and words in lines[0], err[-3000:]


@pytest.mark.parametrize('override, words', [
    ('data.height=abc', "data.height must be an integer, got 'abc'"),
    ('data.batch_size=.inf', 'data.batch_size must be an integer, got inf'),
    ('train.epochs=1e999', 'train.epochs must be an integer, got inf'),
    ('data.num_workers=-3', 'data.num_workers must be >= 0'),
    ('model.arch=nonesuch', "model.arch 'nonesuch' is unknown"),
    ('optim.lr=.nan', 'optim.lr must be a finite number'),
])
def test_bad_overrides_are_one_line(tmp_path, capsys, override, words):
    _one_line(*_train(tmp_path, capsys, override), words)


def _folder(root, case):
    (root / 'rgb').mkdir(parents=True)
    (root / 'depth').mkdir()
    (root / 'camera.yaml').write_text(
        'image_width: 64\nimage_height: 48\ncamera_matrix: {rows: 3, cols: 3, data: '
        '[50.0, 0.0, 31.5, 0.0, 50.0, 23.5, 0.0, 0.0, 1.0]}\n')
    rgb = np.full((48, 64, 3), 100, np.uint8)
    depth = np.full((48, 64), 2000, np.uint16)
    for i in range(4):
        cv2.imwrite(str(root / 'rgb' / f'{i}.png'), rgb)
        cv2.imwrite(str(root / 'depth' / f'{i}.png'), depth)
    if case == 'corrupt_png':
        data = bytearray((root / 'rgb' / '0.png').read_bytes())
        data[40:60] = bytes(20)
        (root / 'rgb' / '0.png').write_bytes(bytes(data))
    elif case == 'depth_size':
        cv2.imwrite(str(root / 'depth' / '0.png'), depth[:24, :32])
    elif case == 'depth_channels':
        cv2.imwrite(str(root / 'depth' / '0.png'), np.dstack([depth] * 3))
    elif case == 'png_bomb':
        (root / 'rgb' / '0.png').write_bytes(hostile.png_bomb(20000))


@pytest.mark.parametrize('case, words, workers', [
    ('corrupt_png', '0.png', 1),  # raised in a DataLoader worker process
    ('depth_size', '0.png', 0),
    ('depth_channels', 'channels', 0),
    ('png_bomb', '20000x20000', 0),
])
def test_bad_dataset_files_are_one_line(tmp_path, capsys, case, words, workers):
    root = tmp_path / 'data'
    _folder(root, case)
    tracemalloc.start()
    code, err = _train(tmp_path, capsys, 'data.dataset=folder', f'data.root={root}',
                       'train.epochs=1', f'data.num_workers={workers}', 'data.batch_size=2')
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    _one_line(code, err, words)
    if case == 'png_bomb':  # refused from its header: never the 1.2 GB decode
        assert 'max' in err and peak < 200 * 2 ** 20, peak


def test_a_pickled_last_pt_is_refused_in_one_line(tmp_path, capsys):
    import pickle
    run = tmp_path / 'run'
    run.mkdir()

    class Payload:
        def __reduce__(self):
            return (os.system, ('true',))
    with open(run / 'last.pt', 'wb') as handle:
        pickle.dump({'model': Payload()}, handle, protocol=2)  # torch.save's protocol
    _one_line(*_train(tmp_path, capsys, resume=True), 'refused')


def test_depth_bench_garbage_model_is_one_line(tmp_path):
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(os.urandom(4096))
    exe = os.path.join(os.path.dirname(sys.executable), 'depth_bench')
    out = subprocess.run([exe, '--model', str(garbage), '--pipeline-frames', '0'],
                         capture_output=True, text=True, timeout=120)
    _one_line(out.returncode, out.stderr, 'garbage.onnx')
