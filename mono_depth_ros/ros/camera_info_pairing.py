"""
Pairing each image with the CameraInfo of its stamp, as depth_image_proc's camera subscriber.

CameraInfo messages are kept by stamp (:class:`.camera.CameraInfoBuffer`); the worker asks
for the one of its image's stamp, else the nearest within ``camera_info_tolerance``, else
the newest. An image may overtake its CameraInfo (two topics): the worker then waits up to
``CAMERA_INFO_WAIT_S`` for it, unless a newer image is waiting in the mailbox or the
stream's stamps plainly do not match (``UNPAIRED_STREAK`` images in a row paired with the
newest, as with a static or differently stamped CameraInfo), where waiting would only add
latency.
"""

import threading
import time
from typing import Optional, Tuple

from mono_depth_ros.core.camera import Camera, CameraInfoBuffer
from mono_depth_ros.ros.mailbox import Mailbox

# How long the worker waits for the CameraInfo of an image that arrived before it.
CAMERA_INFO_WAIT_S = 0.05
# After this many images in a row without a CameraInfo of their stamp, stop waiting for one.
UNPAIRED_STREAK = 3


class CameraInfoPairing:
    """The CameraInfo cameras by stamp (executor side) and their pairing (worker side)."""

    def __init__(self, mailbox: Mailbox):
        self._mailbox = mailbox
        self._cameras = CameraInfoBuffer()
        #: images in a row paired with the newest CameraInfo, not their own
        self.unpaired_streak = 0

    def add(self, stamp_ns: int, camera: Camera) -> None:
        """Keep a CameraInfo's camera, waking a worker that waits for it."""
        cond = self._mailbox.cond
        with cond:
            self._cameras.add(stamp_ns, camera)
            cond.notify_all()

    def pair(self, image_stamp_ns: int, tolerance: float,
             stop: threading.Event) -> Tuple[Optional[Camera], str]:
        """
        Return (camera, how) for an image: how as :meth:`.CameraInfoBuffer.match` says.

        Waits as the module docstring says, and keeps ``unpaired_streak``.
        """
        deadline = time.monotonic() + CAMERA_INFO_WAIT_S
        cond = self._mailbox.cond
        with cond:
            camera, how = self._cameras.match(image_stamp_ns, tolerance)
            synced = self.unpaired_streak < UNPAIRED_STREAK
            while (how in ('none', 'newest') and synced and image_stamp_ns > 0 and
                   not stop.is_set()):
                left = deadline - time.monotonic()
                if left <= 0 or self._mailbox.waiting():
                    break
                cond.wait(left)
                camera, how = self._cameras.match(image_stamp_ns, tolerance)
        if how == 'newest':
            self.unpaired_streak += 1
        elif how in ('exact', 'nearest'):
            self.unpaired_streak = 0
        return camera, how
