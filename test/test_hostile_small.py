"""Issue 25's smaller hostile inputs that need no ROS graph: one test per refusal."""

from mono_depth_ros.core.camera import output_size
import pytest


@pytest.mark.parametrize('width, height', [(4_000_000, 1), (1, 4_000_000), (3_000_001, 2),
                                           (2_500_000, 3), (1920, 1080)])
def test_output_cap_holds_at_extreme_aspect(width, height):
    cap = 1280 * 960
    out_w, out_h, capped = output_size(width, height, 1.0, cap)
    assert capped and 1 <= out_w and 1 <= out_h
    assert out_w * out_h <= cap, (out_w, out_h)
