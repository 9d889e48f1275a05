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
