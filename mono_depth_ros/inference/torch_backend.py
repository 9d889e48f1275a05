"""
PyTorch backend: a TorchScript file (or a module handed over in code), on CPU or CUDA.

It takes the same input tensor as the ONNX graph (uint8 RGB NHWC by default) and applies
the same cast/permute/normalise in torch (:func:`graph_module`, which the ONNX export
wraps too), so every backend is fed alike. On CUDA: fp16, channels_last, and optionally a
CUDA graph captured for the fixed input shape after warm-up, which removes the per-kernel
launch cost that dominates small models at batch 1.

torch is imported lazily: the runtime package must import without it. It never imports
``training/``: a raw training checkpoint is refused with the export command
(:func:`load_torch_model`), and code that has the network itself (training/evaluate.py)
hands it over with :meth:`TorchBackend.from_module`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Tuple

from mono_depth_ros.core.model_meta import ModelMeta, ModelMetaError
from mono_depth_ros.inference.base import Backend, BackendError, is_torchscript_archive
import numpy as np

TORCHSCRIPT_META = 'meta.json'


def graph_module(model, meta: ModelMeta):
    """
    Wrap a network so it takes the model-file input (meta's dtype/layout) and returns raw depth.

    uint8 -> float / 255 -> (x - mean) / std inside the module when ``normalize_in_graph``;
    NHWC is permuted to NCHW. The output is (N, 1, H, W).
    """
    import torch

    class GraphModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model
            self.nhwc = meta.input_layout == 'NHWC'
            self.uint8 = meta.input_dtype == 'uint8'
            self.normalize = meta.normalize_in_graph
            mean = torch.tensor(meta.mean, dtype=torch.float32).view(1, 3, 1, 1)
            std = torch.tensor(meta.std, dtype=torch.float32).view(1, 3, 1, 1)
            # Folded into one multiply-add: x * scale + bias == (x / 255 - mean) / std.
            divisor = 255.0 if self.uint8 else 1.0
            self.register_buffer('scale', 1.0 / (std * divisor))
            self.register_buffer('bias', -mean / std)

        def forward(self, image):
            x = image.permute(0, 3, 1, 2) if self.nhwc else image
            # type_as (not .to(dtype)) so a traced module follows .half() of its buffers.
            x = x.type_as(self.scale)
            if self.normalize:
                x = x * self.scale + self.bias
            elif self.uint8:
                x = x / 255.0
            y = self.net(x)
            if y.dim() == 3:
                y = y.unsqueeze(1)
            return y

    return GraphModule()


def torch_available() -> Tuple[bool, str]:
    """Return (True, version) when torch imports, else (False, reason)."""
    try:
        import torch
    except ImportError as exc:
        return False, f'torch not importable ({exc})'
    return True, torch.__version__


def untrusted_code_error(path: str) -> BackendError:
    """Return the refusal of a TorchScript file that nobody said to trust."""
    return BackendError(
        f'{path} is TorchScript, which is code: loading it runs what it contains (a scripted '
        "__setstate__ can read and write files) with this process's rights. Load it only if "
        'you trust it as you trust code: trust_model_code:=true (depth_bench and evaluate: '
        '--trust-model-code); or run its ONNX export, which is data')


def load_torch_model(path: str, map_location='cpu', trust_model_code: bool = False):
    """
    Return (module in eval mode, ModelMeta, 'torchscript') from a TorchScript file.

    The installed package runs what a file carries by itself: TorchScript (graph and
    weights, with its metadata in ``meta.json``), ONNX or a TensorRT engine. A training
    checkpoint holds only weights, and rebuilding its network needs the model zoo, which
    lives in ``training/`` and is not installed on a robot; so it is refused with the one
    command that turns it into something the node runs.

    TorchScript is a program: ``torch.jit.load`` runs its scripted code (``__setstate__``)
    before any metadata can be checked. So it is loaded only with ``trust_model_code``;
    without it nothing in the file runs and :func:`untrusted_code_error` is raised.
    """
    if not os.path.isfile(path):
        raise BackendError(f'model file not found: {path}')
    if not trust_model_code:
        if is_torchscript_archive(path):
            raise untrusted_code_error(path)
        raise BackendError(
            f'{path} is not TorchScript; a training checkpoint needs exporting first: '
            f'python training/export_onnx.py --checkpoint {path} --output model.onnx')
    try:
        return _load_torchscript(path, map_location)
    except _NotTorchScript as exc:
        raise BackendError(
            f'{path} is not TorchScript ({exc}); a training checkpoint needs exporting '
            f'first: python training/export_onnx.py --checkpoint {path} --output model.onnx '
            '[--torchscript model.ts]') from None


class _NotTorchScript(Exception):
    """The file is no TorchScript archive (a raw checkpoint, or not torch at all)."""


def graph_input_meta(meta: ModelMeta) -> ModelMeta:
    """
    Return meta for the wrapped network: uint8 RGB NHWC in, normalised inside.

    A training checkpoint describes its bare network (float NCHW, normalised by the data
    loader). Wrapped by :func:`graph_module` it takes what the exported ONNX graph takes, so
    every backend is fed the same tensor and the normalisation runs on the device, on a
    quarter of the bytes. It says what a scale source must fit (``scale_unknown``) as the
    export writes it, not left to the output mode.
    """
    return dataclasses.replace(meta, input_dtype='uint8', input_layout='NHWC',
                               normalize_in_graph=True, scale_unknown=meta.unknown)


def _load_torchscript(path: str, map_location):
    import torch
    extra = {TORCHSCRIPT_META: ''}
    try:
        module = torch.jit.load(path, map_location=map_location, _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - RuntimeError or pickle errors
        raise _NotTorchScript(str(exc).strip().splitlines()[0][:200]) from exc
    text = extra[TORCHSCRIPT_META]
    if isinstance(text, bytes):
        text = text.decode('utf-8', errors='replace')
    if not text:
        raise BackendError(f'{path} has no {TORCHSCRIPT_META}: export it with '
                           'training/export_onnx.py --torchscript')
    try:
        meta = ModelMeta.from_json(text)  # huge numbers, deep nesting: one line too
    except ModelMetaError as exc:
        raise BackendError(f'{path}: bad {TORCHSCRIPT_META}: {exc}') from exc
    return module.eval(), meta, 'torchscript'


def _device(device: str, precision: str) -> str:
    """Resolve 'auto' and check that the device can run the precision."""
    import torch
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise BackendError('device cuda requested but torch sees no CUDA device')
    if precision == 'int8':
        raise BackendError('the torch backend runs fp32 or fp16 (int8 needs TensorRT)')
    if precision == 'fp16' and not device.startswith('cuda'):
        raise BackendError('fp16 needs CUDA in the torch backend (CPU half convolutions '
                           'are slow or missing)')
    return device


class TorchBackend(Backend):
    """Run a depth network with PyTorch (TorchScript, or a module from code)."""

    name = 'torch'

    @classmethod
    def is_available(cls) -> Tuple[bool, str]:
        return torch_available()

    @classmethod
    def from_file(cls, model_path: str, precision: str = 'fp32', device: str = 'auto',
                  channels_last: bool = True, cuda_graphs: bool = False,
                  trust_model_code: bool = False, **_options) -> 'TorchBackend':
        """Load a TorchScript file, only with ``trust_model_code`` (it is code)."""
        ok, why = torch_available()
        if not ok:
            raise BackendError(why)
        if model_path.lower().endswith('.onnx'):
            raise BackendError('the torch backend runs TorchScript, not ONNX')
        device = _device(device, precision)
        net, meta, kind = load_torch_model(model_path, map_location=device,
                                           trust_model_code=trust_model_code)
        return cls(model_path, net, meta, kind, precision, device, channels_last, cuda_graphs)

    @classmethod
    def from_module(cls, module, meta: ModelMeta, precision: str = 'fp32',
                    device: str = 'auto', channels_last: bool = True,
                    cuda_graphs: bool = False, name: str = 'module') -> 'TorchBackend':
        """
        Run a module that takes the model-file input meta describes (see graph_module).

        For code that holds the network itself, e.g. training/evaluate.py with a checkpoint:
        ``from_module(graph_module(net, graph_input_meta(meta)), graph_input_meta(meta))``.
        """
        ok, why = torch_available()
        if not ok:
            raise BackendError(why)
        device = _device(device, precision)
        return cls(name, module, meta, 'module', precision, device, channels_last, cuda_graphs)

    def __init__(self, model_path: str, module, meta: ModelMeta, kind: str,
                 precision: str = 'fp32', device: str = 'cpu', channels_last: bool = True,
                 cuda_graphs: bool = False):
        import torch
        super().__init__(model_path, meta, precision)
        self.kind = kind
        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == 'fp16' else torch.float32
        module = module.to(self.device).eval()
        if self.dtype == torch.float16:
            module = module.half()
        self.channels_last = bool(channels_last) and self.device.type == 'cuda'
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module
        self.use_cuda_graphs = bool(cuda_graphs) and self.device.type == 'cuda'
        self._graph = None
        self._static_in = None
        self._static_out = None
        self._pinned = None
        if self.device.type == 'cuda':
            # The input shape is fixed per stream, so cuDNN's one-off algorithm search pays.
            torch.backends.cudnn.benchmark = True
            if self.dtype == torch.float32:
                # cuDNN convolutions default to TF32 on Ampere and newer, which would make
                # 'fp32' a label for 10-bit-mantissa arithmetic, in timings and in depth.
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
        self._check_io()

    def _check_io(self) -> None:
        """Run one zero input of the metadata's shape: refuse a module that does not fit it."""
        zeros = np.zeros(self.input_shape, self.input_dtype)
        try:
            out = self.infer_tensor(self.to_device(zeros))
        except Exception as exc:  # noqa: BLE001 - shape and dtype errors come in many types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''
            raise BackendError(
                f'{self.model_path}: the module does not run on the input the metadata '
                f'describes ({self.meta.input_layout} {self.meta.input_dtype} '
                f'{list(self.input_shape)}): {type(exc).__name__}: {first}') from None
        shape = tuple(getattr(out, 'shape', ()))
        if not 2 <= len(shape) <= 4 or any(d != 1 for d in shape[:-2]):
            raise BackendError(f'{self.model_path}: output shape {list(shape)}; expected one '
                               'depth map (1, 1, H, W), (1, H, W) or (H, W)')

    def _run(self, x):
        with self.torch.inference_mode():
            return self.module(x)

    def _capture(self, x):
        torch = self.torch
        self._static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        # Warm-up on a side stream is what CUDA graph capture requires (cuDNN autotune,
        # lazy allocations happen here, not inside the graph).
        with torch.cuda.stream(side):
            for _ in range(3):
                self._run(self._static_in)
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._static_out = self._run(self._static_in)

    def infer_tensor(self, x):
        """Run on a device tensor of the model's input dtype; return the output tensor."""
        if not self.use_cuda_graphs:
            return self._run(x)
        if self._graph is None or self._static_in.shape != x.shape:
            self._capture(x)
        self._static_in.copy_(x)
        self._graph.replay()
        return self._static_out

    def to_device(self, tensor: np.ndarray):
        """Copy a host input tensor to the device (pinned, non-blocking on CUDA)."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(tensor))
        if self.device.type == 'cuda':
            # One pinned staging buffer, reused: pinning per frame costs more than the copy.
            # Reusing it is safe because infer() waits for its output before the next frame.
            if self._pinned is None or self._pinned.shape != x.shape or \
                    self._pinned.dtype != x.dtype:
                self._pinned = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
            self._pinned.copy_(x)
            x = self._pinned.to(self.device, non_blocking=True)
        if x.dtype != torch.uint8:
            x = x.to(self.dtype)
        return x

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        out = self.infer_tensor(self.to_device(tensor))
        out = out.float().cpu().numpy()  # .cpu() synchronises
        return out.reshape(out.shape[-2:])

    def synchronize(self) -> None:
        """Wait for queued device work (for honest timing)."""
        if self.device.type == 'cuda':
            self.torch.cuda.synchronize(self.device)

    def describe(self) -> str:
        extras = []
        if self.channels_last:
            extras.append('channels_last')
        if self.use_cuda_graphs:
            extras.append('cuda graphs')
        tail = f' ({", ".join(extras)})' if extras else ''
        return f'torch {self.torch.__version__} {self.device} {self.precision} {self.kind}{tail}'

    def close(self) -> None:
        self._graph = None
        self._static_in = self._static_out = self._pinned = None
        self.module = None
