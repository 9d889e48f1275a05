"""TorchScript is code: nothing in it runs unless the user says to trust it (issue 25 §2)."""

import json
import os
from typing import Tuple

from mono_depth_ros.inference import BackendError, create_backend
from mono_depth_ros.inference.torch_backend import is_torchscript_archive
from mono_depth_ros.tools import depth_bench
import pytest
from ros_harness import Process

pytestmark = pytest.mark.needs_torch


def _hostile_torchscript(path, marker) -> None:
    """Write a TorchScript file whose scripted __setstate__ writes ``marker`` at load time."""
    import torch

    class Hostile(torch.nn.Module):
        def __init__(self, target: str):
            super().__init__()
            self.target = target
            self.w = torch.ones(1)

        def forward(self, x):
            return x

        @torch.jit.export
        def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
            return (self.target, self.w, self.training)

        @torch.jit.export
        def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
            self.target = state[0]
            self.w = state[1]
            self.training = state[2]
            torch.save(self.w, self.target)  # any file the process may write

    module = torch.jit.script(Hostile(str(marker)))
    meta = {'format_version': 2, 'arch': 'x', 'input_height': 8, 'input_width': 8}
    torch.jit.save(module, str(path), _extra_files={'meta.json': json.dumps(meta)})
    assert not os.path.exists(marker)


@pytest.fixture
def hostile(tmp_path):
    path, marker = tmp_path / 'model.ts', tmp_path / 'written_by_the_model'
    _hostile_torchscript(path, marker)
    return str(path), marker


def test_the_fixture_really_runs_code_when_trusted(hostile):
    # What an explicit opt-in means: the file's code runs as it loads.
    path, marker = hostile
    assert is_torchscript_archive(path)
    try:
        create_backend('torch', path, trust_model_code=True).close()
    except BackendError:
        pass  # it is no depth model; what matters is that its code ran
    assert marker.exists()


@pytest.mark.parametrize('backend', ['torch', 'auto'])
def test_torchscript_is_refused_unless_trusted_and_nothing_in_it_runs(hostile, backend):
    path, marker = hostile
    with pytest.raises(BackendError, match='trust_model_code') as info:
        create_backend(backend, path)
    assert 'is TorchScript, which is code' in str(info.value)
    assert '\n' not in str(info.value)
    assert not marker.exists()


def test_depth_bench_refuses_torchscript_without_trust_model_code(hostile, capsys):
    path, marker = hostile
    assert depth_bench.main(['--model', path, '--backends', 'torch', '--pipeline-frames', '0',
                             '--iterations', '1']) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and '--trust-model-code' in err, err
    assert not marker.exists()


def test_a_checkpoint_is_not_mistaken_for_torchscript(tmp_path):
    import torch
    path = str(tmp_path / 'weights.pt')
    torch.save({'w': torch.zeros(2)}, path)
    assert not is_torchscript_archive(path)
    with pytest.raises(BackendError, match='export_onnx.py'):
        create_backend('torch', path)


@pytest.mark.ros
@pytest.mark.parametrize('backend', ['torch', 'auto'])
def test_depth_node_refuses_untrusted_torchscript_in_one_line(ros, hostile, tmp_path, backend):
    path, marker = hostile
    proc = Process('depth_node', ['-p', f'model_path:={path}', '-p', f'backend:={backend}'],
                   str(tmp_path), tag=backend)
    assert proc.popen.wait(60) == 1, proc.output()
    out = proc.output().strip()
    assert len(out.splitlines()) == 1, out
    assert out.startswith('[depth_node] cannot start:') and 'trust_model_code' in out, out
    assert not marker.exists()
