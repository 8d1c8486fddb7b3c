"""Training configs: the shipped recipes, composition, overrides, one-line errors, the lr schedule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hrnext_trt.errors import HrnextError
from hrnext_trt.training.config import config_from_dict, load_config, save_config
from hrnext_trt.training.optim import lr_factor

TRAIN_DIR = Path(__file__).resolve().parents[1] / "train"
# MPII and PoseTrack recipes follow their benchmarks' own protocols: tested apart, below.
OTHER_BENCHMARKS = ("mpii", "posetrack")
PAPER_CONFIGS = sorted(p for p in TRAIN_DIR.glob("hrnext_*.yaml") if not any(b in p.stem for b in OTHER_BENCHMARKS))
HRNET_CONFIGS = sorted(p for p in TRAIN_DIR.glob("hrnet_*.yaml") if not any(b in p.stem for b in OTHER_BENCHMARKS))


def test_one_config_per_trained_model_dataset_and_size():
    names = {p.stem for p in PAPER_CONFIGS + HRNET_CONFIGS}
    for dataset in ("coco", "crowdpose", "ochuman"):
        for arch in ("hrnext_s", "hrnext_b"):
            for size in ("256x192", "384x288"):
                assert f"{arch}_{dataset}_{size}" in names
        assert f"hrnet_w32_{dataset}_256x192" in names
        assert f"hrnet_w48_{dataset}_384x288" in names


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_hrnext_configs_are_the_paper_recipe(path):
    cfg = load_config(path)
    arch, dataset, size = path.stem.rsplit("_", 2)
    assert cfg.model.arch == arch and cfg.model.activation_checkpointing
    assert cfg.data.input_size == tuple(int(v) for v in size.split("x"))
    assert (cfg.optimizer.type, cfg.optimizer.lr, cfg.optimizer.betas, cfg.optimizer.weight_decay) == \
        ("adamw", 4e-3, (0.9, 0.999), 0.01)
    s = cfg.schedule
    assert (s.policy, s.epochs, s.warmup_iters, s.warmup_ratio, s.min_lr_ratio) == ("cosine", 300, 500, 0.001, 0.01)
    assert cfg.data.batch_size == (64 if dataset == "crowdpose" else 32)
    assert (cfg.runtime.checkpoint_interval, cfg.runtime.eval_interval) == (5, 10)
    a = cfg.data.augmentation
    assert (a.flip_prob, a.half_body_prob, a.scale_factor, a.rotation_factor, a.rotation_prob) == \
        (0.5, 0.3, 0.5, 40.0, 0.6)
    assert a.half_body_min_joints == (6 if dataset == "crowdpose" else 8)
    assert cfg.data.sigma == 2.0 and cfg.data.val.name == dataset
    assert cfg.data.train.name == ("coco" if dataset == "ochuman" else dataset)  # OCHuman has no train split


@pytest.mark.parametrize("path", HRNET_CONFIGS, ids=lambda p: p.stem)
def test_hrnet_baselines_use_mmpose_recipe(path):
    cfg = load_config(path)
    assert (cfg.optimizer.type, cfg.optimizer.lr) == ("adam", 5e-4)
    assert (cfg.schedule.policy, cfg.schedule.epochs, cfg.schedule.milestones) == ("step", 210, (170, 200))
    # mmpose's W48 at 384x288: 32 per GPU on COCO (and OCHuman, trained on COCO), 64 on CrowdPose (was 32).
    assert cfg.data.batch_size == (64 if "w32" in path.stem or "crowdpose" in path.stem else 32)


@pytest.mark.parametrize("arch", ["hrnext_s", "hrnext_b", "hrnet_w32"])
def test_mpii_and_posetrack_recipes(arch):
    mpii = load_config(TRAIN_DIR / f"{arch}_mpii_256x256.yaml")
    assert mpii.model.arch == arch and mpii.data.input_size == (256, 256)
    assert mpii.data.train.name == mpii.data.val.name == "mpii" and mpii.data.val.boxes == "gt"
    a = mpii.data.augmentation  # HRNet's MPII augmentation
    assert (a.shift_prob, a.half_body_prob, a.scale_factor, a.rotation_factor, a.flip_prob) == (0, 0, 0.25, 30, 0.5)
    assert mpii.optimizer.type == ("adam" if arch == "hrnet_w32" else "adamw")  # the model's own recipe

    pt = load_config(TRAIN_DIR / f"{arch}_posetrack_256x192.yaml")
    assert pt.model.arch == arch and pt.model.load_from == f"work_dirs/{arch}_coco_256x192/best.pth"
    assert (pt.data.val.name, pt.data.val.boxes, pt.data.val.det_score_thr) == ("posetrack", "det", 0.4)
    assert (pt.optimizer.type, pt.optimizer.lr, pt.optimizer.weight_decay) == ("adam", 5e-4, 0.0)
    assert (pt.schedule.policy, pt.schedule.epochs, pt.schedule.milestones) == ("step", 20, (10, 15))


def test_cfg_options_override_with_yaml_values():
    cfg = load_config(TRAIN_DIR / "hrnext_s_coco_256x192.yaml",
                      ["optimizer.lr=1e-3", "data.input_size=[128, 96]", "data.val.det_score_thr=0.5",
                       "model.activation_checkpointing=false"])
    assert cfg.optimizer.lr == 1e-3 and cfg.data.input_size == (128, 96)
    assert cfg.data.val.det_score_thr == 0.5 and not cfg.model.activation_checkpointing
    assert cfg.data.val.split == "val"  # siblings of an overridden key stay


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(TRAIN_DIR / "hrnext_b_crowdpose_384x288.yaml", ["runtime.seed=7"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and again.runtime.seed == 7


@pytest.mark.parametrize("option, words", [
    ("optimizer.lrr=1", ["unknown key 'optimizer.lrr'", "lr"]),
    ("optimizer.lr=fast", ["optimizer.lr must be float", "'fast'"]),
    ("data.input_size=[256]", ["data.input_size"]),
    ("schedule.policy=linear", ["schedule.policy", "'cosine'"]),
    ("runtime.amp=fp8", ["runtime.amp"]),
    ("data.batch_size=1", ["data.batch_size must be >= 2"]),
    ("nokey", ["key=value"]),
    # numpy takes 32-bit seeds: others were a traceback at the first epoch.
    ("runtime.seed=-5", ["runtime.seed must be from 0 to 4294967295, got -5"]),
    ("runtime.seed=4294967296", ["runtime.seed must be from 0 to 4294967295"]),
    # Refused by torch only mid-run (a traceback), or trained silently wrong.
    ("optimizer.betas=[1.5,0.99]", ["optimizer.betas must be two numbers from 0 to below 1, got [1.5, 0.99]"]),
    ("optimizer.weight_decay=-1", ["optimizer.weight_decay must be >= 0, got -1"]),
    ("optimizer.grad_clip=0", ["optimizer.grad_clip must be > 0", "or null for none"]),
    ("data.sigma=0", ["data.sigma must be > 0"]),
    ("data.sigma=-2", ["data.sigma must be > 0", "got -2"]),
    ("schedule.warmup_ratio=-1", ["schedule.warmup_ratio must be from 0 to 1"]),
    ("schedule.min_lr_ratio=5", ["schedule.min_lr_ratio must be from 0 to 1"]),
    ("schedule.gamma=0", ["schedule.gamma must be above 0"]),
    ("data.augmentation.flip_prob=2", ["data.augmentation.flip_prob must be a probability from 0 to 1, got 2"]),
    ("data.augmentation.scale_factor=1", ["data.augmentation.scale_factor must be from 0 to below 1"]),
    ("data.augmentation.rotation_factor=-5", ["data.augmentation.rotation_factor must be >= 0"]),
    ("data.val.det_score_thr=1.5", ["data.val.det_score_thr must be from 0 to 1"]),
])
def test_bad_config_is_one_line_naming_the_key(option, words):
    with pytest.raises(HrnextError) as info:
        load_config(TRAIN_DIR / "hrnext_s_coco_256x192.yaml", [option])
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("option", ["optimizer.lr=fast", "optimizer.lrr=1", "data.batch_size=1",
                                    "optimizer.betas=[0.9, .nan]", "optimizer.lr=.inf"])
def test_bad_override_is_blamed_on_the_option_not_the_file(option):
    # The file is fine; the message must send the user to the --cfg-options word that broke it.
    with pytest.raises(HrnextError) as info:
        load_config(TRAIN_DIR / "hrnext_s_coco_256x192.yaml", ["data.num_workers=0", option])
    message = str(info.value)
    assert message.startswith(f"--cfg-options {option}: ") and "hrnext_s_coco" not in message


def test_non_finite_floats_are_refused(tmp_path):
    # nan > 0 is False and inf > 0 True: range checks alone would let one through.
    (tmp_path / "c.yaml").write_text(f"_base_: {TRAIN_DIR / 'hrnext_s_coco_256x192.yaml'}\noptimizer:\n  weight_decay: .nan\n")
    with pytest.raises(HrnextError, match=r"c\.yaml: optimizer\.weight_decay must be a finite number, got nan"):
        load_config(tmp_path / "c.yaml")


def test_missing_key_and_base_cycle(tmp_path):
    with pytest.raises(HrnextError, match="missing key model.arch"):
        config_from_dict({"model": {}, "data": {}, "optimizer": {}, "schedule": {}})
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(HrnextError, match="includes itself"):
        load_config(tmp_path / "a.yaml")


def test_schedule_warms_up_then_decays():
    cfg = load_config(TRAIN_DIR / "hrnext_s_coco_256x192.yaml").schedule
    per_epoch = 100
    assert lr_factor(0, cfg, per_epoch) == pytest.approx(0.001, rel=1e-3)
    assert lr_factor(250, cfg, per_epoch) == pytest.approx(0.5, abs=0.01)  # halfway through warm-up
    assert lr_factor(500, cfg, per_epoch) == pytest.approx(1.0, abs=1e-3)
    half = 150 * per_epoch
    assert lr_factor(half, cfg, per_epoch) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_factor(300 * per_epoch, cfg, per_epoch) == pytest.approx(0.01)

    step = load_config(TRAIN_DIR / "hrnet_w32_coco_256x192.yaml").schedule
    assert lr_factor(169 * per_epoch, step, per_epoch) == pytest.approx(1.0)
    assert lr_factor(170 * per_epoch, step, per_epoch) == pytest.approx(0.1)
    assert lr_factor(200 * per_epoch, step, per_epoch) == pytest.approx(0.01)


def test_a_split_without_a_detector_threshold_takes_the_protocol_s(data_dir, tmp_path):
    """Validation on PoseTrack's detector boxes kept every box (0.0) where trt-eval keeps the
    protocol's 0.4 (278 crops against 88): the best checkpoint was chosen on another AP."""
    from hrnext_trt.data import load_dataset
    from hrnext_trt.training.config import SplitConfig
    from hrnext_trt.training.validation import load_split
    from hrnext_trt.training.work_dir import config_changes
    from tests.mini_roots import posetrack_root

    root = posetrack_root(data_dir, tmp_path)
    split = SplitConfig("posetrack", str(root), "val", boxes="det")
    assert split.det_score_thr is None
    protocol = load_dataset("posetrack", root, "val", boxes="det")
    assert len(load_split(split)) == len(protocol) < len(load_dataset("posetrack", root, "val", boxes="det",
                                                                      det_score_thr=0.0))
    # Runs recorded 0.0 for ground-truth splits, where no threshold applies: they resume as before.
    old = {"data": {"train": {"boxes": "gt", "det_score_thr": 0.0}, "val": {"boxes": "det", "det_score_thr": 0.0}}}
    new = {"data": {"train": {"boxes": "gt", "det_score_thr": None}, "val": {"boxes": "det", "det_score_thr": None}}}
    assert config_changes(old, new) == ["data.val.det_score_thr: 0.0 -> None"]
