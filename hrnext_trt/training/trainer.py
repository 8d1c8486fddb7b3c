"""The training loop: one process or one of many (``torchrun``), resumable at every saved epoch.

Checkpoints are taken at epoch ends; each holds model, optimizer, schedule, scaler and the RNG
states of every rank, and the data order of an epoch depends only on (seed, epoch), so
``train(..., resume="auto")`` continues exactly where the interrupted run left off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from hrnext_trt.contract import nvidia_gpu_present, resolve_device
from hrnext_trt.data import TEST_SPLIT
from hrnext_trt.data.files import read_image
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation import format_metric, primary_metric
from hrnext_trt.progress import progress_bar
from hrnext_trt.training.cache import ImageCache
from hrnext_trt.training.checkpointing import (BEST_NAME, atomic_torch_save, capture_rng_state,
                                               epoch_checkpoint_name, find_latest_checkpoint, latest_training_state,
                                               load_training_checkpoint, restore_rng_state)
from hrnext_trt.training.config import TrainConfig, save_config
from hrnext_trt.training.distributed import (DistInfo, all_reduce_min, all_reduce_sum, barrier, broadcast_object,
                                             cleanup_distributed, gather_objects, init_distributed)
from hrnext_trt.training.loader import iterations_per_epoch, train_loader
from hrnext_trt.training.logging import TrainLogger
from hrnext_trt.training.loss import keypoint_mse_loss
from hrnext_trt.training.optim import LrSchedule, build_optimizer
from hrnext_trt.training.validation import evaluate_model, load_split
from hrnext_trt.training.work_dir import CONFIG_NAME, check_resume_config, claim_work_dir, remove_stale_temp_files

log = logging.getLogger(__name__)


@dataclass
class _Progress:
    epoch: int = 0  # completed epochs
    iteration: int = 0  # completed optimizer steps
    best_ap: float = -1.0
    best_epoch: int = 0
    eval_pending: bool = False  # the last epoch's evaluation failed; its training is saved


def train(config: TrainConfig, work_dir: str | Path, *, resume: str | Path | None = None,
          load_from: str | Path | None = None, time_budget_s: float | None = None,
          stop_after_epochs: int | None = None, progress: bool = True, force: bool = False) -> Path:
    """Train ``config`` into ``work_dir``; returns ``best.pth`` (or the last epoch's checkpoint).

    Every check (config, data, weights, the checkpoint to resume, the work dir's owner and lock)
    runs before the first write into ``work_dir``; see ``hrnext_trt.training.work_dir``.
    resume: ``"auto"`` (the latest ``epoch_N.pth`` in ``work_dir``, if any) or a checkpoint path.
    force: start over in a work dir that holds another run (deleting its checkpoints and logs),
    or resume with a config that trains differently than the checkpoint.
    load_from: weights only (this project's checkpoint or the paper's mmpose file); default: the
    config's ``model.load_from``.
    time_budget_s: stop (with a checkpoint and an evaluation) at the first epoch end after which
    another epoch would not fit. stop_after_epochs: stop once that many epochs are complete, as
    if killed there (the schedule still spans ``schedule.epochs``).
    """
    import torch

    device = _resolve_device(config.runtime.device)
    if load_from is not None:  # recorded where the run's config is (config.yaml, every checkpoint)
        config = config.replace(model=dataclasses.replace(config.model, load_from=str(load_from)))
        origin = "--load-from"
    else:
        origin = f"{config.source}'s model.load_from"
    dist = init_distributed(device.type)
    try:
        if device.type == "cuda" and dist.enabled:
            device = torch.device("cuda", dist.local_rank)
        trainer = _Trainer(config, Path(work_dir), device, dist, progress)
        return trainer.run(resume, origin, time_budget_s, stop_after_epochs, force)
    finally:
        cleanup_distributed(dist)


def _resolve_device(name: str):
    import torch

    if name == "cuda" and not nvidia_gpu_present():  # set by --device, --cfg-options or the YAML: name the key
        raise HrnextError("runtime.device is cuda (--device, or the config) but this machine has no NVIDIA GPU (no "
                          "driver device found): use --device cpu, or auto")
    name = resolve_device(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise HrnextError("runtime.device is cuda but PyTorch sees no GPU: use --device cpu or install a CUDA build")
    return torch.device(name)


def _set_determinism(deterministic: bool) -> None:
    import os

    import torch

    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it before its first call
    # warn_only: an op without a deterministic kernel warns instead of stopping the run.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


class _Trainer:
    def __init__(self, cfg: TrainConfig, work_dir: Path, device, dist: DistInfo, progress: bool):
        self.cfg, self.work_dir, self.device, self.dist = cfg, work_dir, device, dist
        self.progress = progress and dist.is_main
        self.reported_paths: set[str] = set()

    # --- set-up -------------------------------------------------------------------------------
    def _setup(self, resuming: bool, weights_origin: str) -> None:
        import random

        import numpy as np
        import torch

        from hrnext_trt.data.torch_dataset import TopDownDataset  # torch modules: imported with torch
        from hrnext_trt.models import build_pose_model

        cfg = self.cfg
        _set_determinism(cfg.runtime.deterministic)
        random.seed(cfg.runtime.seed)
        np.random.seed(cfg.runtime.seed)
        torch.manual_seed(cfg.runtime.seed)  # same initial weights on every rank

        pose_train = load_split(cfg.data.train)
        self.meta = pose_train.meta
        # Allowed (a mini sample may hold no other split), and said once.
        if self.dist.is_main and cfg.data.train.split == TEST_SPLIT.get(cfg.data.train.name):
            log.warning("data.train is %s %s, the split %s's accuracy is published on (and trt-eval scores by "
                        "default): the model's scores there will not be held-out", cfg.data.train.name,
                        cfg.data.train.split, cfg.data.train.name)
        reader = read_image
        if cfg.data.cache_images:
            started = time.perf_counter()
            reader = ImageCache(pose_train)
            self._say(f"decoded {len(reader)} training images into memory ({reader.nbytes / 2 ** 20:.0f} MiB) in "
                      f"{time.perf_counter() - started:.1f} s")
        self.train_set = TopDownDataset(pose_train, cfg.data.input_size, train=True, augment=cfg.data.augmentation,
                                        sigma=cfg.data.sigma, skip_unreadable=True, image_reader=reader)
        self.iters_per_epoch = iterations_per_epoch(len(self.train_set), cfg.data.batch_size, self.dist.world_size)
        self.val_set = load_split(cfg.data.val)  # now: a bad val root must not wait for the first evaluation
        if self.val_set.meta.num_joints != self.meta.num_joints:
            raise HrnextError(f"{cfg.source}: data.val is {cfg.data.val.name} ({self.val_set.meta.num_joints} joints), "
                              f"data.train {cfg.data.train.name} ({self.meta.num_joints}): validate on a dataset of "
                              "the training's joints (data.val.name and its root)")
        val = f"data.val ({cfg.data.val.name} {self.val_set.split})"
        if not len(self.val_set):  # else found at the first evaluation, an eval_interval of training later
            raise HrnextError(f"{cfg.source}: {val} has no person to evaluate: point data.val at a split with "
                              "annotated people (or detector boxes)")
        missing = sorted({str(i.image_path) for i in self.val_set.instances if not i.image_path.is_file()})
        if missing:
            raise HrnextError(f"{cfg.source}: {val}: {len(missing)} of its images are not there (first: {missing[0]}): "
                              "complete the dataset, or check data.val.root")

        model = build_pose_model(cfg.model.arch, self.meta.num_joints)
        if cfg.model.load_from is not None and not resuming:  # a resumed run takes the checkpoint's weights
            self._load_initial_weights(model, weights_origin)
        model.set_grad_checkpointing(cfg.model.activation_checkpointing)
        self.model = model.to(self.device).train()  # the plain module: saved, evaluated
        self.net = self.model  # what the loop calls: the DDP wrapper when distributed
        if self.dist.enabled:
            # One process has no batch statistics to share (SyncBatchNorm would fall back to BatchNorm).
            if cfg.model.sync_bn and self.dist.world_size > 1:
                if self.device.type != "cuda":
                    raise HrnextError(f"{cfg.source}: model.sync_bn needs CUDA (PyTorch has no CPU SyncBatchNorm): "
                                      "pass --cfg-options model.sync_bn=false for a CPU multi-process run")
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        # Ranks differ in drop-path masks from here on.
        torch.manual_seed(cfg.runtime.seed + self.dist.rank)

        self.optimizer = build_optimizer(self.model.parameters(), cfg.optimizer)
        self.schedule = LrSchedule(self.optimizer, cfg.schedule, self.iters_per_epoch)
        self.autocast_dtype, self.scaler = self._precision()

    def _load_initial_weights(self, model, origin: str) -> None:
        from hrnext_trt.models import load_initial_weights

        path = self.cfg.model.load_from
        way_out = "leave --load-from out" if origin == "--load-from" else "--cfg-options model.load_from=null"
        if not Path(path).is_file():
            raise HrnextError(f"initial weights {path} ({origin}) not found: train that run first, pass --load-from "
                              f"with a {self.cfg.model.arch} checkpoint, or start from scratch ({way_out})")
        try:
            fresh_head = load_initial_weights(model, path)
        except HrnextError as exc:
            raise HrnextError(f"initial weights ({origin}): {exc}: pass a {self.cfg.model.arch} checkpoint, or start "
                              f"from scratch ({way_out})") from None
        if fresh_head and self.dist.is_main:
            log.warning("%s", fresh_head)

    def _precision(self):
        """(autocast dtype or None, GradScaler or None) for runtime.amp on this device."""
        import torch

        amp = self.cfg.runtime.amp
        if self.device.type != "cuda" or amp == "none":
            return None, None
        if amp == "bf16":
            if not torch.cuda.is_bf16_supported():
                raise HrnextError(f"{self.cfg.source}: this GPU has no bfloat16: use --cfg-options runtime.amp=fp16")
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")  # fp16 gradients underflow without scaling

    def _resume_path(self, resume) -> Path | None:
        """The checkpoint ``resume`` names; None for a fresh start."""
        if resume is None:
            return None
        if str(resume) == "auto":
            path = latest_training_state(self.work_dir)
            if path is None:
                self._say(f"resume auto: no checkpoint in {self.work_dir}, starting from scratch")
            return path
        path = Path(resume)
        if path.is_dir():
            raise HrnextError(f"--resume {path} is a folder: pass a checkpoint file in it (epoch_N.pth), or "
                              f"'--resume auto' with --work-dir {path} to take its latest")
        return path

    def _read_resume(self, path: Path | None, force: bool, weights_origin: str) -> dict | None:
        """The checkpoint to resume, checked against the config; None for a fresh start."""
        if path is None:
            return None
        ckpt = load_training_checkpoint(path)
        if ckpt["arch"] != self.cfg.model.arch or ckpt["num_joints"] != self.meta.num_joints:
            raise HrnextError(f"{path} holds {ckpt['arch']} with {ckpt['num_joints']} joints, the config trains "
                              f"{self.cfg.model.arch} with {self.meta.num_joints}: resume with the config it was "
                              "trained with")
        trained = ckpt.get("config")
        check_resume_config(path, trained, self.cfg.to_dict(), force)
        if isinstance(trained, dict):  # the weights the run started from, as it recorded them
            load_from = trained.get("model", {}).get("load_from")
            given = self.cfg.model.load_from
            # The same --load-from again is a re-queued command line; another would be ignored.
            if weights_origin == "--load-from" and \
                    (load_from is None or Path(given).resolve() != Path(load_from).resolve()):
                raise HrnextError(f"--load-from {given} gives a new run its first weights, and {path} continues a run "
                                  f"that started from {load_from or 'scratch'}: drop --load-from to resume it, or "
                                  "start the new run in another --work-dir")
            self.cfg = self.cfg.replace(model=dataclasses.replace(self.cfg.model, load_from=load_from))
        if ckpt["epoch"] > self.cfg.schedule.epochs:
            raise HrnextError(f"{path} has trained {ckpt['epoch']} epochs, more than the {self.cfg.schedule.epochs} "
                              f"asked: pass --max-epochs {ckpt['epoch']} or more (the schedule's length) to resume it")
        trained_for = trained.get("schedule", {}).get("epochs") if isinstance(trained, dict) else None
        if ckpt["epoch"] == self.cfg.schedule.epochs and isinstance(trained_for, int) and trained_for > ckpt["epoch"]:
            # --max-epochs cuts a longer schedule at this checkpoint: its epoch ends the run now, and a
            # run's last epoch is evaluated (best.pth), as a run of that length would have been.
            ckpt["eval_pending"] = True
        return ckpt

    def _resume(self, ckpt: dict | None) -> _Progress:
        """Model, optimizer, schedule and RNG state of ``ckpt`` (in memory only)."""
        if ckpt is None:
            return _Progress()
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        # The moments are the checkpoint's, the hyperparameters the config's (loading replaced them
        # with the saved ones, which differ only where --force resumes with new values).
        for group in self.optimizer.param_groups:
            group.update(self.optimizer.defaults, initial_lr=self.optimizer.defaults["lr"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        rng = ckpt["rng"]
        # Each rank continues its own generators; with another world size the order still is
        # exact (it depends on the epoch only), the drop-path masks are not.
        restore_rng_state(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
        return _Progress(ckpt["epoch"], ckpt["iteration"], ckpt.get("best_ap", -1.0), ckpt.get("best_epoch", 0),
                         ckpt.get("eval_pending", False))

    def _claim_work_dir(self, resuming: bool, force: bool):
        """The main process locks and checks the work dir, then writes config.yaml; every rank
        raises the same line when it refuses (else the others would wait at a barrier)."""
        lock, problem = None, None
        if self.dist.is_main:
            try:
                lock = claim_work_dir(self.work_dir, self.cfg.to_dict(), resuming, force)
                save_config(self.cfg, self.work_dir / CONFIG_NAME)
            except (HrnextError, OSError) as exc:
                if lock is not None:
                    lock.release()
                problem = (str(exc) if isinstance(exc, HrnextError) else
                           f"cannot write to work dir {self.work_dir}: {exc.strerror or exc}: choose a writable --work-dir")
        problem = broadcast_object(problem, self.dist)
        if problem is not None:
            raise HrnextError(problem)
        return lock

    # --- the run ------------------------------------------------------------------------------
    def run(self, resume, weights_origin, time_budget_s, stop_after_epochs, force=False) -> Path:
        start = time.perf_counter()
        # Every check first (config, data, weights, the checkpoint to resume, the work dir), then writes.
        resume_path = self._resume_path(resume)
        self._setup(resume_path is not None, weights_origin)
        ckpt = self._read_resume(resume_path, force, weights_origin)
        if ckpt is not None and ckpt["epoch"] == self.cfg.schedule.epochs and not ckpt.get("eval_pending", False):
            # A finished run resumed again (a re-queued job): nothing to train, nothing rewritten.
            self._say(f"{resume_path} completed all {ckpt['epoch']} epochs of the schedule: nothing to train "
                      f"(--max-epochs above {ckpt['epoch']} trains on)")
            best = self.work_dir / BEST_NAME
            return best if best.is_file() else resume_path
        state = self._resume(ckpt)
        del ckpt  # the model and optimizer hold their own copies now
        lock = self._claim_work_dir(resume_path is not None, force)
        try:
            return self._run(state, resume_path, start, time_budget_s, stop_after_epochs)
        finally:
            if lock is not None:
                lock.release()

    def _run(self, state: _Progress, resume_path, start, time_budget_s, stop_after_epochs) -> Path:
        self.logger = TrainLogger(self.work_dir, enabled=self.dist.is_main, start_step=state.iteration)
        try:
            if resume_path is not None:
                self._say(f"resumed from {resume_path} at epoch {state.epoch}, iteration {state.iteration}")
            precision = {None: "float32"}.get(self.autocast_dtype, str(self.autocast_dtype).replace("torch.", ""))
            self._say(f"training {self.cfg.model.arch} on {self.cfg.data.train.name} {self.cfg.data.train.split} "
                      f"({len(self.train_set)} instances, {self.iters_per_epoch} iterations/epoch) on "
                      f"{self.dist.world_size} x {self.device.type}"
                      + (f" (DDP, {self.dist.backend})" if self.dist.enabled else "") + f", {precision}")
            self.logger.log("event", state.iteration, event="start", epoch=state.epoch, device=self.device.type,
                            world_size=self.dist.world_size, dist_backend=self.dist.backend, precision=precision)
            # The evaluation the interrupted run owes first: the same metrics, best.pth and RNG states
            # as a run whose evaluation went through.
            last_path = self._end_epoch(state, stop=False) if state.eval_pending else None
            loop_start, epochs_here = time.perf_counter(), 0
            while state.epoch < self.cfg.schedule.epochs:
                self._train_epoch(state)
                epochs_here += 1
                per_epoch = (time.perf_counter() - loop_start) / epochs_here
                stop = broadcast_object(
                    (stop_after_epochs is not None and state.epoch >= stop_after_epochs)
                    or (time_budget_s is not None and time.perf_counter() - start + per_epoch > time_budget_s),
                    self.dist)
                last_path = self._end_epoch(state, stop) or last_path
                if stop and state.epoch < self.cfg.schedule.epochs:
                    self._say(f"stopped after epoch {state.epoch} (time budget or stop_after_epochs)")
                    break
        finally:
            self.logger.close()
        best = self.work_dir / BEST_NAME
        if best.is_file():
            return best
        return last_path if last_path is not None else find_latest_checkpoint(self.work_dir)

    def _train_epoch(self, state: _Progress) -> None:
        import torch

        cfg = self.cfg
        loader = train_loader(self.train_set, cfg.data.batch_size, cfg.data.num_workers, cfg.runtime.seed,
                              state.epoch, self.dist.rank, self.dist.world_size,
                              pin_memory=self.device.type == "cuda")
        self.net.train()
        amp = (torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
               if self.autocast_dtype is not None else contextlib.nullcontext())
        bar = progress_bar(total=self.iters_per_epoch, desc=f"epoch {state.epoch + 1}/{cfg.schedule.epochs}",
                           unit="it", disable=not self.progress, leave=False)
        loss_sum, steps, skipped, window = 0.0, 0, 0, []
        step_s, wait_s = 0.0, 0.0  # model step (to loss.item(), which synchronises) vs waiting for data
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        tick = time.perf_counter()
        for batch in loader:
            got = time.perf_counter()
            skipped += self._report_skipped(batch["skipped"])
            # BatchNorm needs two samples, and every rank must step together (DDP all-reduces
            # gradients): a batch that unreadable images left too small is skipped on all ranks.
            if all_reduce_min(len(batch.get("image", ())), self.dist) < 2:
                continue
            lr = self.schedule.set_iteration(state.iteration)
            images = batch["image"].to(self.device, non_blocking=True)
            targets = batch["target"].to(self.device, non_blocking=True)
            weights = batch["target_weight"].to(self.device, non_blocking=True)
            with amp:
                loss = keypoint_mse_loss(self.net(images), targets, weights)
            if not torch.isfinite(loss):
                raise HrnextError(f"loss became {loss.item()} at iteration {state.iteration}: lower optimizer.lr "
                                  "or use runtime.amp=bf16/none")
            self.optimizer.zero_grad(set_to_none=True)
            self._backward_and_step(loss)
            state.iteration += 1
            value = loss.item()
            loss_sum, steps = loss_sum + value, steps + 1
            window.append(value)
            now = time.perf_counter()
            step_s, wait_s = step_s + now - got, wait_s + got - tick
            speed = len(images) * self.dist.world_size / max(now - tick, 1e-9)
            tick = now
            bar.set_postfix(loss=f"{sum(window[-20:]) / len(window[-20:]):.3g}", lr=f"{lr:.2e}",
                            img_s=f"{speed:.1f}")
            bar.update()
            if state.iteration % cfg.runtime.log_interval == 0:
                self.logger.log("train", state.iteration, epoch=state.epoch + 1,
                                loss=sum(window) / len(window), lr=lr, images_per_s=speed)
                window = []
        bar.close()
        # This rank's timing (every rank steps together): the step alone gives the model's training
        # speed, the wait says whether the data loader keeps up; peak memory is this rank's GPU's.
        timing = self._epoch_speed(steps, step_s, wait_s)
        loss_sum, steps, skipped = all_reduce_sum([loss_sum, steps, skipped], self.dist)
        if steps == 0:
            # Nothing learned: saving would pass random weights off as a trained best.pth.
            first = next(iter(self.reported_paths), None)
            cause = (f"{int(skipped)} training images were unreadable (first: {first})" if skipped
                     else "no batch held two readable samples")
            raise HrnextError(f"epoch {state.epoch + 1} made no optimizer step: {cause}; fix or remove the "
                              f"unreadable images of {self.cfg.data.train.name} {self.cfg.data.train.split}")
        state.epoch += 1
        mean_loss = loss_sum / max(steps, 1)
        self.logger.log("epoch", state.iteration, epoch=state.epoch, loss=mean_loss, skipped_images=int(skipped),
                        **timing)
        self._say(f"epoch {state.epoch}/{cfg.schedule.epochs}: loss {mean_loss:.4g}"
                  + (f", skipped {int(skipped)} unreadable images" if skipped else ""))

    def _epoch_speed(self, steps: int, step_s: float, wait_s: float) -> dict:
        """The epoch's training speed for log.jsonl: seconds per model step and per data wait, and
        the GPU's peak allocated memory (CUDA only)."""
        import torch

        speed = {"step_s": step_s / max(steps, 1), "data_wait_s": wait_s / max(steps, 1),
                 "steps_per_s": steps / step_s if step_s > 0 else None}
        if self.device.type == "cuda":
            speed["max_memory_mib"] = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        return speed

    def _backward_and_step(self, loss) -> None:
        import torch

        clip = self.cfg.optimizer.grad_clip
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if clip is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()

    def _report_skipped(self, skipped: list[tuple[str, str]]) -> int:
        """Warn once per unreadable file (every rank reports its own); returns the count."""
        for path, error in skipped:
            if path not in self.reported_paths:
                self.reported_paths.add(path)
                log.warning("skipped a training image: %s", error)
        return len(skipped)

    def _end_epoch(self, state: _Progress, stop: bool) -> Path | None:
        """Evaluate and save as the config's intervals (or a stop, or an evaluation a resumed run
        owes) ask; returns a saved path."""
        rt = self.cfg.runtime
        last = state.epoch >= self.cfg.schedule.epochs
        owed, state.eval_pending = state.eval_pending, False
        new_best = False
        key = primary_metric(self.cfg.data.val.name)  # AP; MPII's PCKh Mean; PoseTrack's mAP
        if owed or state.epoch % rt.eval_interval == 0 or last or stop:
            metrics = self._evaluate_or_save(state)
            self.logger.log("val", state.iteration, epoch=state.epoch, **metrics)
            val = self.cfg.data.val.name
            self._say(f"epoch {state.epoch}: " + ", ".join(f"{k} {format_metric(val, v)}" for k, v in metrics.items()))
            if metrics[key] > state.best_ap:
                state.best_ap, state.best_epoch, new_best = metrics[key], state.epoch, True
        # An owed evaluation saves its epoch again: the file holds the failure's mark until then.
        save = owed or state.epoch % rt.checkpoint_interval == 0 or last or stop
        if not (save or new_best):
            return None
        path = self._save(state, epoch_file=save, best_file=new_best)
        if new_best:
            self._say(f"new best {key} {format_metric(self.cfg.data.val.name, state.best_ap)} -> "
                      f"{self.work_dir / BEST_NAME}")
        return path

    def _evaluate_or_save(self, state: _Progress) -> dict[str, float]:
        """The main process's evaluation, on every rank. When it fails (an unreadable validation
        image, the GPU's memory), the epoch's training is saved before the error ends the run:
        ``--resume auto`` evaluates it first instead of training the epoch again."""
        metrics, error, failure = None, None, None
        if self.dist.is_main:
            try:
                metrics = self._evaluate()
            except Exception as exc:  # saved below, then raised again
                failure, error = exc, str(exc) if isinstance(exc, HrnextError) else f"{type(exc).__name__}: {exc}"
        metrics, error = broadcast_object((metrics, error), self.dist)
        if error is None:
            return metrics
        self.logger.log("event", state.iteration, event="eval_failed", epoch=state.epoch, error=error)
        state.eval_pending = True
        self._save(state, epoch_file=True, best_file=False)
        path = self.work_dir / epoch_checkpoint_name(state.epoch)
        advice = (f"epoch {state.epoch}'s training is saved in {path}: fix the cause (data.val and "
                  "data.val_batch_size may change) and run the same train command with --resume auto, which "
                  "evaluates it first")
        if failure is not None and not isinstance(failure, HrnextError):
            failure.add_note(advice)  # an unexpected error keeps its type and traceback
            raise failure
        raise HrnextError(f"evaluation after epoch {state.epoch} failed: {error}; {advice}")

    def _save(self, state: _Progress, *, epoch_file: bool, best_file: bool) -> Path | None:
        """Write the checkpoint (rank 0) as ``epoch_N.pth`` and/or ``best.pth``; every rank calls it."""
        ckpt = self._checkpoint(state)  # every rank: the RNG states are gathered
        path = None
        if self.dist.is_main:
            remove_stale_temp_files(self.work_dir)  # of saves a kill interrupted; the lock excludes live ones
            if best_file:
                path = atomic_torch_save(ckpt, self.work_dir / BEST_NAME)
            if epoch_file:
                path = atomic_torch_save(ckpt, self.work_dir / epoch_checkpoint_name(state.epoch))
        barrier(self.dist)
        return path

    def _evaluate(self) -> dict[str, float]:
        return evaluate_model(self.model, self.val_set, self.cfg.data.input_size, self.cfg.data.val_batch_size,
                              self.cfg.runtime.flip_test, self.device, self.autocast_dtype, progress=self.progress)

    def _checkpoint(self, state: _Progress) -> dict:
        from hrnext_trt.models import make_checkpoint  # torch side

        rng = gather_objects(capture_rng_state(), self.dist)
        return make_checkpoint(
            self.model, self.cfg.data.input_size, self.cfg.dataset,
            config=self.cfg.to_dict(),
            epoch=state.epoch,
            iteration=state.iteration,
            best_ap=state.best_ap,
            best_epoch=state.best_epoch,
            eval_pending=state.eval_pending,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.schedule.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            rng=rng,
        )

    def _say(self, message: str) -> None:
        if self.dist.is_main:
            log.info("%s", message)
