"""The starter model (shipped beside the default): its file, its metadata, it beats the floors."""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(REPO, 'models', 'starter_indoor.onnx')


def test_starter_model_file_and_metadata():
    from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
    assert os.path.getsize(MODEL) <= 20 * 2 ** 20
    assert not os.path.exists(os.path.join(REPO, 'models', 'mono_depth.onnx'))
    backend = OnnxRuntimeBackend.from_file(MODEL)
    meta = backend.meta
    assert meta.is_metric and meta.arch == 'mobilenetv2_unet'
    assert (meta.input_height, meta.input_width) == (120, 160)
    assert meta.focal_rescale and meta.train_fx == pytest.approx(518.8579 / 4, rel=1e-3)
    assert (meta.min_depth, meta.max_depth) == (0.1, 10.0)


@pytest.mark.needs_torch  # the floors and evaluate.py live on the training side
def test_starter_model_beats_both_floors_on_held_out_nyu_scenes(shared_data, tmp_path):
    """Median-scaled delta1 through evaluate.py (the node's pipeline) vs training/floors.py."""
    from training import floors, real_split
    real_split.build(str(shared_data), str(tmp_path / 'real'))
    (spec,) = floors.real_sets(str(tmp_path / 'real'), str(shared_data), ['nyu_test'])
    floor = floors.evaluate_floors(spec)
    from training.evaluate import evaluate
    rows = evaluate(MODEL, 'nyu', data_root=spec.root, median_scaling=True,
                    output_dir=str(tmp_path / 'eval'), log=lambda _m: None)
    d1 = rows['model']['d1']
    strongest = max(floor[name]['d1'] for name in ('constant median-scaled',
                                                   'ground_plane median-scaled',
                                                   'ground_plane_tilted median-scaled'))
    assert strongest > 0.5  # the floors are real, not strawmen
    assert d1 > strongest + 0.02, f'model d1 {d1:.3f} vs the strongest floor {strongest:.3f}'
