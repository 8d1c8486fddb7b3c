"""Training-crop throughput of TopDownDataset through a DataLoader (augmentation on).

    python scripts/bench_dataloader.py [--data-root ../shared/data/coco-mini] [--workers 0,2]

Prints crops per second for each worker count: images are read, augmented, warped, normalised
and given heatmap targets, as in training. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from hrnext_trt.data.datasets import load_dataset
from hrnext_trt.data.torch_dataset import TopDownDataset, collate_topdown

REPO = Path(__file__).resolve().parents[1]


def crops_per_second(dataset: TopDownDataset, workers: int, batch_size: int, epochs: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        collate_fn=collate_topdown, persistent_workers=workers > 0)
    next(iter(loader))  # start the workers before timing
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            count += len(batch["image"])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("HRNEXT_SHARED", REPO.parent / "shared")) / "data" / "coco-mini")
    parser.add_argument("--split", default="train")
    parser.add_argument("--input-size", default="256x192")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    height, width = (int(v) for v in args.input_size.split("x"))
    pose = load_dataset("coco", args.data_root, args.split, boxes="gt")
    dataset = TopDownDataset(pose, (height, width), train=True)
    print(f"coco {args.split}: {len(dataset)} people, input {height}x{width}, batch {args.batch_size}")
    for workers in (int(w) for w in args.workers.split(",")):
        rate = crops_per_second(dataset, workers, args.batch_size, args.epochs)
        print(f"workers={workers}: {rate:7.1f} crops/s")


if __name__ == "__main__":
    main()
