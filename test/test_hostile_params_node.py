"""Dependent parameters set together, and frame_id checks, on a running depth_node (issue 25)."""

from onnx_models import brightness_model
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters, SetParametersAtomically
from ros_harness import Harness, Process

pytestmark = pytest.mark.ros

FQN = '/depth_params25'


@pytest.fixture(scope='module')
def node(ros, tmp_path_factory):
    path = tmp_path_factory.mktemp('models') / 'brightness.onnx'
    brightness_model(path, 24, 32)
    proc = Process('depth_node', ['-r', f'__node:={FQN[1:]}', '-p', f'model_path:={path}'],
                   str(tmp_path_factory.mktemp('logs')))
    harness = Harness('harness_params25')
    yield proc, harness
    harness.destroy()
    assert proc.stop() == 0, proc.output()


def _value(value):
    if isinstance(value, str):
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))


def _call(harness, srv, name, request):
    client = harness.node.create_client(srv, f'{FQN}/{name}')
    assert client.wait_for_service(timeout_sec=20.0), f'{FQN}/{name} never appeared'
    future = client.call_async(request)
    harness.wait_for(future.done, 10, name)
    harness.node.destroy_client(client)
    return future.result()


def _set(harness, atomically=False, **values):
    params = [Parameter(name=k, value=_value(v)) for k, v in values.items()]
    if atomically:
        return [_call(harness, SetParametersAtomically, 'set_parameters_atomically',
                      SetParametersAtomically.Request(parameters=params)).result]
    return _call(harness, SetParameters, 'set_parameters',
                 SetParameters.Request(parameters=params)).results


def _get(harness, name):
    [value] = _call(harness, GetParameters, 'get_parameters',
                    GetParameters.Request(names=[name])).values
    return value.string_value if value.type == ParameterType.PARAMETER_STRING else \
        value.double_value


def test_switching_to_manual_intrinsics_in_one_atomic_call(node):
    _, harness = node
    # One at a time (what `ros2 param set` does), manual first is refused: no fx yet.
    [first] = _set(harness, intrinsics='manual')
    assert not first.successful and 'fx' in first.reason
    [result] = _set(harness, atomically=True, intrinsics='manual', fx=25.0, fy=25.0, cx=15.5,
                    cy=11.5)
    assert result.successful, result.reason
    assert _get(harness, 'intrinsics') == 'manual' and _get(harness, 'cy') == 11.5
    [back] = _set(harness, atomically=True, intrinsics='camera_info')
    assert back.successful, back.reason


@pytest.mark.parametrize('frame_id, words', [
    ('x' * 100_000, '100000 characters'),
    ('/camera_optical_frame', "start with '/'"),
    ('camera optical', 'space'),
    ('camera\toptical', 'control'),
], ids=['long', 'slash', 'space', 'tab'])
def test_frame_id_that_is_no_frame_name_is_refused(node, frame_id, words):
    _, harness = node
    [result] = _set(harness, frame_id=frame_id)
    assert not result.successful and 'frame_id' in result.reason and words in result.reason, \
        result.reason[:300]
    assert len(result.reason) < 400
    [ok] = _set(harness, frame_id='camera_optical_frame')
    assert ok.successful, ok.reason
    [ok] = _set(harness, frame_id='')
    assert ok.successful, ok.reason


def test_bad_frame_id_at_start_is_one_line(ros, tmp_path):
    path = tmp_path / 'brightness.onnx'
    brightness_model(path, 24, 32)
    proc = Process('depth_node', ['-p', f'model_path:={path}', '-p',
                                  'frame_id:=/camera_optical_frame'], str(tmp_path))
    assert proc.popen.wait(60) == 1, proc.output()
    out = proc.output().strip()
    assert len(out.splitlines()) == 1 and 'frame_id' in out, out


@pytest.mark.parametrize('args, words', [
    (['-p', 'camera_info_url:=file:///etc/passwd'], 'camera_info_url'),
    (['-p', 'width:=8192', '-p', 'height:=8192'], 'above 8847360'),
    (['-p', 'width:=16384'], 'width'),
], ids=['passwd', 'too_many_pixels', 'too_wide'])
def test_sample_camera_refuses_in_one_line(ros, tmp_path, args, words):
    proc = Process('sample_camera', args, str(tmp_path))
    assert proc.popen.wait(30) == 1, proc.output()
    out = proc.output().strip()
    assert len(out.splitlines()) == 1 and words in out and 'Traceback' not in out, out
