"""
Devices, processes and seeds of a training run: what makes it reproducible and resumable.

Under ``torchrun`` each process reads its rank from the environment (:class:`DistInfo`)
and joins the process group (gloo on CPU, nccl on CUDA); :class:`EpochSampler` is a
function of (seed, epoch), sharded over the ranks, so a resumed run sees exactly the
batches the interrupted one had not reached.
"""

import math
import os
import random
from typing import Iterator, List

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


class DistInfo:
    """Rank and world size from the torchrun environment (1 process when absent)."""

    def __init__(self):
        self.world = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        self.local_rank = int(os.environ.get('LOCAL_RANK', '0'))

    @property
    def enabled(self) -> bool:
        """Return True under torchrun with more than one process."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Return True on the process that logs and writes files."""
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    info = DistInfo()
    if info.enabled and not dist.is_initialized():
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return info


def resolve_device(name: str) -> torch.device:
    """Return the torch device for 'auto', 'cpu', 'cuda' or 'cuda:N' (LOCAL_RANK under DDP)."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError('device cuda requested but CUDA is not available')
        return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """Seed a loader worker's python and numpy from its torch seed."""
    seed = torch.initial_seed() % (2 ** 32)
    np.random.seed(seed)
    random.seed(seed)


class EpochSampler(Sampler):
    """
    A permutation that is a function of (seed, epoch), sharded over ranks, resumable.

    ``start`` skips the first samples of this rank's share, so a run resumed mid-epoch
    sees exactly the batches the interrupted run had not reached.
    """

    def __init__(self, size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 start: int = 0, shuffle: bool = True):
        self.size, self.seed, self.epoch = size, seed, epoch
        self.rank, self.world, self.start, self.shuffle = rank, world, start, shuffle
        self.per_rank = math.ceil(size / world)

    def _indices(self) -> List[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
            order = torch.randperm(self.size, generator=gen).tolist()
        else:
            order = list(range(self.size))
        order += order[:self.per_rank * self.world - self.size]  # equal shares, as DDP needs
        return order[self.rank::self.world][self.start:]

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's indices from ``start`` on."""
        return iter(self._indices())

    def __len__(self) -> int:
        """Return the number of indices yielded."""
        return max(0, self.per_rank - self.start)
