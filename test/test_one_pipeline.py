"""
One frame pipeline: depth_node, depth_bench and evaluate.py give bit-identical depth.

The node is the real console script in its own process (over DDS, default parameters and
the bundled model); depth_bench's pipeline benchmark and evaluate.py's prediction run in
this process. All three are fed the same real NYU picture with the Kinect intrinsics.
"""

import os

import cv2
from mono_depth_ros.core.intrinsics import preset
from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.ros.depth_node import BUNDLED_MODEL
from mono_depth_ros.tools.depth_bench import run_pipeline_bench
import numpy as np
import pytest
from ros_harness import Harness, Process
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(REPO, 'models', BUNDLED_MODEL)


def node_depth(rgb, camera, log_dir):
    """Return the depth depth_node publishes for rgb (default parameters, bundled model)."""
    proc = Process('depth_node', ['-r', '__node:=depth_same'], log_dir)
    harness = Harness('harness_same')
    harness.subscribe('depth/image', Image)
    try:
        try:
            harness.wait_connected()
        except AssertionError:
            raise AssertionError('node did not come up:\n' + proc.output())
        for _ in range(40):
            header = harness.send(rgb, camera)
            try:
                harness.wait_for(lambda: any(m.header.stamp == header.stamp
                                             for m in harness.received['depth/image']), 0.5)
            except AssertionError:
                continue
            msg = next(m for m in harness.received['depth/image']
                       if m.header.stamp == header.stamp)
            return ros_io.depth_from_image(msg)
        raise AssertionError('no depth from the node:\n' + proc.output())
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def test_node_bench_and_evaluate_give_bit_identical_depth(ros, shared_data, tmp_path):
    from training.datasets.augment import RawSample
    from training.evaluate import eval_config, load_predictor, predict
    from mono_depth_ros.core.frame import FrameProcessor
    bgr = cv2.imread(str(shared_data / 'nyu' / 'rgb' / '0003.png'), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    camera = preset('kinect_nyu')
    assert (camera.width, camera.height) == (rgb.shape[1], rgb.shape[0])

    from_node = node_depth(rgb, camera, str(tmp_path))

    results = []
    run_pipeline_bench(OnnxRuntimeBackend.from_file(BUNDLED), [(rgb, camera, 'nyu')],
                       results=results)
    from_bench = results[-1].depth

    backend, meta, _net = load_predictor(BUNDLED)
    gt = cv2.imread(str(shared_data / 'nyu' / 'depth' / '0003.png'),
                    cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
    from_eval = predict(FrameProcessor(meta, backend, eval_config()),
                        RawSample(rgb, gt, camera, id='0003'))

    assert from_node.shape == from_bench.shape == from_eval.shape == (480, 640)
    valid = np.isfinite(from_node)
    # A real depth map, with the edge-aware NaNs of the default upsampling.
    assert 0.5 < valid.mean() < 1.0 and np.nanstd(from_node) > 0.01
    assert np.array_equal(from_node, from_bench, equal_nan=True)
    assert np.array_equal(from_node, from_eval, equal_nan=True)
