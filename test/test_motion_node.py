"""
scale_source motion through the running depth_node, on the real 7-Scenes sequence.

A robot in another process (test/robot_peer.py) publishes the sequence's images with its
metric poses as tf (``odom`` -> the camera frame), as wheel odometry or VIO would. The model
is the bundled FastDepth made relative, its output off by a factor of 4 (its metres thrown
away, ``scale_unknown: scale``): the node must take the scale from the motion. Then the
odometry drops out (a missing transform: the scale is held for ``scale_hold``, then no
metres), and the camera stands still (no baseline: counted, no scale guessed).
"""

import dataclasses
import json
from pathlib import Path
import subprocess
import sys

import cv2
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.ros import messages as ros_io
import numpy as np
import onnx
import pytest
from ros2_tools import toolchain_env
from ros_harness import Harness, Process
from sensor_msgs.msg import Image

pytestmark = [pytest.mark.ros, pytest.mark.ros2_tools, pytest.mark.shared_data]

ROOT = Path(__file__).resolve().parents[1]
PEER = Path(__file__).resolve().parent / 'robot_peer.py'
FACTOR = 4.0
HOLD = 0.6
CAMERA = 'kitchen_camera_optical'


@pytest.fixture(scope='module')
def relative_fastdepth(tmp_path_factory):
    """Return the bundled FastDepth made relative_depth, its output scaled by FACTOR."""
    src = ROOT / 'models' / 'fastdepth_nyu.onnx'
    if not src.is_file():
        pytest.skip('models/fastdepth_nyu.onnx is not built')
    model = onnx.load(str(src))
    meta = ModelMeta.from_onnx_props({p.key: p.value for p in model.metadata_props})
    meta = dataclasses.replace(meta, output_mode='relative_depth', scale_unknown='scale',
                               output_scale=meta.output_scale * FACTOR, focal_rescale=False,
                               max_depth=meta.max_depth * FACTOR)
    meta.stamp_onnx(model)
    out = tmp_path_factory.mktemp('motion') / 'fastdepth_relative.onnx'
    onnx.save(model, str(out))
    return str(out)


def plan(seq):
    """Return the robot's steps: moving with odometry, odometry lost, standing still."""
    steps = [[i, i / 30.0, True] for i in range(0, 121, 3)]
    lost_from = 123 / 30.0
    steps += [[i, i / 30.0, False] for i in range(123, 160, 3)]
    still_from = 163 / 30.0
    steps += [[160, still_from + k / 10.0, True] for k in range(12)]
    return {'sequence': str(seq), 'intrinsics': [585.0, 585.0, 320.0, 240.0],
            'odom_frame': 'odom', 'camera_frame': CAMERA, 'period': 0.1,
            'steps': steps}, lost_from, still_from


def test_motion_scales_a_relative_model_and_fails_safe(ros, tmp_path, shared_data,
                                                       relative_fastdepth):
    env = toolchain_env()
    seq = shared_data / 'sevenscenes_redkitchen'
    spec, lost_from, still_from = plan(seq)
    (tmp_path / 'plan.json').write_text(json.dumps(spec))
    name = 'motion_kitchen'
    args = ['-r', f'__node:={name}', '-p', f'model_path:={relative_fastdepth}',
            '-p', 'scale_source:=motion', '-p', 'odom_frame:=odom',
            '-p', f'scale_hold:={HOLD}', '-p', 'scale_min_inliers:=10',
            '-p', 'publish_points:=false', '-p', 'depth_size_ratio:=0.25',
            '-p', 'diagnostics_period:=0.2']
    proc = Process('depth_node', args, str(tmp_path), tag=name, env=env)
    harness = Harness(f'harness_{name}')
    harness.subscribe('depth/image', Image)
    harness.subscribe('depth/relative', Image)
    log = open(tmp_path / 'robot.log', 'w+')
    peer = None
    try:
        try:
            harness.wait_for(lambda: harness.node.count_subscribers(
                harness.node.resolve_topic_name('image')) > 0, 60.0, 'the node')
        except AssertionError:
            raise AssertionError('node did not come up:\n' + proc.output()) from None
        peer = subprocess.Popen([sys.executable, str(PEER), str(tmp_path / 'plan.json')],
                                env=env, stdout=log, stderr=subprocess.STDOUT)

        def peer_says(word):
            log.flush()
            return any(line.startswith(word) for line in
                       (tmp_path / 'robot.log').read_text().splitlines())
        harness.wait_for(lambda: peer_says('done'), 60.0, 'the robot to finish')
        harness.spin(1.5)
        t0 = int(next(line.split()[1] for line in (tmp_path / 'robot.log').read_text()
                      .splitlines() if line.startswith('ready')))
        diag = harness.diag(f'/{name}')
    finally:
        harness.destroy()
        output = proc.output()
        code = proc.stop()
        if peer is not None:
            peer.terminate()
            peer.wait(10)
        log.close()
    assert code == 0, output

    def stamp_s(msg):
        return (msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec - t0) * 1e-9

    metric = harness.received['depth/image']
    assert metric, f'no metric depth at all; diagnostics {diag}\n{output[-3000:]}'
    # Metres while the odometry ran: the scale of the motion, not the model's 4x.
    ratios = []
    for msg in metric:
        t = stamp_s(msg)
        if t >= lost_from:
            continue
        frame = int(round(t * 30))
        gt = cv2.imread(str(seq / f'frame-{frame:06d}.depth.png'), cv2.IMREAD_UNCHANGED)
        depth = ros_io.depth_from_image(msg)
        gt = cv2.resize(gt, depth.shape[::-1], interpolation=cv2.INTER_NEAREST) / 1000.0
        ok = np.isfinite(depth) & (gt > 0)
        ratios.append(np.median(depth[ok]) / np.median(gt[ok]))
    assert len(ratios) >= 5, (len(ratios), diag)
    # 7-Scenes' stated focal (585 px) makes triangulated depth about 10-20% long.
    assert 0.75 < np.median(ratios) < 1.5, ratios
    # Odometry lost: held for scale_hold, then no metres (depth/relative goes on).
    late = [stamp_s(m) for m in metric if stamp_s(m) > lost_from + HOLD + 0.2]
    assert late == [], late
    assert any(stamp_s(m) > still_from for m in harness.received['depth/relative'])
    assert diag['scale_motion_no_transform'] >= 3, diag
    # Standing still: no baseline, counted, no scale guessed.
    assert diag['scale_motion_no_baseline'] >= 5, diag
    assert diag['scale'] == 'none', diag
