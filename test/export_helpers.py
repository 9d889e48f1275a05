"""Tiny torch depth networks and their exports, shared by the export/backend/bench tests."""

from mono_depth_ros.core.model_meta import ModelMeta
import torch
from torch import nn


class TinyDepthNet(nn.Module):
    """Strided conv, upsample, sigmoid: the shape of the zoo's U-Nets at a few hundred weights."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.head = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.down(x))
        y = torch.relu(self.mid(y))
        return torch.sigmoid(self.head(torch.relu(self.up(y))))


def tiny_model(seed=0):
    """Return (TinyDepthNet in eval mode, its ModelMeta)."""
    torch.manual_seed(seed)
    meta = ModelMeta(arch='tiny_test_net', input_height=32, input_width=48,
                     output_mode='inverse_depth', output_scale=9.9, output_shift=0.1,
                     min_depth=0.1, max_depth=10.0, train_fx=40.0, train_fy=41.0,
                     focal_rescale=True, dataset='none')
    return TinyDepthNet().eval(), meta


def export_tiny(tmp_path, dynamic=False, torchscript=True, **kwargs):
    """Export the tiny net; return (onnx path, torchscript path or None, meta, model)."""
    from training.export_onnx import export_model
    model, meta = tiny_model()
    onnx_path = str(tmp_path / 'tiny.onnx')
    ts_path = str(tmp_path / 'tiny.ts') if torchscript else None
    out_meta, _ = export_model(model, meta, onnx_path, dynamic=dynamic, torchscript=ts_path,
                               log=lambda _m: None, **kwargs)
    return onnx_path, ts_path, out_meta, model
