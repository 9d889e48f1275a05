"""Issue 25's smaller hostile inputs that need no ROS graph: one test per refusal."""

from mono_depth_ros.core.camera import output_size
from mono_depth_ros.ros import params
import pytest


@pytest.mark.parametrize('width, height', [(4_000_000, 1), (1, 4_000_000), (3_000_001, 2),
                                           (2_500_000, 3), (1920, 1080)])
def test_output_cap_holds_at_extreme_aspect(width, height):
    cap = 1280 * 960
    out_w, out_h, capped = output_size(width, height, 1.0, cap)
    assert capped and 1 <= out_w and 1 <= out_h
    assert out_w * out_h <= cap, (out_w, out_h)


@pytest.mark.parametrize('frame_id, words', [
    ('camera\x00optical', 'control characters'),  # rcl would cut it at the NUL
    ('x' * 100_000, '100000 characters'),
    ('/camera_optical_frame', "must not start with '/'"),
    ('camera optical', 'space'),
])
def test_frame_id_must_be_a_frame_name(frame_id, words):
    cfg = dict(params.defaults(), frame_id=frame_id)
    problem = params.validate(cfg)
    assert problem and problem.startswith('frame_id') and words in problem, problem
    assert len(problem) < 200
    for good in ('', 'camera_color_optical_frame', 'robot1/camera_link'):
        assert params.validate(dict(params.defaults(), frame_id=good)) is None


def test_sample_camera_folder_sources_get_the_nodes_header_checks(tmp_path):
    import struct

    import cv2
    import hostile_images as hostile
    from mono_depth_ros.core import image_codec
    from mono_depth_ros.ros import sample_camera as cam
    import numpy as np
    # Every format's declared size is read from its header before anything is decoded.
    picture = np.zeros((30, 40, 3), np.uint8)
    for ext in ('.bmp', '.ppm', '.pgm', '.tiff', '.png', '.jpg'):
        path = tmp_path / f'ok{ext}'
        cv2.imwrite(str(path), picture if ext != '.pgm' else picture[..., 0])
        assert cam._read_rgb(str(path), None).shape == (30, 40, 3), ext
        assert image_codec.declared_size(path.read_bytes()) == (40, 30), ext
    bombs = tmp_path / 'bombs'
    bombs.mkdir()
    (bombs / 'a.png').write_bytes(hostile.png_bomb(20000))  # 48 KB, 1.2 GB decoded
    bmp = bytearray((tmp_path / 'ok.bmp').read_bytes())
    bmp[18:26] = struct.pack('<ii', 20000, 20000)
    (bombs / 'b.bmp').write_bytes(bytes(bmp))
    for path in sorted(bombs.iterdir()):
        with pytest.raises(image_codec.ImageTooLargeError, match='20000x20000'):
            cam._read_rgb(str(path), None)
    with pytest.raises(cam.StartupError, match='a.png.*20000x20000'):
        cam.folder_source(str(bombs), None)
