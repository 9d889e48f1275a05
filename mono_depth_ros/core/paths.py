"""Where the package's data files (models, config) are: installed share/ or the source tree."""

import os


def package_file(folder: str, name: str) -> str:
    """
    Return ``share/mono_depth_ros/<folder>/<name>`` of a colcon install when it exists there.

    Otherwise return the same file in the source tree (a ``pip -e`` or source checkout), which
    may not exist; callers check.
    """
    try:
        from ament_index_python.packages import get_package_share_directory
        path = os.path.join(get_package_share_directory('mono_depth_ros'), folder, name)
        if os.path.isfile(path):
            return path
    except Exception:  # noqa: BLE001 - not installed through colcon (pip -e, source tree)
        pass
    source_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(source_root, folder, name)
