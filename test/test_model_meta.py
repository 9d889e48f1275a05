"""ModelMeta: validation and round trips through every carrier format."""

import json

from mono_depth_ros.core.atomic import atomic_path, atomic_write_text
from mono_depth_ros.core.model_meta import ModelMeta, ModelMetaError
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
