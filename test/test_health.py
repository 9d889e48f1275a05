"""mono_depth_ros.core.health: the failures a user can see, period by period (no ROS)."""

from mono_depth_ros.core.health import (CAMERA_INFO_MAX_AGE_DEFAULT, classify_depth, ERROR,
                                        Health, NO_IMAGE_MIN_S, OK, WARN)
import numpy as np
import pytest

TOPIC = '/front/camera/image_raw'
INFO = '/front/camera/camera_info'


def image(value, h=48, w=64):
    return np.full((h, w), value, np.float32)


def test_classify_by_rep_117_kinds_and_the_range():
    assert classify_depth(image(2.0), 0.1, 10.0) == 'valid'
    assert classify_depth(image(np.inf), 0.1, 10.0) == 'far'
    assert classify_depth(image(5000.0), 0.1, 10.0) == 'far'  # an unmarked far value too
    assert classify_depth(image(-np.inf), 0.1, 10.0) == 'near'
    assert classify_depth(image(np.nan), 0.1, 10.0) == 'none'
    mixed = image(np.inf)
    mixed[:10] = np.nan
    assert classify_depth(mixed, 0.1, 10.0) == 'far'  # the most common kind names it
    one = image(np.nan)
    one[0, 0] = 3.0
    assert classify_depth(one, 0.1, 10.0) == 'valid'


def periods(health, n, level=OK, message='ok', frames_in=10, publishers=1, info=None,
            depth=None, now=100.0):
    out = None
    for _ in range(n):
        if depth is not None:
            for _ in range(3):
                health.depth(depth, 0.1, 10.0)
        out = health.review(level, message, frames_in, now, TOPIC, publishers, info)
    return out


@pytest.mark.parametrize('value, words', [(np.inf, 'beyond max_depth (10 m)'),
                                          (-np.inf, 'nearer than min_depth (0.1 m)'),
                                          (np.nan, 'no estimate')])
def test_all_invalid_output_for_several_periods_is_error_naming_the_cause(value, words):
    health = Health(periods=3)
    assert periods(health, 2, depth=image(value)) == (OK, 'ok')
    level, message = periods(health, 1, depth=image(value))
    assert level == ERROR and words in message and '3 periods' in message
    # One valid image in a period ends it.
    assert periods(health, 1, depth=image(2.0)) == (OK, 'ok')


def test_a_model_without_any_finite_output_counts_as_no_estimate():
    health = Health(periods=2)
    for _ in range(2):
        health.no_estimate()
        level, message = health.review(ERROR, 'failures in the last period: model_nonfinite +1',
                                       5, 0.0, TOPIC, 1)
    assert level == ERROR and 'broken export' in message and 'model_nonfinite' in message


def test_no_image_names_the_topic_and_its_publishers():
    health = Health(periods=3, now=100.0)
    # Three periods, but a camera may start a few seconds after the node.
    assert periods(health, 3, frames_in=0, publishers=0, now=100.0 + NO_IMAGE_MIN_S - 1) == (
        OK, 'ok')
    level, message = periods(health, 1, frames_in=0, publishers=0, now=100.0 + NO_IMAGE_MIN_S)
    assert level == WARN and TOPIC in message and 'no publisher' in message
    level, message = periods(health, 1, frames_in=0, publishers=2, now=110.0)
    assert level == WARN and '2 publisher(s)' in message and 'for 10 s' in message
    assert periods(health, 1, frames_in=4, now=111.0) == (OK, 'ok')
    # Images stop: counted from the last period that had some.
    assert periods(health, 3, frames_in=0, now=111.0 + NO_IMAGE_MIN_S - 1) == (OK, 'ok')
    assert periods(health, 1, frames_in=0, now=111.0 + NO_IMAGE_MIN_S)[0] == WARN


def test_camera_info_stale_past_its_age_while_images_arrive():
    health = Health(periods=3, camera_info_max_age=0.5)
    health.camera_info(now=10.0)
    assert periods(health, 1, info=INFO, now=10.4) == (OK, 'ok')
    level, message = periods(health, 1, info=INFO, now=10.7)
    assert level == WARN and message.startswith('camera_info stale') and INFO in message
    assert '0.7 s old' in message
    # Intrinsics not from CameraInfo: its age does not matter.
    assert periods(health, 1, info=None, now=10.7) == (OK, 'ok')
    health.camera_info(now=10.8)
    assert periods(health, 1, info=INFO, now=10.9) == (OK, 'ok')


def test_other_warnings_stay_and_the_default_age_fits_1_to_60_hz():
    health = Health()
    verdict = periods(health, 5, level=WARN, message='bad input', frames_in=0)
    assert verdict == (WARN, 'bad input')
    # A 1 Hz camera's CameraInfo is up to about 1 s old, with a lost message 2 s.
    assert 2.0 < CAMERA_INFO_MAX_AGE_DEFAULT <= 5.0
