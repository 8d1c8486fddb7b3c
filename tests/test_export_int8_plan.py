"""INT8 sensitivity by structure and the budgets' precision plans (INT8, FP16), on the paper-layout fixture.

One export through the CLI (max calibration, stage groups: cheap) and one independent ModelOpt
quantization of its ``model.onnx``; everything else reads the files back.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hrnext_trt.engines import load_manifest, verify_files
from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner, read_onnx_metadata

torch = pytest.importorskip("torch")
pytest.importorskip("modelopt")

FIXTURE = "hrnext_tiny_crowdpose"
INPUT = (128, 96)
CALIB, HELDOUT, BUDGET, FP16_BUDGET = 8, 8, 1.0, 0.5


@pytest.fixture(scope="module")
def export(tmp_path_factory, fixtures_dir, data_dir):
    from hrnext_trt.cli import main

    out = tmp_path_factory.mktemp("int8_plan")
    args = [str(fixtures_dir / f"{FIXTURE}.pth"), "--arch", "hrnext_tiny", "--joints", "14", "--input-size",
            f"{INPUT[0]}x{INPUT[1]}", "--int8", "--calib-method", "max", "--calib-images", str(CALIB),
            "--verify-images", str(HELDOUT), "--calib-data", str(data_dir / "coco-mini"), "--int8-budget", str(BUDGET),
            "--sensitivity-level", "stage", "--fp16", "--fp16-budget", str(FP16_BUDGET), "--no-engines",
            "--out", str(out)]  # the plans live in the ONNX files; engine builds are test_engines_build's
    result = CliRunner().invoke(main, ["export-engine", *args])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def crops(data_dir):
    from hrnext_trt.export.calibration import make_crop_sets

    return make_crop_sets("coco", data_dir / "coco-mini", INPUT, CALIB, HELDOUT)


@pytest.fixture(scope="module")
def reference(export, crops, fixtures_dir):
    from hrnext_trt.export.verify import torch_heatmaps
    from hrnext_trt.models import load_pose_model

    model = load_pose_model(fixtures_dir / f"{FIXTURE}.pth", arch="hrnext_tiny", num_joints=14)
    return torch_heatmaps(model, crops.heldout)


@pytest.fixture(scope="module")
def study(export, crops, reference):
    """A one-row calibration study (the export's own choice), keeping the graph it quantized: the
    whole network quantized again, independently of the export."""
    from hrnext_trt.data import HeatmapCodec
    from hrnext_trt.export.calib_study import calibration_study
    from hrnext_trt.export.sensitivity import HeldoutEvaluator

    evaluator, graphs = HeldoutEvaluator(crops.heldout, reference, HeatmapCodec(INPUT)), []

    def evaluate(model):
        graphs.append(model)
        return evaluator(model)

    rows = calibration_study(export[0] / "model.onnx", crops.calibration, evaluate, [("max", CALIB)])
    return rows, graphs[0]


@pytest.fixture(scope="module")
def full_int8(study):
    return study[1]


def _rows(out):
    return json.loads((out / "sensitivity.json").read_text())


def test_sensitivity_table_printed_stored_and_drawn(export):
    out, output = export
    rows = _rows(out)
    assert {r["name"] for r in rows} >= {"stem", "stage1", "stage2", "stage3", "stage4"}
    for r in rows:
        assert set(r) >= {"name", "nodes", "rel_err", "kpt_px", "within_2px", "without"}
    harms = [(r["kpt_px"], r["rel_err"]) for r in rows]
    assert harms == sorted(harms, reverse=True)
    assert "INT8 sensitivity" in output and rows[0]["name"] in output
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    manifest = load_manifest(out)
    verify_files(manifest, out)
    assert manifest["artifacts"]["sensitivity.json"]["kind"] == "report"


def test_groups_cover_every_quantized_node_once(export, full_int8):
    from hrnext_trt.export.precision_plan import quantized_nodes

    listed = [n for r in _rows(export[0]) for n in r["nodes"]]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(quantized_nodes(full_int8))


def test_worst_group_costs_more_than_best(export, full_int8, crops, reference, tmp_path):
    """Re-measured from scratch: only the reported worst group, then only the best, quantized."""
    import onnx

    from hrnext_trt.data import HeatmapCodec
    from hrnext_trt.export.precision_plan import restrict_int8
    from hrnext_trt.export.verify import agreement

    rows = _rows(export[0])
    errors = []
    for row in (rows[0], rows[-1]):
        path = tmp_path / f"{row['name']}.onnx"
        onnx.save(restrict_int8(full_int8, set(row["nodes"])), str(path))
        with OnnxRuntimeRunner(path, "int8") as runner:
            check = agreement(reference, runner.infer({"images": crops.heldout})["heatmaps"], HeatmapCodec(INPUT))
        errors.append((check["mean_px"], check["rel_err"]))
    assert errors[0] > errors[1]


def test_budget_met_on_heldout_crops(export, crops, reference):
    from hrnext_trt.data import HeatmapCodec
    from hrnext_trt.export.verify import agreement

    out, _ = export
    with OnnxRuntimeRunner(out / "model_int8.onnx", "int8") as runner:
        check = agreement(reference, runner.infer({"images": crops.heldout})["heatmaps"], HeatmapCodec(INPUT))
    assert check["mean_px"] <= BUDGET
    plan = load_manifest(out)["precision_plan"]["int8"]
    assert plan["budget_px"] == BUDGET and plan["steps"][-1]["mean_px"] <= BUDGET
    assert np.isclose(plan["steps"][-1]["mean_px"], check["mean_px"], atol=1e-6)


def test_manifest_plan_is_what_the_graph_holds(export):
    import onnx

    from hrnext_trt.export.precision_plan import read_plan

    out, _ = export
    manifest = load_manifest(out)
    plan = manifest["precision_plan"]["int8"]
    groups = {r["name"]: r["nodes"] for r in _rows(out)}
    assert read_plan(onnx.load(str(out / "model_int8.onnx")), groups) == plan["groups"]
    metadata = read_onnx_metadata(out / "model_int8.onnx")
    assert metadata["precision_plan"]["groups"] == plan["groups"]
    assert metadata["calibration"] == {"method": "max", "crops": CALIB, "split": "train", "dataset": "coco"}
    assert manifest["crops"]["calibration_method"] == "max"


def test_plan_moves_groups_by_harm(export):
    """The greedy order: groups leave INT8 worst first, and it stops once within budget."""
    out, _ = export
    plan = load_manifest(out)["precision_plan"]["int8"]
    ranking = [r["name"] for r in _rows(out)]
    moved = [s["moved"] for s in plan["steps"][1:]]
    assert moved == ranking[:len(moved)]
    assert all(s["mean_px"] > BUDGET for s in plan["steps"][:-1])
    assert {g for g, p in plan["groups"].items() if p != "int8"} == set(moved)


def test_budget_needs_int8():
    from hrnext_trt.errors import HrnextError
    from hrnext_trt.export import ExportConfig

    with pytest.raises(HrnextError, match="--int8"):
        ExportConfig(checkpoint=__file__, out_dir="x", int8_budget=1.0)


def test_calibration_study_measures_the_exported_choice(export, study):
    from hrnext_trt.export.calib_study import format_study, study_choices

    rows, _ = study
    first = load_manifest(export[0])["precision_plan"]["int8"]["steps"][0]
    assert rows[0]["method"] == "max" and rows[0]["crops"] == CALIB
    assert np.isclose(rows[0]["mean_px"], first["mean_px"]) and np.isclose(rows[0]["rel_err"], first["rel_err"])
    assert study_choices(40) == [("entropy", 10), ("entropy", 40), ("max", 10), ("max", 40)]
    assert rows[0]["batches"] == 1 and "max" in format_study(rows, HELDOUT, "the coco train split")
    assert "entropy over one calibration batch equals max" in format_study([{**rows[0], "method": "entropy"}],
                                                                           HELDOUT, "the coco train split")


def test_entropy_calibration_over_one_batch_is_max_as_the_export_says(export, crops, study, caplog):
    # What the warning and the study's footnote claim of ModelOpt's entropy (ONNX Runtime's 128-bin
    # histogram): over one batch its activation scales are max calibration's. A ModelOpt that
    # changes this fails here, and the claim goes.
    from onnx import numpy_helper

    from hrnext_trt.export.precision import quantize_int8

    def scales(model):
        return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if "scale" in i.name}

    with caplog.at_level("WARNING"):
        entropy = quantize_int8(export[0] / "model.onnx", crops.calibration[:CALIB], "entropy")
    assert "entropy calibration over one batch of 8 crops equals max calibration" in caplog.text
    got, want = scales(entropy), scales(study[1])
    assert got.keys() == want.keys() and len(got) > 20
    assert all(np.array_equal(got[k], want[k]) for k in got)


def test_fp16_plan_is_what_the_graph_holds_and_meets_its_budget(export, crops, reference):
    import onnx

    from hrnext_trt.data import HeatmapCodec
    from hrnext_trt.export.precision_plan import read_plan
    from hrnext_trt.export.verify import agreement

    out, output = export
    plan = load_manifest(out)["precision_plan"]["fp16"]
    rows = json.loads((out / "sensitivity_fp16.json").read_text())
    assert {r["name"] for r in rows} == set(plan["groups"]) >= {"stem", "stage4", "head"}
    groups = {r["name"]: r["nodes"] for r in rows}
    assert read_plan(onnx.load(str(out / "model_fp16.onnx")), groups) == plan["groups"]
    assert read_onnx_metadata(out / "model_fp16.onnx")["precision_plan"]["groups"] == plan["groups"]
    with OnnxRuntimeRunner(out / "model_fp16.onnx", "fp16") as runner:
        check = agreement(reference, runner.infer({"images": crops.heldout})["heatmaps"], HeatmapCodec(INPUT))
    assert check["mean_px"] <= FP16_BUDGET and 0 < check["rel_err"] < 1e-2
    assert "FP16 plan" in output


def test_an_overflowed_group_is_valid_json_and_the_longest_bar(tmp_path):
    """A graph whose outputs overflow has infinite errors: null in sensitivity.json (a bare Infinity
    is no JSON), "overflow" in the table, and a hatched bar past every other (was: no bar at all,
    so the worst group looked harmless)."""
    import matplotlib.pyplot as plt

    from hrnext_trt.export import sensitivity

    inf = float("inf")
    rows = [{"name": "stage2.fuse", "nodes": ["a"], "rel_err": inf, "kpt_px": inf, "within_2px": 0.0,
             "without": {"rel_err": 0.01, "kpt_px": 0.2, "within_2px": 1.0}},
            {"name": "stem", "nodes": ["b", "c"], "rel_err": 0.02, "kpt_px": 0.4, "within_2px": 0.9,
             "without": {"rel_err": inf, "kpt_px": inf, "within_2px": 0.0}}]
    path = sensitivity.write_sensitivity(rows, tmp_path)
    saved = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert saved[0]["kpt_px"] is None and saved[1]["without"]["kpt_px"] is None
    table = sensitivity.format_sensitivity(saved, 4).splitlines()
    assert "overflow" in table[3] and table[4].rstrip().split()[-2:] == ["overflow", "0.0%"]
    complexity = {"stages": [{"name": "stem", "macs": 1e9}, {"name": "stage2", "macs": 2e9}]}
    fig = sensitivity.sensitivity_figure(rows, complexity, "t")
    bars = [(bar.get_width(), bar.get_hatch()) for bar in fig.axes[0].patches]
    plt.close(fig)
    (worst,) = [width for width, hatch in bars if hatch == "//"]
    assert worst > max(width for width, hatch in bars if hatch is None) > 0
    assert sensitivity.plot_sensitivity(rows, complexity, tmp_path / "s.png", "t").read_bytes()[:4] == b"\x89PNG"


def test_a_group_in_fp16_leaves_integer_outputs_integer():
    """A group moved to FP16 holding a Shape node (HRNeXt's stages have them): its int64 output stays
    int64 (was: a Cast to float behind it, and ONNX Runtime refused the candidate graph: "Type
    (tensor(int64)) of output arg ... Shape_5_output_0", ending --int8-budget exports)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from hrnext_trt.export.precision_plan import cast_fp16

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Shape", ["r"], ["s"], name="shape"),
             helper.make_node("Reshape", ["r", "s"], ["y"], name="reshape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    half = cast_fp16(model, {"relu", "shape", "reshape"})
    onnx.checker.check_model(half, full_check=True)
    types = {v.name: v.type.tensor_type.elem_type
             for v in onnx.shape_inference.infer_shapes(half).graph.value_info}
    assert types["s"] == TensorProto.INT64 and types["r__fp16"] == TensorProto.FLOAT16
    x = np.array([[-1, 2, 3], [4, -5, 6]], np.float32)
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.maximum(x, 0))
