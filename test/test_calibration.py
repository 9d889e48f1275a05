"""INT8 calibration: batching a folder in order, the partial last batch, the cache."""

import cv2
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.tensorrt.calibration import (CalibrationBatcher, CalibrationError,
                                                           list_images, make_entropy_calibrator,
                                                           read_calibration_cache,
                                                           write_calibration_cache)
import numpy as np
import pytest

META = ModelMeta(arch='tiny', input_height=8, input_width=12)


@pytest.fixture
def folder(tmp_path):
    """Five images of different sizes, each a flat grey whose level names its position."""
    (tmp_path / 'sub').mkdir()
    names = ['a.png', 'b.jpg', 'c.png', 'sub/d.png', 'e.bmp']
    for i, name in enumerate(names):
        img = np.full((16 + i, 24 + 2 * i, 3), 40 * (i + 1), np.uint8)
        cv2.imwrite(str(tmp_path / name), img)
    (tmp_path / 'notes.txt').write_text('not an image')
    return tmp_path


class FakeCalibratorBase:
    """Plays trt.IInt8EntropyCalibrator2: records that its constructor ran."""

    def __init__(self):
        self.base_initialised = True


def levels(batch):
    return [int(round(float(img.mean()))) for img in batch]


def test_lists_images_sorted_recursively(folder):
    files = list_images(str(folder))
    assert [f[len(str(folder)) + 1:] for f in files] == ['a.png', 'b.jpg', 'c.png', 'e.bmp',
                                                         'sub/d.png']


def test_batches_shapes_order_and_partial_last(folder):
    batcher = CalibrationBatcher(str(folder), META, batch_size=2)
    assert len(batcher) == 3
    batches = list(batcher)
    assert [b.shape for b in batches] == [(2, 8, 12, 3), (2, 8, 12, 3), (1, 8, 12, 3)]
    assert all(b.dtype == np.uint8 and b.flags['C_CONTIGUOUS'] for b in batches)
    # Sorted order a, b, c, e, sub/d -> grey levels 40, 80, 120, 200, 160 (jpeg within 2).
    got = [v for b in batches for v in levels(b)]
    assert np.allclose(got, [40, 80, 120, 200, 160], atol=2)
    padded = list(batcher.padded())
    assert [b.shape[0] for b in padded] == [2, 2, 2]
    assert levels(padded[-1]) == [160, 160]


def test_batches_follow_the_model_input_layout(folder):
    meta = ModelMeta(arch='tiny', input_height=8, input_width=12, input_layout='NCHW',
                     input_dtype='float32')
    batch = next(iter(CalibrationBatcher(str(folder), meta, batch_size=3)))
    assert batch.shape == (3, 3, 8, 12) and batch.dtype == np.float32
    assert batch.max() <= 1.0


def test_max_images_and_errors(folder, tmp_path_factory):
    assert len(CalibrationBatcher(str(folder), META, batch_size=4, max_images=3).files) == 3
    empty = tmp_path_factory.mktemp('empty')
    with pytest.raises(CalibrationError, match='no images'):
        CalibrationBatcher(str(empty), META)
    with pytest.raises(CalibrationError, match='does not exist'):
        CalibrationBatcher(str(empty / 'missing'), META)
    with pytest.raises(CalibrationError, match='batch_size'):
        CalibrationBatcher(str(folder), META, batch_size=0)
    (empty / 'bad.png').write_bytes(b'not a png')
    with pytest.raises(CalibrationError, match='cannot read'):
        list(CalibrationBatcher(str(empty), META))


def test_calibrator_serves_batches_then_none(folder):
    copies = []

    def to_device(batch):
        copies.append(batch.copy())
        return 0x1000 + len(copies)

    calibrator = make_entropy_calibrator(CalibrationBatcher(str(folder), META, batch_size=2),
                                         base=FakeCalibratorBase, to_device=to_device)
    assert calibrator.base_initialised
    assert calibrator.get_batch_size() == 2
    served = []
    while True:
        pointers = calibrator.get_batch(['image'])
        if pointers is None:
            break
        served.append(pointers)
    assert served == [[0x1001], [0x1002], [0x1003]]
    assert [c.shape for c in copies] == [(2, 8, 12, 3)] * 3
    assert calibrator.get_batch(['image']) is None


def test_calibration_cache_round_trip(folder, tmp_path):
    cache = tmp_path / 'calib' / 'model.calib'
    calibrator = make_entropy_calibrator(CalibrationBatcher(str(folder), META),
                                         cache_path=str(cache), base=FakeCalibratorBase,
                                         to_device=lambda b: 1)
    assert calibrator.read_calibration_cache() is None
    calibrator.write_calibration_cache(memoryview(b'TRT-8601-EntropyCalibration2\nimage: 3c'))
    assert cache.read_bytes().startswith(b'TRT-8601')
    assert calibrator.read_calibration_cache() == cache.read_bytes()
    write_calibration_cache(None, b'ignored')
    assert read_calibration_cache(None) is None
    cache.write_bytes(b'')
    assert read_calibration_cache(str(cache)) is None
