"""Graph simplification before any precision pass.

The traced graph carries the dynamic-batch shape arithmetic of every reshape (Shape, Gather,
Concat, ... chains) and unfolded constants: about twice the nodes of the network itself.
onnxslim's constant folding, shape inference and dead-node removal halve it, and ModelOpt's
AutoCast and INT8 passes cost time per node (on the raw hrnext_s graph both ran past 10 min).
The simplified graph IS ``model.onnx``: one FP32 artifact that every other precision starts from.
"""

from __future__ import annotations


def simplify(model):
    """An ``onnx.ModelProto`` simplified by onnxslim (numerically the same graph)."""
    import onnxslim

    return onnxslim.slim(model)
