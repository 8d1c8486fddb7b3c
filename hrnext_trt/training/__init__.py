"""Training (torch): configs, the loop, atomic checkpoints, DDP. See train/README.md."""

from hrnext_trt.training.config import TrainConfig, config_from_dict, load_config, save_config
from hrnext_trt.training.logging import read_log
from hrnext_trt.training.trainer import train

__all__ = ["TrainConfig", "config_from_dict", "load_config", "read_log", "save_config", "train"]
