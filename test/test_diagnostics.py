"""Node statistics: every counter reaches diagnostics once, under one name."""

from mono_depth_ros.core.stats import BAD_INPUT_KINDS, Stats


def test_snapshot_names_each_counter_once():
    stats = Stats()
    stats.count('frames_in', 3)
    stats.count('truncated', 2)
    stats.count('corrupt_image')
    stats.count('skipped_no_subscribers', 5)
    stats.stage('inference', 0.004)
    stats.frame_out(0.010, 0.006)
    snap = stats.snapshot()
    assert snap['frames_in'] == 3 and snap['frames_out'] == 1
    assert snap['bad_truncated'] == 2 and snap['bad_corrupt_image'] == 1
    assert snap['bad_input_total'] == 3
    assert snap['skipped_no_subscribers'] == 5
    assert not set(BAD_INPUT_KINDS) & set(snap), 'bad inputs appear only as bad_*'
    assert abs(snap['inference_ms'] - 4.0) < 1e-9 and abs(snap['latency_p50_ms'] - 10.0) < 1e-9
