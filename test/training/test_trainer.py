"""The trainer: it learns, stops on NaN and on a stalled metric, resumes after a kill, DDP."""

import csv
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from training.checkpoint import load_checkpoint
from training.config import load_config
from training.datasets import build_dataset
from training.losses import build_loss
from training.trainer import (build_model_from_config, EpochSampler, SupervisedDepthTask, Task,
                              Trainer, TrainingDivergedError)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ['device=cpu', 'model.arch=mobilenetv2_unet',
        'model.args={width_mult: 0.35, decoder_channels: [16, 16, 8, 8]}',
        'data.dataset=synthetic', 'data.height=32', 'data.width=48', 'data.num_workers=0',
        'augment.enabled=false', 'train.progress=false', 'train.tensorboard=false',
        'optim.grad_clip=1.0']


pytestmark = pytest.mark.usefixtures('one_thread')  # see conftest.py


def _trainer(tmp_path, overrides, task=None):
    config = load_config(None, TINY + overrides)
    mcfg = config['model']
    task = task or SupervisedDepthTask(build_loss(config['loss']), mcfg['min_depth'],
                                       mcfg['max_depth'])
    torch.manual_seed(0)
    return Trainer(config, task, build_model_from_config(config), build_dataset(config, 'train'),
                   build_dataset(config, 'val'), str(tmp_path), log=lambda _m: None)


def _rows(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


def test_overfits_four_synthetic_pairs(tmp_path):
    trainer = _trainer(tmp_path, ['data.synthetic.train_size=4', 'data.synthetic.val_size=2',
                                  'data.batch_size=4', 'train.epochs=60', 'train.log_every=1',
                                  'optim.lr=0.005', 'optim.scheduler=none', 'loss.name=berhu',
                                  'train.val_every=1000', 'optim.weight_decay=0',
                                  'data.height=24', 'data.width=32'])
    summary = trainer.fit()
    losses = [float(r['loss']) for r in _rows(tmp_path / 'train_log.csv')]
    assert summary['steps'] == 60 and len(losses) == 60
    first, last = losses[0], min(losses[-5:])
    assert last <= first / 10, f'loss went from {first:.4f} to {last:.4f} only'


def test_nan_loss_stops_with_step_and_value(tmp_path):
    class NaNTask(Task):
        def compute_loss(self, model, batch):
            return model(batch['image']).mean() * float('nan'), {}

    trainer = _trainer(tmp_path, ['data.synthetic.train_size=4', 'data.batch_size=2'],
                       task=NaNTask())
    with pytest.raises(TrainingDivergedError, match=r'loss is nan at step 1 \(epoch 1\)'):
        trainer.fit()


def test_early_stopping_on_a_stalled_metric(tmp_path):
    trainer = _trainer(tmp_path, ['data.synthetic.train_size=2', 'data.synthetic.val_size=2',
                                  'data.batch_size=2', 'train.epochs=10', 'optim.lr=1e-12',
                                  'train.early_stopping.patience=2',
                                  'train.early_stopping.min_delta=1.0'])
    summary = trainer.fit()
    assert summary['stopped'] == 'early_stopping' and summary['epochs'] == 3
    assert [int(r['epoch']) for r in _rows(tmp_path / 'val_log.csv')] == [1, 2, 3]
    assert load_checkpoint(str(tmp_path / 'best.pt'))['epoch'] == 1


def test_epoch_sampler_shards_and_resumes():
    full = list(EpochSampler(10, seed=3, epoch=1))
    assert sorted(full) == list(range(10)) and full != list(range(10))
    assert list(EpochSampler(10, seed=3, epoch=1, start=4)) == full[4:]
    shards = [list(EpochSampler(10, 3, 1, rank=r, world=2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5 and sorted(shards[0] + shards[1]) == \
        sorted(full)


TRAIN_ARGS = [f'--set={s}' for s in TINY] + [
    '--set=data.synthetic.train_size=16', '--set=data.synthetic.val_size=2',
    '--set=data.batch_size=2', '--set=train.epochs=2', '--set=train.checkpoint_every=3',
    '--set=train.log_every=1', '--set=augment.enabled=true', '--set=augment.device=cpu',
    '--set=optim.lr=0.002']


def _train_cmd(out):
    return [sys.executable, os.path.join(REPO, 'training', 'train.py'), '--output-dir', str(out)
            ] + TRAIN_ARGS


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    subprocess.run(_train_cmd(tmp_path / 'a'), check=True, env=env, capture_output=True,
                   timeout=240)
    proc = subprocess.Popen(_train_cmd(tmp_path / 'b'), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = tmp_path / 'b' / 'last.pt'
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(str(last))['step']
    assert 0 < killed_at < 16, 'the kill must land mid-run'
    resumed = subprocess.run(_train_cmd(tmp_path / 'b'), check=True, env=env,
                             capture_output=True, text=True, timeout=240)
    assert f'resumed from {last}' in resumed.stdout
    steps = [int(r['step']) for r in _rows(tmp_path / 'b' / 'train_log.csv')]
    assert steps[-1] == 16 and set(range(1, 17)) <= set(steps)
    a = load_checkpoint(str(tmp_path / 'a' / 'last.pt'))
    b = load_checkpoint(str(tmp_path / 'b' / 'last.pt'))
    assert a['step'] == b['step'] == 16 and a['epoch'] == b['epoch'] == 2
    for key, value in a['model'].items():
        torch.testing.assert_close(b['model'][key], value, rtol=1e-4, atol=1e-5)
    assert b['optimizer']['state'][0]['step'] == a['optimizer']['state'][0]['step']


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_gloo(tmp_path):
    out = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1', '--nproc_per_node',
           '2', '--master_addr', '127.0.0.1', '--master_port', str(_free_port()),
           os.path.join(REPO, 'training', 'train.py'), '--output-dir', str(out)] + \
        [f'--set={s}' for s in TINY] + ['--set=data.synthetic.train_size=8',
                                        '--set=data.synthetic.val_size=2',
                                        '--set=data.batch_size=2', '--set=train.epochs=1',
                                        '--set=train.log_every=1']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'world 2' in result.stdout
    ckpt = load_checkpoint(str(out / 'last.pt'))
    # 8 samples over 2 ranks with batch 2: 2 optimizer steps per epoch.
    assert ckpt['step'] == 2 and ckpt['epoch'] == 1
    assert [int(r['step']) for r in _rows(out / 'train_log.csv')] == [1, 2]
