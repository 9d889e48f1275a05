"""scripts/bench/bench_geometry.py runs on the Redwood frame; with Open3D present, it agrees."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_geometry_compares_against_open3d_when_present(shared_data):
    script = os.path.join(ROOT, 'scripts', 'bench', 'bench_geometry.py')
    out = subprocess.run([sys.executable, script,
                          '--data', str(shared_data / 'redwood'), '--repeats', '2',
                          '--reference-repeats', '0'],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'Redwood frame 00000' in out.stdout
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()
            if line.startswith(('xyz ', 'xyzrgb '))}
    assert set(rows) == {'xyz', 'xyzrgb'}
    try:
        import open3d  # noqa: F401
    except ImportError:
        assert 'open3d: not installed' in out.stdout
        return
    for layout, row in rows.items():
        ratio = float(row[6].rstrip('x'))
        dxyz = float(row[8])
        assert ratio > 0 and dxyz < 1e-5, (layout, row)  # the same points as Open3D's
    assert not re.search(r'colours differ', out.stdout), out.stdout
