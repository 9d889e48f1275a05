"""evaluate.py and export_onnx.py refuse a malicious or broken model file in one line, exit 1."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Payload:
    """Pickles as a call to os.system: what a hostile checkpoint would run if unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


@pytest.fixture(scope='module')
def bad_checkpoints(tmp_path_factory):
    import torch
    folder = tmp_path_factory.mktemp('checkpoints')
    marker = folder / 'payload_ran'
    evil = folder / 'evil.pt'
    torch.save({'format': 'mono_depth_ros', 'model': _Payload(marker)}, str(evil))
    garbage = folder / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint at all')
    import onnx
    from onnx_models import brightness_model
    bad_meta = folder / 'bad_meta.onnx'
    brightness_model(bad_meta, 24, 32)
    model = onnx.load(str(bad_meta))
    next(e for e in model.metadata_props if e.key == 'mono_depth.mean').value = '"abc"'
    onnx.save(model, str(bad_meta))
    return {'evil': evil, 'garbage': garbage, 'bad_meta': bad_meta, 'marker': marker}


EVALUATE = ['training/evaluate.py', '--dataset', 'synthetic', '--num-images', '1']
EXPORT = ['training/export_onnx.py', '--output', 'OUT']


@pytest.mark.parametrize('command, which', [(EVALUATE, 'evil'), (EXPORT, 'evil'),
                                            (EXPORT, 'garbage'), (EVALUATE, 'bad_meta')],
                         ids=['evaluate-evil', 'export-evil', 'export-garbage',
                              'evaluate-bad-metadata'])
def test_refused_checkpoint_gives_one_line_and_exit_1(bad_checkpoints, tmp_path, which,
                                                      command):
    args = [a if a != 'OUT' else str(tmp_path / 'out.onnx') for a in command]
    out = subprocess.run([sys.executable, *args, '--checkpoint', str(bad_checkpoints[which])],
                         cwd=REPO, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert 'error:' in lines[0] and str(bad_checkpoints[which]) in lines[0]
    assert 'Traceback' not in out.stderr and 'weights_only' not in out.stderr
    if which == 'evil':
        assert 'refused' in lines[0] and 'GLOBAL posix.system' in lines[0]
    if which == 'bad_meta':
        assert 'mean must be 3 numbers' in lines[0]
    assert not bad_checkpoints['marker'].exists()  # never unpickled
    assert not (tmp_path / 'out.onnx').exists()


def test_one_line_keeps_ordinary_messages_and_cuts_long_ones():
    from training.cli import MAX_CHARS, one_line
    assert one_line(ValueError('bad\n  value')) == 'bad value'
    assert len(one_line(RuntimeError('x' * 5000))) == MAX_CHARS
    assert one_line(KeyError()) == 'KeyError'
