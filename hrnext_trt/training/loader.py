"""Reproducible training batches: the order and augmentation of an epoch follow from (seed, epoch).

The sample order comes from ``DistributedSampler.set_epoch`` (used in a single process too) and
the DataLoader draws its workers' seeds from a private generator seeded with (seed, epoch,
rank): worker ``w`` of epoch ``e`` seeds torch (which ``TopDownDataset`` draws its augmentation
from) with a value fixed by (seed, e, rank, w). A run resumed at an epoch boundary therefore
sees the batches the uninterrupted run saw. With ``num_workers=0`` augmentation draws from the
main process's torch generator, whose state every checkpoint carries.
"""

from __future__ import annotations

import numpy as np


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def train_loader(dataset, batch_size: int, num_workers: int, seed: int, epoch: int, rank: int, world_size: int,
                 pin_memory: bool = False):
    """The batches of one epoch for one rank (full batches only, so every epoch has one length).

    Unreadable images are dropped from their batch and listed in ``batch["skipped"]``.
    """
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    from hrnext_trt.data.torch_dataset import collate_topdown  # imports torch

    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=True)
    sampler.set_epoch(epoch)
    # Without a generator of its own, DataLoader would draw its base seed from the global torch
    # generator, tying worker seeds to everything else that drew from it before.
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, rank))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                      collate_fn=collate_topdown, pin_memory=pin_memory, generator=generator)


def iterations_per_epoch(num_samples: int, batch_size: int, world_size: int) -> int:
    per_rank = num_samples // world_size  # DistributedSampler(drop_last=True)
    return per_rank // batch_size
