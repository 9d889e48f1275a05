"""ModelMeta: validation and round trips through every carrier format."""

import json

from mono_depth_ros.core.atomic import atomic_path, atomic_write_text
from mono_depth_ros.core.model_meta import FORMAT_VERSION, ModelMeta, ModelMetaError
import pytest


def _meta(**kw):
    base = dict(arch='mobilenetv2_unet', input_height=240, input_width=320,
                arch_args={'width_mult': 0.5}, output_mode='inverse_depth',
                output_scale=9.9, output_shift=0.1, min_depth=0.1, max_depth=10.0,
                train_fx=259.43, train_fy=259.73, focal_rescale=True, dataset='nyu',
                metrics={'abs_rel': 0.12})
    base.update(kw)
    return ModelMeta(**base)


def test_round_trip_dict_json_onnx():
    meta = _meta()
    assert ModelMeta.from_dict(meta.to_dict()) == meta
    assert ModelMeta.from_json(meta.to_json()) == meta
    props = meta.to_onnx_props()
    assert all(k.startswith('mono_depth.') and isinstance(v, str) for k, v in props.items())
    assert ModelMeta.from_onnx_props({**props, 'other': 'x'}) == meta


def test_unknown_keys_are_kept_not_fatal():
    data = _meta().to_dict()
    data['future_field'] = [1, 2]
    meta = ModelMeta.from_dict(data)
    assert meta.extra['future_field'] == [1, 2]


@pytest.mark.parametrize('change, words', [
    ({'output_mode': 'depthish'}, 'output_mode'),
    ({'min_depth': 5.0, 'max_depth': 1.0}, 'depth range'),
    ({'min_depth': -1.0}, 'depth range'),
    ({'input_width': 0}, 'input_width'),
    ({'input_dtype': 'float16'}, 'input_dtype'),
    ({'std': (0.2, 0.0, 0.2)}, 'std'),
    ({'train_fx': None}, 'focal_rescale'),
    ({'output_scale': 0.0}, 'output_scale'),
])
def test_invalid_metadata_is_named(change, words):
    with pytest.raises(ModelMetaError, match=words):
        _meta(**change)


def test_missing_keys_and_bad_json():
    with pytest.raises(ModelMetaError, match='arch'):
        ModelMeta.from_dict({'input_height': 1})
    with pytest.raises(ModelMetaError, match='JSON'):
        ModelMeta.from_json('{not json')
    with pytest.raises(ModelMetaError, match='no mono_depth'):
        ModelMeta.from_onnx_props({'producer': 'x'})
    newer = _meta().to_dict()
    newer['format_version'] = 99
    with pytest.raises(ModelMetaError, match='newer'):
        ModelMeta.from_dict(newer)


@pytest.mark.parametrize('key, value, words', [
    ('mean', 'abc', 'mean must be 3 numbers'),
    ('std', [1, 2], 'std must be 3 numbers'),
    ('extra', 'abc', 'extra must be a mapping'),
    ('format_version', 'x', 'format_version must be a positive integer'),
    ('format_version', 0, 'format_version must be a positive integer'),
    ('input_height', '240', 'input_height must be an integer'),
    ('input_height', 100000000, 'input_height must be in'),
    ('output_scale', 'big', 'output_scale must be a number'),
    ('normalize_in_graph', 'yes', 'normalize_in_graph must be true or false'),
    ('arch_args', [1], 'arch_args must be a mapping'),
    ('resize_mode', 'zoom', 'resize_mode'),
    ('size_multiple', -14, 'size_multiple'),
    ('input_name', 3, 'input_name must be a string'),
    ('metrics', {'abs_rel': 'good'}, 'metrics'),
])
def test_bad_values_are_one_line_errors(key, value, words):
    data = _meta().to_dict()
    data[key] = value
    with pytest.raises(ModelMetaError, match=words) as info:
        ModelMeta.from_dict(data)
    assert '\n' not in str(info.value)
    # The ONNX carrier (what the node reads) reports the same one line.
    props = _meta().to_onnx_props()
    props['mono_depth.' + key] = json.dumps(value)
    with pytest.raises(ModelMetaError, match=words):
        ModelMeta.from_onnx_props(props)


def test_version_1_files_load_as_current():
    old = _meta().to_dict()
    for key in ('size_multiple', 'resize_mode', 'input_name', 'output_name', 'size_policy'):
        del old[key]
    old['format_version'] = 1
    meta = ModelMeta.from_dict(old)
    assert meta.format_version == FORMAT_VERSION == 3
    assert (meta.resize_mode, meta.size_multiple, meta.input_name) == ('stretch', 0, '')
    assert ModelMeta.from_dict({k: v for k, v in old.items() if k != 'format_version'}) == meta


def test_new_fields_and_relative_modes():
    meta = _meta(output_mode='relative_inverse_depth', focal_rescale=False,
                 size_multiple=14, resize_mode='crop', input_name='pixel_values',
                 output_name='predicted_depth')
    assert not meta.is_metric and meta.inverse and meta.dynamic_shape
    assert ModelMeta.from_onnx_props(meta.to_onnx_props()) == meta
    assert not _meta(output_mode='relative_depth').is_metric
    assert not _meta(output_mode='relative_depth').inverse
    for mode in ('metric', 'inverse_depth', 'disparity'):
        assert _meta(output_mode=mode).is_metric
    assert _meta(output_mode='disparity').inverse and not _meta(output_mode='metric').inverse


def test_focal_scale():
    meta = _meta()
    assert meta.focal_scale(259.43, 259.73) == pytest.approx(1.0)
    assert meta.focal_scale(2 * 259.43, 2 * 259.73) == pytest.approx(2.0)
    assert _meta(focal_rescale=False).focal_scale(1000.0, 1000.0) == 1.0


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / 'meta.json'
    atomic_write_text(target, json.dumps({'v': 1}))
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, 'w') as handle:
                handle.write('{"v": 2, trunc')
            raise RuntimeError('killed mid-write')
    assert json.loads(target.read_text()) == {'v': 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['meta.json']
