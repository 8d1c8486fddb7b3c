"""``hrnext-trt summary``: the table, the JSON object, and one-line errors."""

import json

from click.testing import CliRunner

from hrnext_trt.cli import main
from hrnext_trt.models import build_pose_model


def test_summary_json_has_params_and_macs():
    result = CliRunner().invoke(main, ["summary", "hrnext_tiny", "--input-size", "64x64", "--joints", "14", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["params"] == sum(p.numel() for p in build_pose_model("hrnext_tiny", 14).parameters())
    assert summary["macs"] > 0 and summary["input_size"] == [64, 64]
    assert {s["name"] for s in summary["stages"]} >= {"stem", "stage1", "stage4", "head"}


def test_summary_table_ends_with_the_total():
    result = CliRunner().invoke(main, ["summary", "hrnext_tiny", "--input-size", "64x64"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "hrnext_tiny, 17 joints, input 64x64"
    assert lines[-1].split()[0] == "total"
    assert abs(float(lines[-1].split()[1]) - sum(float(line.split()[1]) for line in lines[2:-1])) < 2e-3


def test_summary_errors_are_one_line():
    for args, message in ((["hrnext_xl"], "unknown arch 'hrnext_xl'"),
                          (["hrnext_s", "--input-size", "250x190"], "input size 250x190")):
        result = CliRunner().invoke(main, ["summary", *args])
        assert result.exit_code == 2
        assert message in result.output and len(result.output.strip().splitlines()) == 1
