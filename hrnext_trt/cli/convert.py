"""``hrnext-trt convert mpii|posetrack SRC --out FILE.json``: a dataset's release files -> COCO format."""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = ("mpii", "posetrack")


@click.command("convert")
@click.argument("dataset", type=click.Choice(FORMATS))
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="The COCO-format keypoint file to write (replaced whole, never half-written).")
@click.option("--image-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset root the image paths are relative to (MPII: the folder holding images/; "
                   "default: found at or above SRC). Image sizes are read from the files.")
@click.option("--head-boxes", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="MPII from HRNet's JSON: its gt_*.mat (default: gt_<name>.mat beside SRC, if present).")
def command(dataset: str, src: Path, out: Path, image_root: Path | None, head_boxes: Path | None) -> None:
    """Convert MPII (release .mat or HRNet's annot/*.json) or PoseTrack (a per-video file or a
    folder of them, 2018 or 2017 layout) to a COCO-format keypoint file.

    \b
      hrnext-trt convert mpii data/mpii/annot/valid.json --out data/mpii/annotations/mpii_val.json
      hrnext-trt convert posetrack data/posetrack18/annotations/val --out data/posetrack18/annotations/posetrack18_val.json
    """
    from hrnext_trt.converters import (check_out_path, convert_mpii, convert_posetrack, head_boxes_file,
                                       write_coco_file)
    from hrnext_trt.errors import HrnextError

    # Before reading: the files read must survive a mistyped --out.
    check_out_path(out, src, head_boxes_file(src, head_boxes) if dataset == "mpii" else None)
    if dataset == "mpii":
        data = convert_mpii(src, image_root=image_root, head_boxes=head_boxes)
    else:
        if head_boxes is not None:
            raise HrnextError("--head-boxes is for MPII's HRNet JSON; PoseTrack files carry their head boxes")
        data = convert_posetrack(src, image_root=image_root)
    path = write_coco_file(data, out)
    click.echo(f"{dataset}: {len(data['annotations'])} people in {len(data['images'])} images -> {path}")
