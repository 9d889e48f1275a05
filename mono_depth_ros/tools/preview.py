"""
The demo's preview panels: labelled pictures, a point cloud seen from the side, a real row.

``scripts/demo.py`` stacks them into ``preview.png``; they need only numpy, OpenCV and the
node's own frame pipeline.
"""

import os

import cv2
from mono_depth_ros.core.colormap import colorize_depth
import numpy as np

#: the source tree (``mono_depth_ros/tools/preview.py`` is three levels below it)
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def render_cloud(xyz, rgb, size=(320, 240)):
    """Render an organized cloud from above and to the side, with a z-buffer."""
    pts = xyz.reshape(-1, 3)
    col = rgb.reshape(-1, 3) if rgb is not None else np.full((len(pts), 3), 200, np.uint8)
    keep = np.isfinite(pts).all(1)
    pts, col = pts[keep].astype(np.float64), col[keep]
    if len(pts) == 0:
        return np.zeros((size[1], size[0], 3), np.uint8)
    centre = np.median(pts, axis=0)
    a, b = np.radians(35.0), np.radians(-30.0)  # pitch down, yaw
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    p = (pts - centre) @ (rx @ ry).T + np.array([0.0, 0.0, 1.1 * np.linalg.norm(
        np.percentile(pts, 95, 0) - np.percentile(pts, 5, 0)) + 0.5])
    f = 0.9 * size[0]
    front = p[:, 2] > 0.1
    p, col = p[front], col[front]
    u = np.round(p[:, 0] / p[:, 2] * f + size[0] / 2).astype(int)
    v = np.round(p[:, 1] / p[:, 2] * f + size[1] / 2).astype(int)
    ok = (u >= 0) & (u < size[0]) & (v >= 0) & (v < size[1])
    order = np.argsort(-p[ok, 2])  # far first, near overwrites
    image = np.full((size[1], size[0], 3), 30, np.uint8)
    uu, vv, cc = u[ok][order], v[ok][order], col[ok][order]
    for du in (0, 1):
        for dv in (0, 1):
            image[np.clip(vv + dv, 0, size[1] - 1), np.clip(uu + du, 0, size[0] - 1)] = cc
    return image


# A copy room the starter never trained on (FastDepth saw NYU's whole train split, this
# picture's scene included: models/README.md)
REAL_SAMPLE = ('nyu', 'rgb/0010.png', 'depth/0010.png')


def real_row(model_path, width, data=None):
    """
    Return input | predicted | ground truth | blank panels for a real NYU picture, or None.

    The picture goes through the node's own frame pipeline (ONNX Runtime and FrameProcessor,
    as depth_node runs it), so the row shows what the robot would publish for a real camera;
    None when the shared sample data is not there (a user's clone) or the model cannot run.
    """
    from mono_depth_ros.core.frame import FrameConfig, FrameProcessor
    from mono_depth_ros.core.intrinsics import preset
    from mono_depth_ros.inference.base import create_backend
    data = data or os.environ.get('MONO_DEPTH_SHARED_DATA') or os.path.join(
        SOURCE_ROOT, '..', 'shared', 'data')
    folder, rgb_name, depth_name = REAL_SAMPLE
    paths = [os.path.join(data, folder, name) for name in (rgb_name, depth_name)]
    if not all(os.path.isfile(path) for path in paths):
        # A user's clone has no sample data: say so in one line, not OpenCV's warnings.
        print('demo: no real NYU sample picture here; the preview shows synthetic rooms only')
        return None
    bgr = cv2.imread(paths[0], cv2.IMREAD_COLOR)
    gt = cv2.imread(paths[1], cv2.IMREAD_UNCHANGED)
    if bgr is None or gt is None:
        print(f'demo: cannot read {paths[0]} or {paths[1]}; no real-image preview')
        return None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    gt = gt.astype(np.float32) / 1000.0
    try:
        backend = create_backend('onnxruntime', model_path)
        depth = FrameProcessor(backend.meta, backend, FrameConfig()).run(
            rgb, preset('kinect_nyu')).depth
    except Exception as exc:  # noqa: BLE001 - the preview must not fail the demo
        print(f'demo: no real-image preview ({exc})')
        return None
    valid = gt > 0
    lo, hi = (float(v) for v in np.percentile(gt[valid], [2, 98]))
    panels = [label(rgb, 'input (real NYU picture)'),
              label(colorize_depth(depth, lo, hi, inverse=False), 'predicted depth'),
              label(colorize_depth(np.where(valid, np.clip(gt, lo, hi), np.nan), lo, hi,
                                   inverse=False), 'ground truth (Kinect)')]
    row = np.hstack(panels)
    if row.shape[1] < width:
        row = np.hstack([row, np.zeros((row.shape[0], width - row.shape[1], 3), np.uint8)])
    return row[:, :width]


def label(image, text):
    """Return image at 320 x 240 with text on a black band at the top."""
    out = cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)
    cv2.rectangle(out, (0, 0), (320, 22), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out
