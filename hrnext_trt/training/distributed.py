"""DDP set-up for runs started by ``torchrun`` (one process per GPU, or per CPU slot with gloo).

``torchrun`` exports RANK, WORLD_SIZE and LOCAL_RANK; without them training is one process and
every helper here is a no-op. Under ``torchrun`` the process group is joined even for one
process, so ``--nproc_per_node 1`` runs the path a multi-GPU run takes (NCCL, DDP's gradient
reduction) and shows on one GPU whether it works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from hrnext_trt.errors import HrnextError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # the process group's ("nccl", "gloo"); None: a plain process

    @property
    def enabled(self) -> bool:
        """Whether this process is in a process group (started by torchrun), even alone."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    import torch
    import torch.distributed as dist

    rank, world_size, local_rank = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                                    int(os.environ.get("LOCAL_RANK", 0)))
    if device_type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise HrnextError(f"LOCAL_RANK {local_rank} but {torch.cuda.device_count()} GPUs: "
                              "set torchrun --nproc_per_node to the GPU count")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        # Rank 0 evaluates alone while the others wait: allow a long COCO evaluation.
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo", timeout=timedelta(hours=2))
    return DistInfo(rank, world_size, local_rank, str(dist.get_backend()))  # the group's, also one made before


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(value, info: DistInfo):
    """Rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value, info: DistInfo) -> list:
    """Every rank's ``value``, in rank order, on every rank."""
    if not info.enabled:
        return [value]
    import torch.distributed as dist

    out = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise sum of ``values`` over ranks."""
    if not info.enabled:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    if info.backend == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_reduce_min(value: int, info: DistInfo) -> int:
    if not info.enabled:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.int64)
    if info.backend == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def cleanup_distributed(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
