"""Dataset release formats -> COCO-format keypoint files (``hrnext-trt convert``).

One module per dataset: ``mpii`` (the release ``.mat`` and HRNet-style JSON) and ``posetrack``
(PoseTrack 2018 per-video files, and 2017 ``annolist`` files). Every converter returns the
COCO-format dict; ``write_coco_file`` writes it atomically.
"""

from hrnext_trt.converters.common import check_out_path, write_coco_file
from hrnext_trt.converters.mpii import convert_mpii, head_boxes_file
from hrnext_trt.converters.posetrack import convert_posetrack

__all__ = ["check_out_path", "convert_mpii", "convert_posetrack", "head_boxes_file", "write_coco_file"]
