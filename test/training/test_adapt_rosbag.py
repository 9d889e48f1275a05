"""Adapting the bundled model to a recording: ONNX init; the documented command on real frames."""

import os
import subprocess
import sys

import numpy as np
import pytest
from training import rosbag_export

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STARTER = os.path.join(REPO, 'models', 'starter_indoor.onnx')
FASTDEPTH = os.path.join(REPO, 'models', 'fastdepth_nyu.onnx')
CONFIG = os.path.join(REPO, 'training', 'configs', 'adapt_rosbag.yaml')
# A short recording: 7-Scenes frames 40-99 (2 s at 30 Hz), the camera moving 1-2 cm a frame.
# Sources 3 cm away and the last 30 % held out leave 30 training and 7 validation triplets.
SETTINGS = ['data.rosbag.min_baseline=0.03', 'data.rosbag.val_fraction=0.3']


def _normalised(rgb, meta):
    import torch
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.mark.parametrize('path', [STARTER, FASTDEPTH], ids=['starter', 'fastdepth'])
def test_an_onnx_export_rebuilds_into_the_network_it_came_from(path, one_thread):
    import onnxruntime as ort
    import torch
    from training.onnx_init import FoldedBatchNorm2d, network_from_onnx
    net, meta = network_from_onnx(path)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (meta.input_height, meta.input_width, 3), dtype=np.uint8)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    expected = session.run(None, {session.get_inputs()[0].name: rgb[None]})[0]
    with torch.no_grad():
        got = net.eval()(_normalised(rgb, meta)).numpy()
        # The folded batch norms keep their statistics in training mode too.
        assert any(isinstance(m, FoldedBatchNorm2d) for m in net.modules())
        in_train_mode = net.train()(_normalised(rgb, meta)).numpy()
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(in_train_mode, got, rtol=1e-6, atol=1e-6)


def test_an_onnx_of_another_architecture_is_refused(tmp_path):
    from training.config import load_config
    from training.trainer import build_model_from_config
    config = load_config(None, [f'model.init_checkpoint={STARTER}', 'model.arch=squeezenet_unet'])
    with pytest.raises(ValueError, match='is a mobilenetv2_unet, not the configured'):
        build_model_from_config(config)


def test_model_trainable_freezes_every_other_parameter():
    from training.config import load_config
    from training.trainer import build_model_from_config
    config = load_config(None, [f'model.init_checkpoint={FASTDEPTH}', 'model.arch=fastdepth',
                                'model.trainable=[decode_conv5, decode_conv6]'])
    model = build_model_from_config(config)
    training = sorted({n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad})
    assert training == ['decode_conv5', 'decode_conv6']
    config = load_config(None, ['model.arch=fastdepth', 'model.trainable=[decoder.head]'])
    with pytest.raises(ValueError, match='names no parameter of fastdepth: decoder.head'):
        build_model_from_config(config)


def _photometric(config, bag, checkpoint=None):
    """Return the mean photometric error over the training triplets, without augmentation."""
    import torch
    from torch.utils.data import DataLoader
    from training.checkpoint import load_checkpoint
    from training.datasets.rosbag import RosbagDataset
    from training.run import build_task
    from training.trainer import build_model_from_config
    task = build_task(config)
    model = build_model_from_config(config)
    if checkpoint:
        model.load_state_dict(load_checkpoint(checkpoint)['model'])
    model.eval()
    data = RosbagDataset(bag, split='train', height=config['data']['height'],
                         width=config['data']['width'], frame_offsets=(-1, 1),
                         **config['data']['rosbag'])
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in DataLoader(data, batch_size=8):
            _loss, logs = task.compute_loss(model, batch)
            total += logs['photometric'] * len(batch['image'])
            count += len(batch['image'])
    return total / count


