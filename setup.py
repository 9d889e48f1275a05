"""Install mono_depth_ros (ament_python)."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'mono_depth_ros'


def tree(folder):
    """List (install_dir, [files]) pairs for every file under folder, keeping sub-folders."""
    entries = {}
    for path in glob(os.path.join(folder, '**', '*'), recursive=True):
        if os.path.isfile(path):
            target = os.path.join('share', PACKAGE, os.path.dirname(path))
            entries.setdefault(target, []).append(path)
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'training', 'training.*',
                                    'scripts', 'scripts.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
    ] + tree('config') + tree('models'),
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='mono_depth_ros maintainers',
    maintainer_email='maintainers@mono-depth-ros.dev',
    description='Metric depth and point clouds from one RGB camera with a CNN depth model.',
    license='Apache-2.0',
    # colcon test runs pytest when it is a test extra (tests_require is gone from setuptools).
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'depth_node = mono_depth_ros.ros.depth_node:main',
            'depth_node_managed = mono_depth_ros.ros.managed_node:main',
            'sample_camera = mono_depth_ros.ros.sample_camera:main',
            'build_engine = mono_depth_ros.tools.build_engine:main',
            'depth_bench = mono_depth_ros.tools.depth_bench:main',
            'import_model = mono_depth_ros.tools.import_model:main',
        ],
    },
)
