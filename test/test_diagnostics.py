"""Node statistics and diagnostic levels, without ROS: each counter once, levels per period."""

from mono_depth_ros.core.stats import (BAD_INPUT_KINDS, diag_key, ERROR, FAILURE_KINDS, OK,
                                       PeriodJudge, Stats, WARN)
import pytest


def test_snapshot_names_each_counter_once():
    stats = Stats()
    stats.count('frames_in', 3)
    assert stats.problem('truncated', 2) == 'bad_truncated'
    assert stats.problem('corrupt_image') == 'bad_corrupt_image'
    assert stats.problem('bad_step') == 'bad_step'  # never bad_bad_step
    assert stats.problem('internal_error') == 'internal_error'
    stats.problem('a_kind_added_later')
    stats.count('skipped_no_subscribers', 5)
    stats.stage('inference', 0.004)
    stats.frame_out(0.010, 0.006)
    snap = stats.snapshot()
    assert snap['frames_in'] == 3 and snap['frames_out'] == 1
    assert snap['bad_truncated'] == 2 and snap['bad_corrupt_image'] == 1
    assert snap['bad_step'] == 1 and snap['bad_camera_info'] == 0
    assert snap['bad_a_kind_added_later'] == 1
    # Bad input and failures are summed beside each other, each counted in exactly one.
    assert snap['bad_input_total'] == 5
    assert snap['internal_error'] == 1 and snap['failures_total'] == 1
    assert snap['skipped_no_subscribers'] == 5
    assert not [k for k in snap if k.startswith('bad_bad_')]
    for kind in BAD_INPUT_KINDS:
        assert diag_key(kind) in snap
    assert all(k in snap for k in FAILURE_KINDS)
    assert abs(snap['inference_ms'] - 4.0) < 1e-9 and abs(snap['latency_p50_ms'] - 10.0) < 1e-9


@pytest.fixture
def run():
    """Return a helper that plays one period on a Stats and returns its (level, message)."""
    stats, judge = Stats(), PeriodJudge(stall_periods=3)

    def period(frames=0, published=0, bad=None, failure=None, subscribed=True, extra=()):
        stats.count('frames_in', frames)
        stats.count('frames_processed', frames)
        for _ in range(published):
            stats.frame_out(0.01, 0.005)
        if bad:
            stats.problem(bad)
        if failure:
            stats.problem(failure)
        return judge.judge(stats.snapshot(), subscribed, extra)
    return period


def test_missing_camera_info_at_start_returns_to_ok(run):
    assert run(frames=5, bad='no_camera_info')[0] == WARN
    level, message = run(frames=5, published=5)
    assert (level, message) == (OK, 'ok')


def test_idle_without_subscribers_is_ok(run):
    level, message = run(subscribed=False)
    assert level == OK and 'idle' in message
    assert run(frames=5, subscribed=False)[0] == OK


def test_failures_in_the_period_are_error_then_clear(run):
    level, message = run(frames=5, published=4, failure='internal_error')
    assert level == ERROR and 'internal_error +1' in message
    assert run(frames=5, published=5)[0] == OK
    assert run(frames=5, published=5, failure='model_nonfinite')[0] == ERROR


def test_bad_input_in_the_period_is_warn_and_names_the_counter(run):
    level, message = run(frames=5, published=4, bad='bad_step')
    assert level == WARN and 'bad_step +1' in message and 'bad_bad' not in message
    assert run(frames=5, published=5)[0] == OK


def test_receiving_but_publishing_nothing_for_several_periods_is_error(run):
    for _ in range(2):
        assert run(frames=5, bad='camera_info_size_mismatch')[0] == WARN
    level, message = run(frames=5, bad='camera_info_size_mismatch')
    assert level == ERROR and '3 periods' in message
    assert run(frames=5, published=1)[0] == OK


def test_input_that_stops_is_warn_and_extra_problems_are_reported(run):
    assert run()[0] == OK  # nothing yet: waiting
    assert run(frames=3, published=3)[0] == OK
    assert run()[0] == OK  # one quiet period: a slow camera
    assert run()[0] == OK
    level, message = run()
    assert level == WARN and 'no images received for 3 periods' in message  # it stopped
    level, message = run(frames=3, published=3, extra=[(WARN, 'relative model, no scale')])
    assert (level, message) == (WARN, 'relative model, no scale')
