"""
Scale sources inside the frame pipeline (FrameProcessor), with a backend stand-in.

The stand-in backend returns a relative model's output: the ground-truth inverse depth of
the rendered view (of exactly what the model input shows) under an affine map. The
pipeline maps it, hands the scale source its native map and intrinsics, and must publish
metric depth only with a fitted scale.
"""

import math

from mono_depth_ros.core import scale as sc
from mono_depth_ros.core.frame import FrameConfig, FrameProcessor
from mono_depth_ros.core.intrinsics import preset
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.sim.synthetic import look_at, Scene
import numpy as np
import pytest

INTR = preset('kinect_nyu').resize(160, 120)
A, B = 1.7, 0.25  # the oracle: y = A / depth + B


class Oracle:
    """A backend stand-in: infer() returns a fixed relative output."""

    def __init__(self, output):
        self.output = output.astype(np.float32)

    def infer(self, tensor):
        return self.output


@pytest.fixture(scope='module')
def frame():
    scene = Scene.random(seed=4)
    eye = np.array([1.6, 1.6, 0.6])
    d = scene.size[:2] - 0.5 - eye[:2]
    d /= np.linalg.norm(d)
    pitch = math.radians(12)
    return scene.render(INTR, look_at(eye, eye + np.array([d[0], d[1], -math.tan(pitch)]))), \
        pitch


def meta(h, w, resize_mode='stretch'):
    return ModelMeta(arch='oracle', input_height=h, input_width=w,
                     output_mode='relative_inverse_depth', min_depth=0.1, max_depth=30.0,
                     resize_mode=resize_mode)


def rel_error(depth, truth):
    valid = np.isfinite(depth) & np.isfinite(truth)
    return float(np.median(np.abs(depth[valid] / truth[valid] - 1.0))), valid


def test_ground_plane_through_the_pipeline(frame):
    view, pitch = frame
    est = sc.ScaleEstimator(sc.ScaleConfig(source='ground_plane', camera_height=0.6,
                                           camera_pitch=pitch), 'inverse')
    processor = FrameProcessor(meta(120, 160), Oracle(A / view.depth + B))
    config = FrameConfig(depth_upsampling='nearest')
    result = processor.run(view.rgb, INTR, config, scale=est.for_frame(0.0, INTR))
    assert result.scale is not None and result.depth is not None
    err, valid = rel_error(result.depth, view.depth)
    assert err < 0.03 and valid.mean() > 0.9
    # The same frame without a source: the relative map only, no metres.
    bare = processor.run(view.rgb, INTR, config)
    assert bare.depth is None and bare.relative is not None
    np.testing.assert_allclose(bare.relative, 1.0 / (A / view.depth + B), rtol=1e-5)


def test_sparse_depth_through_a_cropping_pipeline(frame):
    view, _ = frame
    # A square model on a 4:3 camera, cropping: the model sees the centred 120x120 box.
    box = view.depth[:, 20:140]
    est = sc.ScaleEstimator(sc.ScaleConfig(source='sparse_depth', scale_min_inliers=20),
                            'inverse')
    rng = np.random.default_rng(7)
    sparse = np.zeros((60, 80), np.float32)  # a half-resolution sensor over the whole view
    rows, cols = rng.integers(0, 60, 150), rng.integers(0, 80, 150)
    # each sensor pixel measures the mean depth of the 2x2 camera pixels it covers
    blocks = view.depth.reshape(60, 2, 80, 2).mean(axis=(1, 3))
    sparse[rows, cols] = blocks[rows, cols]
    est.add_sparse(sc.SparseSamples.from_depth_image(sparse, stamp=5.0))
    processor = FrameProcessor(meta(120, 120, 'crop'), Oracle(A / box + B))
    result = processor.run(view.rgb, INTR, FrameConfig(depth_upsampling='nearest'),
                           scale=est.for_frame(5.02, INTR))
    assert result.scale is not None, est.last_fit.reason
    assert np.isnan(result.depth[:, :20]).all() and np.isnan(result.depth[:, 140:]).all()
    err, _ = rel_error(result.depth[:, 20:140], box)
    assert err < 0.02
    assert result.scale[0] == pytest.approx(1 / A, rel=0.02)
