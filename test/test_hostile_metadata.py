"""Metadata that loads but cannot work, and import_model's refusals, in one line (issue 25)."""

import json
import re

from mono_depth_ros.core.model_meta import ModelMeta, ModelMetaError
from mono_depth_ros.tools import import_model as im
import onnx
from onnx_models import brightness_model
import pytest
from ros_harness import Process

BASE = {'arch': 'x', 'input_height': 48, 'input_width': 64}
HUGE_INT = '1' + '0' * 5000  # above Python's 4300-digit int parsing limit
DEEP = '[' * 100000 + ']' * 100000  # deeper than the JSON decoder's recursion


@pytest.mark.parametrize('fields, words', [
    ({'train_fx': 1e-200, 'train_fy': 1e-200}, 'train_fx = 1e-200 is implausible'),
    ({'train_fx': 500.0, 'train_fy': 1e9}, 'train_fy = 1e+09 is implausible'),
    ({'output_scale': 1e-45}, 'output_scale 1e-45 is implausible'),
    ({'output_scale': -1e12}, 'output_scale -1e+12 is implausible'),
    ({'output_shift': 1e300}, 'output_shift 1e+300 is implausible'),
])
def test_implausible_numbers_are_refused_at_load(fields, words):
    with pytest.raises(ModelMetaError, match=re.escape(words)):
        ModelMeta.from_dict(dict(BASE, **fields))


def test_plausible_numbers_still_load():
    # mm -> m, f * B of a stereo-trained disparity model, NYU's focal at 64x48.
    ModelMeta.from_dict(dict(BASE, output_scale=0.001))
    ModelMeta.from_dict(dict(BASE, output_mode='disparity', output_scale=389.0))
    ModelMeta.from_dict(dict(BASE, train_fx=51.9, train_fy=51.9, focal_rescale=True))


@pytest.mark.parametrize('value', [HUGE_INT, DEEP], ids=['huge_int', 'deep'])
def test_huge_integers_and_deep_nesting_are_one_line(value):
    text = json.dumps(dict(BASE)).replace('}', f', "extra": {{"x": {value}}}}}')
    with pytest.raises(ModelMetaError) as info:
        ModelMeta.from_json(text)
    assert '\n' not in str(info.value) and len(str(info.value)) < 400
    props = {f'mono_depth.{k}': json.dumps(v) for k, v in BASE.items()}
    props['mono_depth.extra'] = value
    with pytest.raises(ModelMetaError) as info:
        ModelMeta.from_onnx_props(props)
    assert '\n' not in str(info.value) and len(str(info.value)) < 400


def _import(args, capsys):
    code = im.main(args)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize('flags, words', [
    (['--train-focal', '1e-200', '1e-200'], 'train_fx = 1e-200 is implausible'),
    (['--output-scale', '1e-45'], 'output_scale 1e-45 is implausible'),
])
def test_import_model_refuses_implausible_numbers(tmp_path, capsys, flags, words):
    src = tmp_path / 'in.onnx'
    brightness_model(src, 24, 32)
    out = tmp_path / 'out.onnx'
    code, err = _import([str(src), '--output', str(out), '--output-mode', 'metric'] + flags,
                        capsys)
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_import_model_takes_an_all_symbolic_4d_output(tmp_path, capsys):
    # torch's dynamo export names every dim of an output, as in models/starter_indoor.onnx:
    # (N, C, H, W) all symbolic. The node runs such a model; import_model took it for "not
    # one depth map".
    src = tmp_path / 'symbolic.onnx'
    brightness_model(src, 24, 32)
    model = onnx.load(str(src))
    del model.metadata_props[:]
    for dim, name in zip(model.graph.output[0].type.tensor_type.shape.dim, 'NCHW'):
        dim.dim_param = f'Softplusdepth_dim_{name}'
    onnx.save(model, str(src))
    out = tmp_path / 'stamped.onnx'
    code, err = _import([str(src), '--output', str(out), '--output-mode', 'metric'], capsys)
    assert code == 0, err
    meta = ModelMeta.from_onnx_props({p.key: p.value for p in onnx.load(str(out)).metadata_props})
    assert meta.output_name == 'depth' and meta.output_mode == 'metric'


def test_import_model_unwritable_output_is_one_line(tmp_path, capsys):
    src = tmp_path / 'in.onnx'
    brightness_model(src, 24, 32)
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    code, err = _import([str(src), '--output', str(blocker / 'out.onnx'), '--output-mode',
                         'metric'], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith('import_model: error: cannot write') and 'Traceback' not in err


@pytest.mark.ros
@pytest.mark.parametrize('key, value, words', [
    ('train_fx', '1e-200', 'train_fx = 1e-200 is implausible'),
    ('output_scale', '1e-45', 'output_scale 1e-45 is implausible'),
    ('extra', DEEP, 'not valid JSON'),
    ('extra', '{"x": ' + HUGE_INT + '}', 'not valid JSON'),
], ids=['train_fx', 'output_scale', 'deep', 'huge_int'])
def test_depth_node_refuses_unworkable_metadata_in_one_line(ros, tmp_path, key, value, words):
    path = tmp_path / 'model.onnx'
    brightness_model(path, 24, 32, focal=20.0)
    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key == 'mono_depth.' + key:
            entry.value = value
    onnx.save(model, str(path))
    proc = Process('depth_node', ['-p', f'model_path:={path}'], str(tmp_path))
    assert proc.popen.wait(60) == 1, proc.output()
    out = proc.output().strip()
    assert len(out.splitlines()) == 1, out[:2000]
    assert out.startswith('[depth_node] cannot start:') and words in out, out[:2000]


def _external(src, out, location):
    """Save src with its 1/255 constant moved to an external file at ``location``."""
    from onnx import TensorProto
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.name == 'inv255':
            init.ClearField('raw_data')
            init.ClearField('float_data')
            init.data_location = TensorProto.EXTERNAL
            entry = init.external_data.add()
            entry.key, entry.value = 'location', location
    onnx.save(model, str(out))


@pytest.mark.parametrize('where', ['traversal', 'absolute', 'symlink'])
def test_onnx_external_data_outside_the_model_folder_stays_refused(tmp_path, where):
    # ONNX is data, as long as it cannot make the runtime read files outside its folder.
    import numpy as np
    from mono_depth_ros.inference import BackendError, create_backend
    models = tmp_path / 'models'
    models.mkdir()
    brightness_model(models / 'b.onnx', 24, 32)
    secret = tmp_path / 'secret.bin'
    np.full(1, 1 / 255, np.float32).tofile(secret)
    (models / 'inside.bin').write_bytes(secret.read_bytes())
    _external(models / 'b.onnx', models / 'ok.onnx', 'inside.bin')
    create_backend('onnxruntime', str(models / 'ok.onnx')).close()  # the construction works
    (models / 'link.bin').symlink_to(secret)
    location = {'traversal': '../secret.bin', 'absolute': str(secret),
                'symlink': 'link.bin'}[where]
    _external(models / 'b.onnx', models / 'x.onnx', location)
    with pytest.raises(BackendError, match='External data path') as info:
        create_backend('onnxruntime', str(models / 'x.onnx'))
    assert '\n' not in str(info.value)
