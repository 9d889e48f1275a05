"""
Validation of a training run: a task's predictions over a loader, scored per image.

:func:`evaluate_batches` runs the model in eval mode and scores each image against its
ground truth (:mod:`training.metrics`); :func:`average_metrics` averages the images that
have valid ground truth.
"""

from typing import Any, Dict, List, Mapping, Optional

import torch
from training.tasks import Task


def average_metrics(rows: List[Optional[Mapping[str, float]]]) -> Dict[str, float]:
    """Average per-image metric dicts, leaving out images without valid ground truth."""
    from training import metrics
    rows = [r for r in rows if r is not None]
    return metrics.average_metrics(rows) if rows else {}


def evaluate_batches(task: Task, model, loader, device, min_depth: float, max_depth: float,
                     crop=None, median_scaling: bool = False):
    """Yield (batch, prediction, per-image metric dicts) over a loader, model in eval mode."""
    from training.metrics import compute_depth_metrics, NoValidPixelsError
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            batch = to_device(batch, device)
            pred = task.predict(model, batch).float().cpu().numpy()
            gt = batch['depth'].cpu().numpy()
            rows = []
            for i in range(pred.shape[0]):
                try:
                    rows.append(compute_depth_metrics(
                        pred[i, 0], gt[i, 0], min_depth=min_depth, max_depth=max_depth,
                        crop=crop, median_scaling=median_scaling))
                except NoValidPixelsError:
                    rows.append(None)  # no ground truth in range: the image cannot count
            yield batch, pred, rows
    finally:
        model.train(was_training)


def to_device(batch: Mapping[str, Any], device) -> Dict[str, Any]:
    """Move the tensors of a batch to device (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}
