"""Checkpoints: weights_only round trip, self-description, atomic writes, RNG state."""

import os
import random

from mono_depth_ros.core.model_meta import ModelMeta
import numpy as np
import pytest
import torch
from training import checkpoint as ck
from training.config import load_config
from training.networks import build_model, load_model

ARGS = {'width_mult': 0.35, 'decoder_channels': [16, 16, 8, 8], 'output': 'inverse'}


pytestmark = pytest.mark.usefixtures('one_thread')  # see conftest.py


def _model_and_meta():
    torch.manual_seed(0)
    config = load_config(None, ['data.height=32', 'data.width=48', 'data.focal_rescale=true',
                                'model.arch=mobilenetv2_unet',
                                'model.args={width_mult: 0.35, decoder_channels: '
                                '[16, 16, 8, 8], output: inverse}'])
    model = build_model('mobilenetv2_unet', **ARGS)
    meta = ck.make_meta(model, config, metrics={'abs_rel': 0.1}, git_revision='abc',
                        train_fx=40.0, train_fy=41.0)
    return model, meta, config


def test_round_trip_weights_only(tmp_path):
    model, meta, config = _model_and_meta()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(1, 3, 32, 48)).mean().backward()
    opt.step()
    path = str(tmp_path / 'last.pt')
    ck.save_checkpoint(path, model, meta, config, optimizer=opt, epoch=2, step=17, best=0.3)
    raw = torch.load(path, weights_only=True)  # no pickled code anywhere inside
    assert raw['format'] == ck.FORMAT and raw['step'] == 17 and raw['epoch'] == 2
    assert raw['optimizer']['state'], 'optimizer moments are saved'
    loaded, meta2 = load_model(path)
    assert isinstance(meta2, ModelMeta) and meta2 == meta
    assert (meta2.arch, meta2.arch_args['width_mult']) == ('mobilenetv2_unet', 0.35)
    assert meta2.output_mode == 'inverse_depth' and meta2.output_scale == pytest.approx(9.9)
    assert (meta2.input_height, meta2.input_width, meta2.input_dtype) == (32, 48, 'float32')
    assert meta2.focal_rescale and meta2.train_fx == 40.0 and meta2.git_revision == 'abc'
    assert not loaded.training
    x = torch.randn(1, 3, 32, 48)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_crash_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    model, meta, config = _model_and_meta()
    path = tmp_path / 'last.pt'
    ck.save_checkpoint(str(path), model, meta, config, step=1)
    before = path.read_bytes()

    def dying_save(obj, f, *args, **kwargs):
        with open(f, 'wb') as handle:
            handle.write(b'half a checkpoint')
        raise KeyboardInterrupt('killed mid-write')
    monkeypatch.setattr(torch, 'save', dying_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(str(path), model, meta, config, step=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ['last.pt']  # no temporary left behind
    assert ck.load_checkpoint(str(path))['step'] == 1


def test_not_a_checkpoint(tmp_path):
    other = tmp_path / 'other.pt'
    torch.save({'state_dict': {}}, other)
    with pytest.raises(ck.CheckpointError, match='not a'):
        ck.load_checkpoint(str(other))
    with pytest.raises(ck.CheckpointError, match='not found'):
        ck.load_checkpoint(str(tmp_path / 'missing.pt'))


def test_rng_state_round_trip(tmp_path):
    state = ck.rng_state()
    path = tmp_path / 'rng.pt'
    torch.save(state, path)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.set_rng_state(torch.load(path, weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
