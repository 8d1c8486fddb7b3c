"""Evaluation during training: the deployment pipeline over the model being trained."""

from __future__ import annotations

import contextlib

from hrnext_trt.bundled import bundled_dataset_root
from hrnext_trt.data import load_dataset
from hrnext_trt.evaluation import evaluate_results
from hrnext_trt.pipeline import predict
from hrnext_trt.training.config import SplitConfig


def load_split(split: SplitConfig):
    """``hrnext_trt.data.load_dataset`` for a config split (``bundled:<name>`` roots resolved)."""
    root = bundled_dataset_root(split.root[len("bundled:"):]) if split.root.startswith("bundled:") else split.root
    return load_dataset(split.name, root, split.split, boxes=split.boxes, det_file=split.det_file,
                        det_score_thr=split.det_score_thr)


def evaluate_model(model, dataset, input_size: tuple[int, int], batch_size: int, flip_test: bool, device,
                   autocast_dtype=None, progress: bool = True) -> dict[str, float]:
    """AP and friends of ``model`` on ``dataset`` through ``hrnext_trt.pipeline.predict``.

    The same crops, flip test and decoding as every deployed backend, so the AP logged during
    training is the AP the exported engines are compared against.
    """
    import torch

    was_training = model.training
    model.eval()

    def infer(images):
        batch = torch.from_numpy(images).to(device)
        amp = (torch.autocast(device_type=device.type, dtype=autocast_dtype) if autocast_dtype is not None
               else contextlib.nullcontext())
        with torch.no_grad(), amp:
            return model(batch).float().cpu().numpy()

    try:
        results = predict(dataset, infer, input_size, batch_size=batch_size, flip_test=flip_test, progress=progress)
        return evaluate_results(dataset.name, dataset.ann_file, results)
    finally:
        model.train(was_training)
