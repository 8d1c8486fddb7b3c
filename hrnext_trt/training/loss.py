"""The heatmap loss of the recipe: MSE weighted by joint visibility."""

from __future__ import annotations


def keypoint_mse_loss(heatmaps, targets, target_weights):
    """``0.5 * mean((w * (pred - target))^2)`` over batch, joints and pixels.

    ``heatmaps``/``targets`` (B, J, h, w), ``target_weights`` (B, J): a joint with weight 0 (not
    labelled, or outside the crop) adds nothing. The 0.5 and the mean over joints follow
    mmpose's ``JointsMSELoss(use_target_weight=True)``, so loss values compare with its logs.
    """
    weights = target_weights[:, :, None, None].to(heatmaps.dtype)
    diff = (heatmaps.float() - targets.float()) * weights.float()
    return 0.5 * diff.pow(2).mean()
