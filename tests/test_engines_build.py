"""Real engine builds on any machine: TensorRT for RTX builds without a GPU (the test environment installs it).

The session's fixture export (``fixture_export`` in conftest) builds FP32, FP16 and INT8 engines;
these tests check what the builds declare against the ONNX files they came from, and that broken
input fails in one line. Running an engine needs a GPU: those tests are in test_engines_tensorrt.py.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from hrnext_trt.contract import installed_builders, nvidia_gpu_present
from hrnext_trt.engines import TensorRTEngine, load_manifest, verify_files
from hrnext_trt.engines.builders import RTX_DEFAULT_TARGETS, TENSORRT_RTX, import_builder
from hrnext_trt.errors import HrnextError

if TENSORRT_RTX not in installed_builders():
    pytest.skip('TensorRT for RTX is not installed (pip install -e ".[dev]" installs it): engine builds need it',
                allow_module_level=True)

from hrnext_trt.export.tensorrt_build import build_engine  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")
ONNX_OF = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}


@pytest.fixture()
def built(fixture_export):
    out, printed = fixture_export
    manifest = load_manifest(out)
    if manifest["engines"]["builder"] != TENSORRT_RTX:
        pytest.skip("TensorRT built these engines (a GPU with TensorRT is here): test_engines_tensorrt.py checks them")
    return out, manifest, printed


def test_three_engines_are_built_recorded_and_hashed(built):
    out, manifest, _ = built
    version = import_builder(TENSORRT_RTX).__version__
    targets = manifest["engines"]["targets"]
    # No GPU: the default set; a GPU TensorRT for RTX builds for: that GPU's compute capability alone.
    assert targets == list(RTX_DEFAULT_TARGETS) or (nvidia_gpu_present() and len(targets) == 1)
    assert manifest["versions"]["tensorrt_rtx"] == manifest["engines"]["version"] == version
    for precision in PRECISIONS:
        entry = manifest["artifacts"][f"model_{precision}.engine"]
        assert (entry["builder"], entry["builder_version"], entry["targets"]) == (TENSORRT_RTX, version, targets)
        assert entry["built_from"] == ONNX_OF[precision] and entry["precision"] == precision
        assert entry["build"]["seconds"] > 0 and entry["build"]["tf32"] is (precision != "fp32")
        assert entry["size"] > 100_000  # the weights are inside
        log_text = (out / f"build_{precision}.log").read_text()
        assert "[INFO]" in log_text and entry["log"] == f"build_{precision}.log"
    assert manifest["engines"]["timing_cache"] is None and not (out / "timing.cache").exists()
    verify_files(manifest, out)


def test_every_onnx_node_is_accepted_by_the_parser(built):
    out, manifest, _ = built
    trt = import_builder(TENSORRT_RTX)
    logger = trt.Logger(trt.Logger.ERROR)
    for precision in PRECISIONS:
        path = out / ONNX_OF[precision]
        nodes = len(onnx.load(str(path)).graph.node)
        assert manifest["artifacts"][f"model_{precision}.engine"]["build"]["onnx_nodes"] == nodes
        builder = trt.Builder(logger)  # the builder and network must outlive the parser
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        assert parser.supports_model_v2(path.read_bytes(), str(path))
        accepted = {n for i in range(parser.num_subgraphs) if parser.is_subgraph_supported(i)
                    for n in parser.get_subgraph_nodes(i)}
        assert accepted == set(range(nodes))


def test_engines_declare_the_exported_io_and_profile(built):
    _, manifest, _ = built
    height, width = manifest["model"]["input_size"]
    joints = manifest["model"]["num_joints"]
    batch = manifest["batch_profile"]
    for precision in PRECISIONS:
        build = manifest["artifacts"][f"model_{precision}.engine"]["build"]
        # float32 in and out at every precision; the batch axis is the only dynamic one.
        assert build["network"]["inputs"] == [{"name": "images", "dtype": "float32", "shape": [-1, 3, height, width]}]
        assert build["network"]["outputs"] == [{"name": "heatmaps", "dtype": "float32",
                                                "shape": [-1, joints, height // 4, width // 4]}]
        assert build["profile"] == {"images": {k: [batch[k], 3, height, width] for k in ("min", "opt", "max")}}


def test_layer_precisions_follow_the_onnx(built):
    """FP32: no float16 or int8 layer; FP16: float16 is the rule; INT8: every Q/DQ node of the ONNX is a layer,
    and exactly the ONNX nodes fed by a DequantizeLinear compute in int8 (convolutions among them)."""
    out, manifest, _ = built
    report = {p: manifest["artifacts"][f"model_{p}.engine"]["build"]["network"] for p in PRECISIONS}
    for precision, network in report.items():
        assert sum(network["by_precision"].values()) == sum(network["by_type"].values()) == network["layers"]
    assert not {"float16", "int8", "q/dq"} & set(report["fp32"]["by_precision"])
    fp16 = report["fp16"]["by_precision"]
    assert fp16["float16"] > fp16.get("float32", 0) and "int8" not in fp16
    int8_graph = onnx.load(str(out / "model_int8.onnx")).graph
    qdq = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in int8_graph.node)
    int8 = report["int8"]
    assert int8["by_precision"]["q/dq"] == int8["by_type"]["quantize"] + int8["by_type"]["dequantize"] == qdq
    dequantized = {o for n in int8_graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    fed = [n.op_type for n in int8_graph.node
           if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and n.input and n.input[0] in dequantized]
    assert fed.count("Conv") > 10 and int8["by_precision"]["int8"] == len(fed)
    assert report["fp32"]["by_type"]["convolution"] == int8["by_type"]["convolution"]


def test_the_export_prints_the_engine_table(built):
    _, manifest, printed = built
    assert f"engines built by tensorrt-rtx {manifest['engines']['version']} for compute capabilities" in printed
    table = printed.split("engines built by")[1].splitlines()
    for precision in PRECISIONS:
        build = manifest["artifacts"][f"model_{precision}.engine"]["build"]
        line = next(line for line in table if line.startswith(f"model_{precision}.engine"))
        assert f" {build['seconds']:.1f} s " in line and f" {build['network']['layers']} " in line
        assert all(f"{k} {v}" in line for k, v in build["network"]["by_precision"].items())
    if not nvidia_gpu_present():
        assert "not run: no NVIDIA GPU on this machine" in printed


@pytest.mark.skipif(nvidia_gpu_present(), reason="checks the machine without a GPU")
def test_running_an_engine_without_a_gpu_is_one_clear_line(built):
    out, _, _ = built
    with pytest.raises(HrnextError) as err:
        TensorRTEngine(out / "model_fp32.engine").activate()
    message = str(err.value)
    assert "\n" not in message and ("no CUDA GPU 0 is visible" in message or "pycuda is not installed" in message)


def test_an_operator_the_parser_rejects_is_one_clear_line(tmp_path):
    nodes = [helper.make_node("Relu", ["images"], ["x"]), helper.make_node("Unique", ["x"], ["heatmaps"], name="uniq")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                           ["batch", 3, 64, 48])],
                              [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "bad.onnx"))
    log = tmp_path / "build_fp32.log"
    with pytest.raises(HrnextError, match=r"TensorRT for RTX [\d.]+ cannot parse bad\.onnx: node 1 \(Unique 'uniq'\): "
                                          r"unsupported node; .*\(log: .*build_fp32\.log\)") as err:
        build_engine(TENSORRT_RTX, tmp_path / "bad.onnx", tmp_path / "bad.engine", log, (64, 48), (1, 2, 4), 1.0,
                     None, tf32=False, targets=RTX_DEFAULT_TARGETS)
    assert "\n" not in str(err.value)
    assert log.stat().st_size > 0 and not (tmp_path / "bad.engine").exists()


def test_a_profile_that_does_not_fit_the_onnx_is_one_clear_line(fixture_export, tmp_path):
    out, _ = fixture_export
    with pytest.raises(HrnextError, match=r"the batch profile shape \(1, 3, 128, 96\) does not fit input 'images' "
                                          r"\(\?x3x256x192\) of model\.onnx: build with the input size") as err:
        build_engine(TENSORRT_RTX, out / "model.onnx", tmp_path / "x.engine", tmp_path / "x.log", (128, 96),
                     (1, 2, 4), 1.0, None, tf32=False, targets=RTX_DEFAULT_TARGETS)
    assert "\n" not in str(err.value) and not (tmp_path / "x.engine").exists()


@pytest.mark.parametrize("args, message", [
    (["--compute-capability", "9.0"], "compute capability '9.0' is not one TensorRT for RTX builds for"),
    (["--builder", "tensorrt", "--compute-capability", "8.6"], "compute_capabilities are chosen for TensorRT for RTX"),
])
def test_bad_builder_options_are_one_clear_line(fixtures_dir, tmp_path, args, message):
    from click.testing import CliRunner

    from hrnext_trt.cli import main

    result = CliRunner().invoke(main, ["export-engine", str(fixtures_dir / "hrnext_tiny_crowdpose.pth"),
                                       "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()



def test_a_refused_build_beside_a_gpu_pycuda_cannot_see_keeps_its_log(fixtures_dir, tmp_path, monkeypatch,
                                                                       gpu_machine_with_pycuda):
    """A build the builder refuses (TensorRT for RTX on a GPU it does not target) failed the export,
    whose staging folder went with the log the error named: the log now outlives the export. The
    machine's GPU is hidden from pycuda (CUDA_VISIBLE_DEVICES=""), which was a TypeError traceback."""
    import re

    from click.testing import CliRunner

    from hrnext_trt.cli import main

    gpu_machine_with_pycuda("class Error(Exception):\n    pass\n\n\ndef init():\n    pass\n\n\n"
                            "class Device:\n    @staticmethod\n    def count():\n        return 0\n")
    trt = import_builder(TENSORRT_RTX)

    class RefusingBuilder(trt.Builder):  # the refusal alone is injected: parse, config and log are real
        def build_serialized_network(self, network, config):
            return None

    monkeypatch.setattr(trt, "Builder", RefusingBuilder)
    out = tmp_path / "exp"
    result = CliRunner().invoke(main, ["export-engine", str(fixtures_dir / "hrnext_tiny_crowdpose.pth"), "--arch",
                                       "hrnext_tiny", "--joints", "14", "--input-size", "64x48", "--verify-images", "2",
                                       "--builder", TENSORRT_RTX, "--out", str(out)])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    found = re.search(r"failed to build model_fp32\.engine: no error was logged \(log: (\S+\.log)\)$", line)
    assert found, line
    log = Path(found.group(1))
    assert log.is_file() and "[INFO]" in log.read_text() and not out.exists()
    log.unlink()
