"""depth_node's parameter table, its validation and --help, and the transport choice (no graph)."""

import os
import subprocess
import sys
import time

from mono_depth_ros.ros import params, transport
import pytest


def test_defaults_are_valid_and_every_row_has_a_type_and_description():
    assert params.validate(params.defaults()) is None
    assert params.validate(params.defaults(), (0.1, 10.0)) is None
    for p in params.PARAMETERS:
        assert p.description and p.type_name in ('bool', 'integer', 'double', 'string')
        if p.choices is not None:
            assert p.default in p.choices, p.name
        limits = p.float_range or p.int_range
        if limits is not None:
            assert limits[0] <= p.default <= limits[1], p.name


@pytest.mark.parametrize('change, words', [
    (dict(intrinsics='fisheye'), 'intrinsics must be one of'),
    (dict(resize_mode='squash'), 'resize_mode must be one of'),
    (dict(depth_upsampling='cubic'), 'depth_upsampling'),
    (dict(cloud_decimation=0), 'cloud_decimation must be in [1, 16]'),
    (dict(depth_size_ratio=2.0), 'depth_size_ratio'),
    (dict(edge_threshold=float('nan')), 'edge_threshold must be finite'),
    (dict(max_input_pixels=0), 'max_input_pixels'),
    (dict(publish_points='yes'), 'publish_points must be a bool'),
    (dict(cloud_decimation=True), 'cloud_decimation must be a integer'),
    (dict(min_depth=5.0, max_depth=2.0), 'min_depth (5.0) must be smaller'),
    (dict(intrinsics='manual', fx=500.0, fy=500.0), 'cx, cy not set'),
    (dict(intrinsics='manual', cx=320.0, cy=240.0), 'fx, fy not set'),
])
def test_bad_values_are_refused_with_a_reason(change, words):
    cfg = dict(params.defaults(), **change)
    problem = params.validate(cfg)
    assert problem and words in problem, problem


def test_removed_qos_parameters_name_what_replaces_them():
    for name in ('qos_reliability', 'output_reliability', 'qos_depth'):
        assert name not in params.defaults()
        assert 'qos_overrides' in params.REMOVED[name]
    assert 'qos_overrides' in params.help_text()


def test_the_node_output_scale_is_renamed_and_the_old_name_refused_with_the_new():
    # output_scale is the model metadata's affine scale; the node's size ratio has its own name.
    assert 'output_scale' not in params.defaults() and 'depth_size_ratio' in params.defaults()
    assert 'depth_size_ratio' in params.REMOVED['output_scale']


def test_cross_checks_use_the_model_range():
    cfg = dict(params.defaults(), min_depth=12.0)
    assert params.validate(cfg) is None  # max_depth 0 = the model's, not known yet
    assert 'min_depth (12.0) must be smaller than max_depth (10.0)' in params.validate(
        cfg, (0.1, 10.0))
    manual = dict(params.defaults(), intrinsics='manual', fx=500.0, fy=500.0, cx=319.5,
                  cy=239.5)
    assert params.validate(manual) is None
    assert params.effective_depth_range(cfg, 0.1, 10.0) == (12.0, 10.0)


def test_descriptors_carry_ranges_choices_and_read_only():
    rows = params.BY_NAME
    d = params.descriptor(rows['cloud_decimation'])
    assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == (1, 16)
    d = params.descriptor(rows['resize_mode'])
    assert 'crop' in d.additional_constraints and 'from the model' in d.additional_constraints
    assert params.descriptor(rows['model_path']).read_only
    assert not params.descriptor(rows['max_depth']).read_only


def test_help_prints_the_table_and_exits_without_starting_ros():
    start = time.monotonic()
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'depth_node'),
                          '--help'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('usage: depth_node')
    for p in params.PARAMETERS:
        assert f'\n  {p.name} ' in out.stdout, p.name
    assert 'ready:' not in out.stdout + out.stderr  # no model was loaded, no node started
    assert time.monotonic() - start < 30


def test_transport_sets_the_shipped_profile_only_when_none_is_set(tmp_path):
    profile = transport.shipped_profile()
    assert profile and os.path.isfile(profile) and profile.endswith('fastdds_large_shm.xml')
    env = {}
    note = transport.apply_default_profile(env)
    assert env == {'FASTDDS_DEFAULT_PROFILES_FILE': profile} and profile in note
    env = {'ROS_DISTRO': 'humble'}
    transport.apply_default_profile(env)
    assert env['FASTRTPS_DEFAULT_PROFILES_FILE'] == profile  # Fast DDS 2 reads this name
    own = str(tmp_path / 'mine.xml')
    for name in transport.PROFILE_VARIABLES:
        env = {name: own}
        assert transport.apply_default_profile(env) is None and env == {name: own}
    env = {'FASTDDS_DEFAULT_PROFILES_FILE': ''}  # set but empty: Fast DDS's defaults
    assert transport.apply_default_profile(env) is None and env == {
        'FASTDDS_DEFAULT_PROFILES_FILE': ''}
    env = {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}
    assert transport.apply_default_profile(env) is None and len(env) == 1
    env = {'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}
    assert transport.apply_default_profile(env) and 'FASTDDS_DEFAULT_PROFILES_FILE' in env
