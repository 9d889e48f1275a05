"""docs/parameters.md is generated from the parameter tables and is current."""

import os

from mono_depth_ros.ros import params, sample_camera
from mono_depth_ros.tools import param_reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, 'docs', 'parameters.md')


def test_committed_reference_is_current():
    with open(REFERENCE, encoding='utf-8') as handle:
        committed = handle.read()
    assert committed == param_reference.render(), (
        'docs/parameters.md is out of date: run python -m mono_depth_ros.tools.param_reference '
        'docs/parameters.md')


def test_every_parameter_has_a_row_with_its_default_and_limits():
    text = param_reference.render()
    for table in (params.PARAMETERS, sample_camera.PARAMETERS):
        for p in table:
            rows = [line for line in text.splitlines() if line.startswith(f'| `{p.name}` |')]
            assert rows, p.name
            assert any(param_reference._default(p.default) in row for row in rows), p.name
            limits = p.float_range or p.int_range
            if limits is not None:
                assert any(f'{limits[0]:g} to {limits[1]:g}' in row for row in rows), p.name
            for choice in p.choices or ():
                shown = "`''`" if choice == '' else f'`{choice}`'
                assert any(shown in row for row in rows), (p.name, choice)


def test_check_mode_reports_a_stale_file(tmp_path):
    stale = tmp_path / 'parameters.md'
    stale.write_text('old\n')
    assert param_reference.main([str(stale), '--check']) == 1
    assert param_reference.main([str(stale)]) == 0
    assert param_reference.main([str(stale), '--check']) == 0
    assert stale.read_text() == param_reference.render()
