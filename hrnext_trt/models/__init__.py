"""PyTorch models: HRNeXt, the HRNet baselines, DKA, checkpoint loading and complexity (torch side)."""

from hrnext_trt.models.checkpoint import (checkpoint_meta, checkpoint_spec, load_initial_weights, load_pose_model,
                                          make_checkpoint, read_checkpoint, recipe_flip_test, recipe_val_root,
                                          remap_mmpose_state_dict, write_arch_checkpoint)
from hrnext_trt.models.deploy import prepare_for_export
from hrnext_trt.models.pose_model import ARCHS, DEFAULT_DKA_MODE, PoseModel, build_pose_model

__all__ = ["ARCHS", "DEFAULT_DKA_MODE", "PoseModel", "build_pose_model", "checkpoint_meta", "checkpoint_spec", "load_initial_weights", "load_pose_model", "make_checkpoint", "prepare_for_export",
           "read_checkpoint", "recipe_flip_test", "recipe_val_root", "remap_mmpose_state_dict", "write_arch_checkpoint"]
