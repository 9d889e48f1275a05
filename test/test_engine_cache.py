"""Engine cache: keys over everything that changes an engine; stale or corrupt files rebuilt."""

import json
import threading
import time

from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.tensorrt.engine_cache import (check_engine, EngineCache, EngineKey,
                                                            read_sidecar, sidecar_path,
                                                            write_engine)
import pytest

META = ModelMeta(arch='tiny', input_height=32, input_width=48)
BASE = dict(onnx_sha256='a' * 64, tensorrt_version='10.3.0', gpu_name='Orin',
            compute_capability=(8, 7), precision='fp16', input_shape=(1, 32, 48, 3),
            workspace_bytes=1 << 30, calibration_sha256='')


class FakeBuilder:
    """Stands in for TensorRT: returns engine bytes and counts builds."""

    def __init__(self, payload=b'ENGINE-v1' * 100, delay=0.0):
        self.payload = payload
        self.calls = 0
        self.delay = delay

    def __call__(self):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return self.payload


def key(**changes):
    return EngineKey.create(**dict(BASE, **changes))


def test_key_changes_with_each_input():
    base = key().digest
    changes = dict(onnx_sha256='b' * 64, tensorrt_version='8.6.2', gpu_name='RTX 4090',
                   compute_capability=(8, 9), precision='int8', input_shape=(1, 64, 48, 3),
                   workspace_bytes=2 << 30, calibration_sha256='c' * 64)
    assert set(changes) == set(BASE)
    digests = {name: key(**{name: value}).digest for name, value in changes.items()}
    for name, digest in digests.items():
        assert digest != base, f'key ignores {name}'
    assert len(set(digests.values())) == len(digests)
    assert key(opt_level=5).digest != base
    assert key().digest == base
    assert key(compute_capability='8.7').digest == base


def test_store_then_load_without_rebuilding(tmp_path):
    cache = EngineCache(str(tmp_path))
    build = FakeBuilder()
    path, data, built = cache.get_or_build('/models/depth.onnx', key(), META, build)
    assert built and data == build.payload and build.calls == 1
    assert path.endswith('.engine') and 'depth_fp16_' in path and key().digest[:12] in path
    sidecar = read_sidecar(path)
    assert sidecar['key'] == key().digest
    assert ModelMeta.from_dict(sidecar['meta']) == META
    assert sidecar['key_fields']['compute_capability'] == '8.7'
    path2, data2, built2 = cache.get_or_build('/models/depth.onnx', key(), META, build)
    assert (path2, data2, built2) == (path, build.payload, False)
    assert build.calls == 1


@pytest.mark.parametrize('damage', ['flip', 'truncate', 'empty'])
def test_corrupt_engine_is_rejected_and_rebuilt(tmp_path, damage):
    cache = EngineCache(str(tmp_path))
    build = FakeBuilder()
    path, _data, _built = cache.get_or_build('m.onnx', key(), META, build)
    raw = bytearray(open(path, 'rb').read())
    if damage == 'flip':
        raw[len(raw) // 2] ^= 0xFF
    elif damage == 'truncate':
        raw = raw[:len(raw) // 3]
    else:
        raw = bytearray()
    open(path, 'wb').write(bytes(raw))
    check = check_engine(path, key())
    assert not check.ok and 'corrupt or truncated' in check.reason
    logs = []
    cache.log = logs.append
    _p, data, built = cache.get_or_build('m.onnx', key(), META, build)
    assert built and data == build.payload and build.calls == 2
    assert any('rejecting cached engine' in line for line in logs)
    assert check_engine(path, key()).ok


def test_engine_with_another_key_is_never_loaded(tmp_path):
    cache = EngineCache(str(tmp_path))
    path = cache.engine_path('m.onnx', key())
    # A file at the expected name whose sidecar records another TensorRT version.
    write_engine(path, b'OLD ENGINE', key(tensorrt_version='8.5.2'), META)
    check = check_engine(path, key())
    assert not check.ok and 'tensorrt_version' in check.reason
    build = FakeBuilder()
    _p, data, built = cache.get_or_build('m.onnx', key(), META, build)
    assert built and data == build.payload and data != b'OLD ENGINE'


def test_missing_or_garbage_sidecar_means_rebuild(tmp_path):
    cache = EngineCache(str(tmp_path))
    build = FakeBuilder()
    path, _d, _b = cache.get_or_build('m.onnx', key(), META, build)
    open(sidecar_path(path), 'w').write('{not json')
    assert 'unreadable' in check_engine(path, key()).reason
    cache.get_or_build('m.onnx', key(), META, build)
    assert build.calls == 2
    (tmp_path / (path.split('/')[-1] + '.json')).unlink()
    assert 'missing' in check_engine(path, key()).reason
    cache.get_or_build('m.onnx', key(), META, build)
    assert build.calls == 3
    assert json.load(open(sidecar_path(path)))['engine_sha256']


def test_user_engine_check_without_key(tmp_path):
    path = str(tmp_path / 'mine.engine')
    write_engine(path, b'xyz' * 10, key(), META)
    assert check_engine(path).ok
    open(path, 'ab').write(b'!')
    assert not check_engine(path).ok


def test_concurrent_builders_build_once(tmp_path):
    build = FakeBuilder(delay=0.3)
    results = []

    def worker():
        results.append(EngineCache(str(tmp_path)).get_or_build('m.onnx', key(), META, build))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert build.calls == 1
    assert sorted(r[2] for r in results) == [False, False, True]
    assert all(r[1] == build.payload for r in results)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
    assert leftovers == []


def test_empty_engine_is_refused(tmp_path):
    from mono_depth_ros.inference.tensorrt.engine_cache import EngineCacheError
    with pytest.raises(EngineCacheError, match='empty'):
        EngineCache(str(tmp_path)).get_or_build('m.onnx', key(), META, lambda: b'')