def test_the_documented_command_adapts_the_bundled_model_on_real_frames(
        shared_data, tmp_path, one_thread):
    from mono_depth_ros.core.frame import FrameConfig, FrameProcessor
    from mono_depth_ros.inference.base import create_backend
    from training.config import load_config
    from training.trainer import resolve_init
    bag = str(tmp_path / 'bag')
    rosbag_export.convert(str(shared_data / 'sevenscenes_redkitchen'), bag,
                          compressed=True, depth=True, first=40, last=99,
                          log=lambda _m: None)
    out = tmp_path / 'run'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    # A larger rate than the shipped one, so that 16 steps move the loss measurably.
    sets = [a for s in SETTINGS + ['train.epochs=2', 'train.progress=false', 'optim.lr=5e-5']
            for a in ('--set', s)]
    subprocess.run([sys.executable, 'training/train.py', '--config', CONFIG, '--set',
                    f'data.root={bag}', '--output-dir', str(out)] + sets, cwd=REPO, env=env,
                   check=True, capture_output=True, timeout=600)
    subprocess.run([sys.executable, 'training/export_onnx.py', '--checkpoint',
                    str(out / 'best.pt'), '--output', str(out / 'model.onnx')], cwd=REPO,
                   env=env, check=True, capture_output=True, timeout=300)

    # 16 steps lower the photometric error of the training triplets by 29-30 % (seeds 0, 1
    # and 2 on this kind of machine); the margin asked is 5 %.
    config = resolve_init(load_config(CONFIG, [f'data.root={bag}'] + SETTINGS))
    before = _photometric(config, bag)
    after = _photometric(config, bag, str(out / 'last.pt'))
    assert after < 0.95 * before, (before, after)

    # The export is metric and says how it learnt; the node's pipeline runs it.
    backend = create_backend('onnxruntime', str(out / 'model.onnx'))
    meta = backend.meta
    assert meta.is_metric and 'known metric camera poses' in meta.description
    from mono_depth_ros.core.intrinsics import Intrinsics
    import cv2
    rgb = cv2.cvtColor(cv2.imread(str(shared_data / 'sevenscenes_redkitchen' /
                                      'frame-000150.color.jpg')), cv2.COLOR_BGR2RGB)
    camera = Intrinsics.from_K(np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]]), 640, 480)
    depth = FrameProcessor(meta, backend, FrameConfig()).run(rgb, camera).depth
    # It is fed as FastDepth was (the centred 4:3 box, 91.2 % of each side): depth there.
    assert (meta.resize_mode, meta.crop_fraction) == ('crop', pytest.approx(0.912))
    assert depth is not None and np.isfinite(depth).mean() == pytest.approx(0.912 ** 2, abs=0.01)
    assert 0.5 < float(np.nanmedian(depth)) < 5.0  # a kitchen seen from 1-3 m

    # evaluate.py scores the held-out end of the recording against its depth topic.
    from training.evaluate import evaluate
    results = evaluate(str(out / 'model.onnx'), 'rosbag', bag, output_dir=str(tmp_path / 'ev'),
                       log=lambda _m: None)
    import json
    summary = json.loads((tmp_path / 'ev' / 'metrics.json').read_text())
    assert summary['images'] == 15  # frames 85-99: evaluate's default split, the last 25 %
    assert 0.0 < results['model']['d1'] <= 1.0 and results['model']['abs_rel'] < 1.0


def test_a_pose_network_can_refine_the_known_poses_starting_from_them(one_thread):
    import torch
    from training import geometry
    from training.networks import build_model
    from training.networks.pose import build_pose_net
    from training.selfsup import SelfSupervisedTask
    task = SelfSupervisedTask(0.1, 10.0, scales=(0,), pose_source='dataset+network',
                              pose_net=build_pose_net('posecnn'), val_photometric=True)
    assert task.metric and 'pose' in task.modules()
    gen = torch.Generator().manual_seed(0)
    poses = {}
    for key, x in (('pose', 0.0), ('pose-1', -0.1), ('pose+1', 0.1)):
        poses[key] = torch.eye(4)[None].repeat(2, 1, 1)
        poses[key][:, 0, 3] = x
    batch = {'image': torch.rand(2, 3, 32, 48, generator=gen),
             'image-1': torch.rand(2, 3, 32, 48, generator=gen),
             'image+1': torch.rand(2, 3, 32, 48, generator=gen),
             'K': torch.tensor([[40.0, 0, 24], [0, 40.0, 16], [0, 0, 1]])[None].repeat(2, 1, 1),
             **poses}
    # The correction starts at none: the transforms are the dataset's.
    for f in (-1, 1):
        _source, t = task.source_transforms(batch)[f'image{f:+d}']
        expected = geometry.relative_transform(batch['pose'], batch[f'pose{f:+d}'])
        torch.testing.assert_close(t, expected, atol=1e-6, rtol=0)
    model = build_model('squeezenet_unet', decoder_channels=[8, 8, 8], output='inverse')
    loss, _logs = task.compute_loss(model, batch)
    loss.backward()
    last = task.pose_net.pose_conv.weight.grad
    assert last is not None and float(last.abs().sum()) > 0  # it learns from the loss
