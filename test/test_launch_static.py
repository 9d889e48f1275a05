"""The launch file, config and package metadata agree with the documented interface."""

import ast
from pathlib import Path
import re
import xml.etree.ElementTree as ET

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DESIGN_ARGUMENTS = {'image_topic', 'camera_info_topic', 'model_path', 'backend', 'intrinsics',
                    'params_file', 'namespace', 'use_sample_camera', 'rviz'}


def console_scripts():
    text = (ROOT / 'setup.py').read_text()
    return dict(re.findall(r"'(\w+) = (mono_depth_ros[\w.]+):main'", text))


def launch_tree():
    return ast.parse((ROOT / 'launch' / 'depth.launch.py').read_text())


def test_launch_arguments_match_design_and_are_described():
    tree = launch_tree()
    args = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and
                getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
    entries = [ast.literal_eval(e) for e in args.value.elts]
    names = {e[0] for e in entries}
    assert DESIGN_ARGUMENTS | {'managed', 'dds_profile'} <= names
    assert all(len(e[2]) > 15 for e in entries), 'every argument needs a description'
    defaults = {e[0]: e[1] for e in entries}
    assert defaults['use_sample_camera'] == 'false' and defaults['rviz'] == 'false'
    assert defaults['managed'] == 'false'
    # Node arguments default to empty (= not given), so they never override a params file.
    assert defaults['model_path'] == defaults['backend'] == defaults['intrinsics'] == ''
    used = {c.slice.value for c in ast.walk(tree) if isinstance(c, ast.Subscript) and
            getattr(c.value, 'id', '') == 'arg' and isinstance(c.slice, ast.Constant)}
    node_args = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and
                     getattr(n.targets[0], 'id', '') == 'NODE_ARGUMENTS')
    used |= set(ast.literal_eval(node_args.value))
    assert used == names, f'declared but unused: {names - used}; undeclared: {used - names}'


def test_launch_names_existing_executables_and_installed_files():
    tree = launch_tree()
    scripts = console_scripts()
    strings = [c.value for c in ast.walk(tree) if isinstance(c, ast.Constant) and
               isinstance(c.value, str)]
    for executable in ('depth_node', 'depth_node_managed', 'sample_camera'):
        assert executable in strings and executable in scripts
        module = scripts[executable].replace('.', '/') + '.py'
        assert (ROOT / module).is_file()
    for folder, name in (('config', 'depth.yaml'), ('config', 'depth.rviz'),
                         ('config', 'fastdds_large_shm.xml'), ('config', 'fastdds_defaults.xml')):
        assert name in strings and (ROOT / folder / name).is_file()
    setup = (ROOT / 'setup.py').read_text()
    assert "tree('config')" in setup and "glob('launch/*.launch.py')" in setup
    assert "tree('models')" in setup


def test_params_file_declares_only_real_parameters():
    from mono_depth_ros.ros.params import defaults
    data = yaml.safe_load((ROOT / 'config' / 'depth.yaml').read_text())
    params = data['/**']['ros__parameters']
    assert set(params) == set(defaults())
    for name, value in params.items():
        default = defaults()[name]
        assert type(value) is type(default), name


@pytest.mark.parametrize('name, fx, width', [('kinect_nyu', 518.8579, 640),
                                             ('kitti', 721.5377, 1242)])
def test_intrinsics_files_are_camera_info_manager_yaml(name, fx, width):
    from mono_depth_ros.core.intrinsics import load_camera_info_yaml
    intr = load_camera_info_yaml(str(ROOT / 'config' / 'intrinsics' / f'{name}.yaml'))
    assert intr.fx == fx and intr.width == width
    data = yaml.safe_load((ROOT / 'config' / 'intrinsics' / f'{name}.yaml').read_text())
    assert data['distortion_model'] == 'plumb_bob' and len(data['projection_matrix']['data']) == 12


def test_rviz_config_shows_the_outputs():
    data = yaml.safe_load((ROOT / 'config' / 'depth.rviz').read_text())
    displays = data['Visualization Manager']['Displays']
    topics = {d.get('Topic', {}).get('Value') for d in displays}
    assert {'/depth/image', '/depth/colored', '/points', '/camera/image_raw'} <= topics
    assert data['Visualization Manager']['Global Options']['Fixed Frame'].endswith('optical_frame')


def test_package_xml_is_format_3_with_rosdep_keys():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3' and root.findtext('name') == 'mono_depth_ros'
    deps = {e.text for e in root if e.tag.endswith('depend')}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'python3-numpy',
            'python3-opencv', 'python3-yaml', 'ament_flake8', 'ament_pep257',
            'python3-pytest'} <= deps
    assert root.find('export/build_type').text == 'ament_python'
    assert (ROOT / 'resource' / 'mono_depth_ros').is_file()


def test_package_xml_runs_headless_and_declares_jpeg_decoding():
    root = ET.parse(ROOT / 'package.xml').getroot()
    run = {e.text for e in root if e.tag in ('exec_depend', 'depend')}
    # A headless robot must not pull Qt for a viewer: rviz2 is no run dependency.
    assert not {t for t in run if t.startswith('rviz')}, run
    # JPEG input needs simplejpeg (every compressed frame is refused without it); the key is
    # rosdistro's (rosdep/python.yaml: python3-simplejpeg-pip, pip package simplejpeg).
    assert 'python3-simplejpeg-pip' in run
    pinned = (ROOT / 'requirements' / 'runtime.txt').read_text()
    assert 'simplejpeg==' in pinned


def test_fastdds_profile_is_a_default_participant_profile_with_a_large_segment():
    ns = {'d': 'http://www.eprosima.com'}
    root = ET.parse(ROOT / 'config' / 'fastdds_large_shm.xml').getroot()
    shm = [t for t in root.iterfind('.//d:transport_descriptor', ns)
           if t.findtext('d:type', namespaces=ns) == 'SHM']
    assert len(shm) == 1
    # Big enough for a 640x480 xyzrgb cloud (4.9 MB) plus the depth image in flight.
    assert int(shm[0].findtext('d:segment_size', namespaces=ns)) >= 8 * 2 ** 20
    participant = root.find('.//d:participant', ns)
    assert participant.get('is_default_profile') == 'true'
    used = {t.text for t in participant.iterfind('.//d:userTransports/d:transport_id', ns)}
    declared = {t.findtext('d:transport_id', namespaces=ns)
                for t in root.iterfind('.//d:transport_descriptor', ns)}
    assert used == declared and participant.findtext('.//d:useBuiltinTransports',
                                                     namespaces=ns) == 'false'
