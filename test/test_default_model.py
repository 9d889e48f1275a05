"""The default model is FastDepth; on real pictures it beats the starter, in metres."""

import os

from mono_depth_ros.ros.depth_node import BUNDLED_MODEL, bundled_model_path
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(REPO, 'models', BUNDLED_MODEL)
STARTER = os.path.join(REPO, 'models', 'starter_indoor.onnx')


def test_default_model_file_and_metadata():
    from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
    assert BUNDLED_MODEL == 'fastdepth_nyu.onnx'
    # the installed share/ copy (colcon) or this source tree's file
    installed = bundled_model_path()
    assert os.path.basename(installed) == BUNDLED_MODEL and os.path.isfile(installed)
    assert os.path.getsize(installed) == os.path.getsize(MODEL)
    assert os.path.getsize(MODEL) <= 8 * 2 ** 20
    meta = OnnxRuntimeBackend.from_file(MODEL).meta
    assert meta.arch == 'fastdepth' and meta.is_metric and meta.focal_rescale
    assert (meta.input_height, meta.input_width, meta.input_dtype) == (224, 224, 'uint8')
    assert (meta.resize_mode, round(meta.crop_fraction, 3)) == ('crop', 0.912)
    assert (meta.min_depth, meta.max_depth) == (0.1, 10.0)


@pytest.mark.needs_torch  # evaluate.py and the floors live on the training side
def test_default_model_beats_the_starter_on_unseen_scenes(shared_data, tmp_path):
    """Metric delta1 through evaluate.py (the node's pipeline) on scenes neither trained on."""
    from training import floors, real_split
    real_split.build(str(shared_data), str(tmp_path / 'real'))
    from training.evaluate import evaluate
    for spec in floors.real_sets(str(tmp_path / 'real'), str(shared_data),
                                 ['redwood', 'sevenscenes']):
        d1 = {}
        for name, path in (('default', MODEL), ('starter', STARTER)):
            rows = evaluate(path, 'folder', data_root=spec.root, crop='none',
                            depth_scale=spec.depth_scale, intrinsics=spec.intrinsics,
                            max_depth=spec.cap, output_dir=str(tmp_path / name / spec.name),
                            log=lambda _m: None)
            d1[name] = rows['model']['d1']
        assert d1['default'] > d1['starter'] + 0.2, (spec.name, d1)
        if spec.name == 'sevenscenes':
            # The constant at the set's own median depth is an oracle no model knows; on
            # Redwood it stays ahead (0.597 against 0.568, models/README.md).
            constant = floors.evaluate_floors(spec)['constant']['d1']
            assert d1['default'] > constant + 0.1, (d1, constant)
