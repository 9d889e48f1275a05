"""
The DDS transport the node needs for its large outputs, applied before ``rclpy.init``.

Fast DDS's default shared-memory segment is 512 KiB, so best-effort images and clouds
larger than that (a 640x480 depth image is 1.2 MB) are almost never delivered to another
process on the same machine. When the environment names no Fast DDS profile and the RMW is
Fast DDS, the node points Fast DDS at the package's ``config/fastdds_large_shm.xml`` (a
16 MiB segment) itself. A profile the user set is always honoured, and so is a profile
variable set to the empty string (the user wants Fast DDS's defaults).
"""

from __future__ import annotations

import os
from typing import MutableMapping, Optional

from mono_depth_ros.core.paths import package_file

PROFILE_NAME = 'fastdds_large_shm.xml'
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
# The RMW every supported distribution uses when RMW_IMPLEMENTATION is unset.
FASTDDS_RMWS = ('', 'rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp')


def shipped_profile() -> Optional[str]:
    """Return the installed (share/) or source-tree path of the profile, or None."""
    path = package_file('config', PROFILE_NAME)
    return path if os.path.isfile(path) else None


def profile_variable(environ: MutableMapping[str, str]) -> str:
    """Return the variable the running Fast DDS reads (FASTRTPS_ on Humble's Fast DDS 2)."""
    # Fast DDS 3 (Jazzy and later) warns that the old name is deprecated when it is set.
    if environ.get('ROS_DISTRO', '') == 'humble':
        return 'FASTRTPS_DEFAULT_PROFILES_FILE'
    return 'FASTDDS_DEFAULT_PROFILES_FILE'


def apply_default_profile(environ: MutableMapping[str, str],
                          profile: Optional[str] = None) -> Optional[str]:
    """
    Set the shipped Fast DDS profile in ``environ`` when nothing else is configured.

    Return a sentence to log when it did, else None (another RMW, a user's profile, or no
    profile file found). A profile variable that is set but empty is the user's choice
    too: Fast DDS's own defaults.
    """
    if any(name in environ for name in PROFILE_VARIABLES):
        return None
    if environ.get('RMW_IMPLEMENTATION', '') not in FASTDDS_RMWS:
        return None
    path = profile or shipped_profile()
    if not path:
        return None
    variable = profile_variable(environ)
    environ[variable] = path
    return (f'transport: no Fast DDS profile was set, so using the shipped large '
            f'shared-memory profile ({variable}={path}) for best-effort delivery of large '
            'images and clouds; set that variable to use your own')
