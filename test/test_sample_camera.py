"""sample_camera publishes files and videos with the intrinsics file's CameraInfo."""

import cv2
from mono_depth_ros.core.intrinsics import Intrinsics, save_camera_info_yaml
from mono_depth_ros.ros import messages as ros_io
import numpy as np
import pytest
from ros_harness import Harness, Process
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

pytestmark = pytest.mark.ros


def listen(name, topics):
    harness = Harness(name)
    for topic, kind in topics:
        harness.subscribe(topic, kind)
    return harness


@pytest.mark.parametrize('kind', ['folder', 'video'])
def test_file_sources_with_camera_info_yaml(ros, tmp_path, kind):
    frames = []
    for i in range(3):
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :, 2] = 80 * i  # BGR: red grows
        img[10:20, 10 + 10 * i:20 + 10 * i] = 255
        frames.append(img)
    if kind == 'folder':
        source = tmp_path / 'images'
        source.mkdir()
        for i, img in enumerate(frames):
            cv2.imwrite(str(source / f'{i:03d}.png'), img)
        (source / 'readme.txt').write_text('not an image')
    else:
        source = tmp_path / 'clip.avi'
        writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
        for img in frames:
            writer.write(img)
        writer.release()
    calib = tmp_path / 'cam.yaml'
    intr = Intrinsics(55.0, 54.0, 31.7, 23.2, 64, 48)
    save_camera_info_yaml(str(calib), intr, 'test_cam')
    proc = Process('sample_camera', ['-r', f'__node:=cam_{kind}', '-p', f'source:={source}',
                                     '-p', f'camera_info_url:=file://{calib}',
                                     '-p', 'width:=0', '-p', 'height:=0', '-p', 'rate_hz:=20.0',
                                     '-p', 'transport:=both', '-p', 'frame_id:=cam_opt'],
                   str(tmp_path), tag=kind)
    harness = listen(f'l_{kind}', [('image', Image), ('camera_info', CameraInfo),
                                   ('image/compressed', CompressedImage)])
    try:
        harness.wait_for(lambda: len(harness.received['image']) >= 4 and
                         harness.received['camera_info'] and
                         harness.received['image/compressed'], 20, 'frames')
        msg = harness.received['image'][-1]
        assert (msg.width, msg.height, msg.encoding) == (64, 48, 'rgb8')
        assert msg.header.frame_id == 'cam_opt' and msg.header.stamp.sec > 0
        info = harness.received['camera_info'][-1]
        assert list(info.k) == pytest.approx(list(intr.K.reshape(-1)))
        rgb = ros_io.image_to_rgb(msg)
        reds = {int(np.median(ros_io.image_to_rgb(m)[30:, :, 0]))
                for m in harness.received['image']}
        tol = 0 if kind == 'folder' else 12  # MJPG is lossy
        assert any(abs(r - 160) <= tol for r in reds), reds  # frames loop through the source
        assert rgb.shape == (48, 64, 3)
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def test_bad_source_exits_with_a_message(ros, tmp_path):
    proc = Process('sample_camera', ['-p', f'source:={tmp_path / "nothing_here"}'],
                   str(tmp_path))
    assert proc.popen.wait(20) == 1
    assert 'neither synthetic' in proc.output()
