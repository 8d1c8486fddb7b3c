"""Loading checkpoints: project and mmpose formats, strictness, and one-line errors."""

import pytest
import torch

from hrnext_trt.errors import HrnextError
from hrnext_trt.models import build_pose_model, checkpoint_meta, load_pose_model, read_checkpoint


@pytest.fixture(scope="module")
def mmpose_file(fixtures_dir):
    return fixtures_dir / "hrnext_tiny_crowdpose.pth"


def project_checkpoint(model, **overrides):
    ckpt = {"format": "hrnext-trt", "format_version": 1, "arch": model.arch, "num_joints": model.num_joints,
            "input_size": [64, 48], "dataset": "crowdpose", "state_dict": model.state_dict(), "config": {},
            "epoch": 3, "iteration": 30}
    return {**ckpt, **overrides}


def _same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Every tensor of ``a`` equals ``b``'s of the same name (each state_dict taken once: per key it took a minute)."""
    theirs = b.state_dict()
    return all(torch.equal(v, theirs[k]) for k, v in a.state_dict().items())


def test_project_checkpoint_round_trip(tmp_path, mmpose_file):
    model = load_pose_model(mmpose_file, arch="hrnext_tiny", num_joints=14)
    path = tmp_path / "ckpt.pth"
    torch.save(project_checkpoint(model), path)
    loaded = load_pose_model(path)
    assert (loaded.arch, loaded.num_joints, loaded.training) == ("hrnext_tiny", 14, False)
    assert checkpoint_meta(read_checkpoint(path))["input_size"] == [64, 48]
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_project_checkpoint_refuses_another_arch_or_joint_count(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save(project_checkpoint(build_pose_model("hrnext_tiny", 14)), path)
    with pytest.raises(HrnextError, match="has 14 joints, model hrnext_tiny was asked for 17"):
        load_pose_model(path, num_joints=17)
    with pytest.raises(HrnextError, match="holds hrnext_tiny, model hrnext_s was asked for"):
        load_pose_model(path, arch="hrnext_s")


def test_project_checkpoint_whose_tensors_do_not_fit(tmp_path):
    state = build_pose_model("hrnext_tiny", 14).state_dict()
    state["backbone.conv1.weight"] = torch.zeros(24, 3, 3, 3)
    del state["backbone.bn1.bias"]
    path = tmp_path / "ckpt.pth"
    torch.save(project_checkpoint(build_pose_model("hrnext_tiny", 14), state_dict=state), path)
    with pytest.raises(HrnextError, match=r"does not fit hrnext_tiny: 1 tensors differ in shape, e.g. "
                                          r"backbone.conv1.weight: \(24,3,3,3\) in the checkpoint vs \(16,3,3,3\).*"
                                          r"1 tensors missing, e.g. backbone.bn1.bias"):
        load_pose_model(path)


def test_mmpose_checkpoint_needs_arch_and_joints(mmpose_file):
    with pytest.raises(HrnextError, match="pass --arch and --joints"):
        load_pose_model(mmpose_file)
    with pytest.raises(HrnextError, match="pass --arch and --joints"):
        load_pose_model(mmpose_file, arch="hrnext_tiny")


def test_mmpose_checkpoint_of_another_size_or_joint_count(mmpose_file):
    with pytest.raises(HrnextError, match="has 14 joints, model hrnext_tiny was asked for 17"):
        load_pose_model(mmpose_file, arch="hrnext_tiny", num_joints=17)
    with pytest.raises(HrnextError, match=r"does not fit hrnext_s: \d+ tensors differ in shape, e.g. "
                                          r"backbone.conv1.weight: \(16,3,3,3\) in the checkpoint vs \(64,3,3,3\)"):
        load_pose_model(mmpose_file, arch="hrnext_s", num_joints=14)


def test_mmpose_hrnet_checkpoint_loads(tmp_path):
    model = build_pose_model("hrnet_w32", 17)
    state = {k.replace("head.", "keypoint_head.final_layer."): v for k, v in model.state_dict().items()}
    for key in ("backbone.layer1.0.downsample.0.weight", "backbone.transition1.1.0.0.weight",
                "backbone.stage2.0.branches.1.3.conv2.weight", "backbone.stage3.3.fuse_layers.2.0.1.1.running_var",
                "backbone.stage4.2.fuse_layers.0.3.0.weight", "keypoint_head.final_layer.bias"):
        assert key in state, f"mmpose HRNet key {key} has no module"
    assert not any(k.startswith("backbone.stage4.2.fuse_layers.1") for k in state)
    path = tmp_path / "hrnet.pth"
    torch.save({"meta": {}, "state_dict": state}, path)
    loaded = load_pose_model(path, arch="hrnet_w32", num_joints=17)
    assert torch.equal(loaded.head.weight, model.head.weight)


def test_unreadable_files_fail_with_one_line(tmp_path):
    with pytest.raises(HrnextError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(HrnextError, match="not a PyTorch checkpoint or truncated"):
        read_checkpoint(garbage)
    no_state = tmp_path / "no_state.pth"
    torch.save({"weights": torch.zeros(1)}, no_state)  # a bare state_dict, of another network
    with pytest.raises(HrnextError, match="neither an hrnext-trt nor an mmpose 0.x checkpoint nor a state_dict"):
        load_pose_model(no_state)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, foreign)
    with pytest.raises(HrnextError, match="neither an hrnext-trt nor an mmpose"):
        load_pose_model(foreign)


def test_unknown_arch_is_named():
    with pytest.raises(HrnextError, match="unknown arch 'hrnext_xl'; choose one of hrnext_tiny"):
        build_pose_model("hrnext_xl", 17)


def test_initial_weights_of_other_joints_load_all_but_the_head(tmp_path, mmpose_file):
    """--load-from a CrowdPose (14-joint) model into a COCO (17) one: the backbone comes over, the head
    keeps its fresh initialisation; the same joints take every tensor; another arch is refused."""
    from hrnext_trt.models import load_initial_weights

    source = load_pose_model(mmpose_file, arch="hrnext_tiny", num_joints=14)
    torch.manual_seed(0)
    coco = build_pose_model("hrnext_tiny", 17)
    fresh_head = {k: v.clone() for k, v in coco.head.state_dict().items()}
    line = load_initial_weights(coco, mmpose_file)
    assert line == (f"--load-from {mmpose_file} predicts 14 joints and this model 17: its backbone is loaded, the "
                    "head (the last 1x1 convolution) starts fresh")
    assert _same_tensors(coco.backbone, source.backbone)
    assert all(torch.equal(v, fresh_head[k]) for k, v in coco.head.state_dict().items())

    path = tmp_path / "crowdpose.pth"
    torch.save(project_checkpoint(source), path)
    same = build_pose_model("hrnext_tiny", 14)
    assert load_initial_weights(same, path) is None
    assert _same_tensors(same, source)
    with pytest.raises(HrnextError, match="holds hrnext_tiny, model hrnext_s was asked for"):
        load_initial_weights(build_pose_model("hrnext_s", 14), path)


def _outputs_equal(a, b) -> bool:
    x = torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_checkpoints_as_other_tools_save_them_load_their_weights(tmp_path, mmpose_file, caplog):
    """DataParallel's module. prefix, timm's state_dict_ema, mmcv's ema_* buffers, BatchNorm without
    num_batches_tracked: each loads the weights the file means (were: refused, or the EMA set dropped
    without a word), and each choice is said."""
    import logging

    caplog.set_level(logging.INFO, logger="hrnext_trt")
    reference = load_pose_model(mmpose_file, arch="hrnext_tiny", num_joints=14)
    raw = torch.load(mmpose_file, weights_only=True)
    state = raw["state_dict"]
    averaged = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    variants = {
        "module": ({**raw, "state_dict": {f"module.{k}": v for k, v in state.items()}}, state, None),
        "timm_ema": ({**raw, "state_dict_ema": averaged}, averaged, "loading its EMA weights (state_dict_ema)"),
        "mmcv_ema": ({**raw, "state_dict": {**state, **{"ema_" + k.replace(".", "_"): v + 1 for k, v in state.items()
                                                        if v.is_floating_point()}}}, state,
                     f"dropping {sum(v.is_floating_point() for v in state.values())} mmcv EMA buffers"),
        "mmengine_ema": ({**raw, "ema_state_dict": {f"module.{k}": v for k, v in averaged.items()}}, state,
                         "which mmengine's EMA hook saves as the averaged weights"),
        "no_num_batches_tracked": ({**raw, "state_dict": {k: v for k, v in state.items()
                                                          if not k.endswith("num_batches_tracked")}}, state, None),
    }
    for name, (ckpt, meant, said) in variants.items():
        path = tmp_path / f"{name}.pth"
        torch.save(ckpt, path)
        caplog.clear()
        loaded = load_pose_model(path, arch="hrnext_tiny", num_joints=14)
        expected = load_pose_model({"meta": {}, "state_dict": meant}, arch="hrnext_tiny", num_joints=14)
        assert _outputs_equal(loaded, expected), name
        assert _outputs_equal(loaded, reference) == (meant is state), name
        if said:
            assert any(said in r.getMessage() and str(path) in r.getMessage() for r in caplog.records), name


def test_the_official_hrnet_layout_loads_as_mmposes(tmp_path):
    """deep-high-resolution-net's pose_hrnet files (conv1., stage2., final_layer.; the most common HRNet
    weights) were "neither an hrnext-trt nor an mmpose 0.x checkpoint"."""
    model = build_pose_model("hrnet_w32", 17)
    mmpose = {k.replace("head.", "keypoint_head.final_layer."): v for k, v in model.state_dict().items()}
    official = {k[len("backbone."):] if k.startswith("backbone.") else k.replace("keypoint_head.", ""): v
                for k, v in mmpose.items()}
    assert "final_layer.weight" in official and "conv1.weight" in official
    path = tmp_path / "pose_hrnet_w32_256x192.pth"
    torch.save(official, path)
    loaded = load_pose_model(path, arch="hrnet_w32", num_joints=17)
    assert _same_tensors(loaded, model)


def test_initial_weights_of_a_backbone_alone_start_a_fresh_head(tmp_path, mmpose_file):
    """A backbone-only file (pretrained weights) for --load-from: was "pass --arch and --joints", which
    train has not."""
    from hrnext_trt.models import load_initial_weights

    source = load_pose_model(mmpose_file, arch="hrnext_tiny", num_joints=14)
    raw = torch.load(mmpose_file, weights_only=True)
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": {k: v for k, v in raw["state_dict"].items() if k.startswith("backbone.")}}, path)
    torch.manual_seed(0)
    model = build_pose_model("hrnext_tiny", 17)
    fresh_head = {k: v.clone() for k, v in model.head.state_dict().items()}
    assert load_initial_weights(model, path) == (f"--load-from {path} holds no head: its backbone is loaded, the "
                                                 "head starts fresh")
    assert _same_tensors(model.backbone, source.backbone)
    assert all(torch.equal(v, fresh_head[k]) for k, v in model.head.state_dict().items())
    with pytest.raises(HrnextError, match="does not fit hrnext_s"):
        load_initial_weights(build_pose_model("hrnext_s", 17), path)
