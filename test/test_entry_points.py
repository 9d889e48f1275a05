"""depth_node refuses a model with bad metadata values in one line and exit code 1."""

import onnx
from onnx_models import brightness_model
import pytest
from ros_harness import Process

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def good_model(tmp_path_factory):
    path = tmp_path_factory.mktemp('models') / 'brightness.onnx'
    brightness_model(path, 24, 32)
    return path


@pytest.mark.parametrize('field, value, words', [
    ('mean', '"abc"', 'mean'),
    ('extra', '"abc"', 'extra'),
    ('format_version', '"x"', 'format_version'),
])
def test_bad_metadata_value_is_one_line_and_exit_1(ros, tmp_path, good_model, field, value,
                                                   words):
    model = onnx.load(str(good_model))
    key = 'mono_depth.' + field
    entries = [e for e in model.metadata_props if e.key == key]
    entry = entries[0] if entries else model.metadata_props.add()
    entry.key, entry.value = key, value
    path = tmp_path / f'bad_{field}.onnx'
    onnx.save(model, str(path))
    proc = Process('depth_node', ['-p', f'model_path:={path}'], str(tmp_path), tag=field)
    assert proc.popen.wait(60) == 1, proc.output()
    out = proc.output().strip()
    assert len(out.splitlines()) == 1, out
    assert out.startswith('[depth_node] cannot start:') and words in out, out
    assert 'Traceback' not in out
