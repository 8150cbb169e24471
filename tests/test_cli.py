"""The `mlc` command line (mlc.cli.main), run in-process and once as a real process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import mlc
from mlc import zoo
from mlc.cli.main import main
from mlc.runtime.library import find_c_compiler

from conftest import ort_run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = zoo.build("mlp")
    onnx_path = d / "mlp.onnx"
    onnx.save(model, onnx_path)
    feeds = zoo.example_inputs("mlp")
    np.save(d / "x.npy", feeds["x"])
    np.savez(d / "feeds.npz", **feeds)
    mlc_path = d / "mlp.mlc"
    assert main(["compile", str(onnx_path), "-o", str(mlc_path)]) == 0
    return {"dir": d, "onnx": str(onnx_path), "mlc": str(mlc_path), "x": str(d / "x.npy"),
            "npz": str(d / "feeds.npz"), "model": model, "feeds": feeds}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------ help

@pytest.mark.parametrize("cmd", [[], ["compile"], ["run"], ["bench"], ["profile"], ["inspect"]])
def test_help(capsys, cmd):
    code, out, err = run_cli(capsys, *cmd, "--help")
    assert code == 0
    assert "usage: mlc" in out
    if not cmd:
        for name in ("compile", "run", "bench", "profile", "inspect"):
            assert name in out


def test_no_command_is_a_usage_error(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and "usage" in err


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and mlc.__version__ in out


# ------------------------------------------------------------------------ compile / run

def test_compile_writes_a_loadable_artifact(files):
    mod = mlc.load(files["mlc"])
    got = mod.run(files["feeds"])["logits"]
    np.testing.assert_allclose(got, ort_run(files["model"], files["feeds"])[0], rtol=1e-4, atol=1e-5)


def test_run_with_npy_input_and_npz_output(capsys, files, tmp_path):
    out_path = tmp_path / "out.npz"
    code, out, err = run_cli(capsys, "run", files["mlc"], "--input", f"x={files['x']}", "-o", out_path)
    assert code == 0, err
    with np.load(out_path) as z:
        got = z["logits"]
    ref = mlc.load(files["mlc"]).run(files["feeds"])["logits"]
    np.testing.assert_array_equal(got, ref)


def test_run_onnx_with_npz_inputs_prints_a_summary(capsys, files):
    code, out, err = run_cli(capsys, "run", files["onnx"], "--inputs", files["npz"], "--threads", "1")
    assert code == 0, err
    assert "logits" in out and "1x10" in out and "float32" in out
    for word in ("min", "max", "mean"):
        assert word in out
    ref = ort_run(files["model"], files["feeds"])[0]
    assert f"{ref.max():.4g}"[:4] in out


def test_run_random_inputs_are_seeded(capsys, files):
    _, out1, _ = run_cli(capsys, "run", files["mlc"])
    _, out2, _ = run_cli(capsys, "run", files["mlc"])
    _, out3, _ = run_cli(capsys, "run", files["mlc"], "--seed", "7")
    assert "random inputs (seed 0)" in out1
    strip = lambda s: s.split("\n", 1)[1]       # drop the timing line
    assert strip(out1) == strip(out2) and strip(out1) != strip(out3)


def test_input_shape_binds_symbolic_dims(capsys, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "sym.onnx"
    onnx.save(model, path)
    out_path = tmp_path / "sym.mlc"
    code, out, err = run_cli(capsys, "compile", path, "-o", out_path, "--input-shape", "x:3,4")
    assert code == 0, err
    assert mlc.load(out_path).inputs[0].shape == (3, 4)
    code, out, err = run_cli(capsys, "run", path, "--input-shape", "x:5,4")
    assert code == 0 and "5x4" in out
    # unbound: compile refuses, run needs input files (then specialises on their shapes)
    code, out, err = run_cli(capsys, "compile", path, "-o", tmp_path / "nope.mlc")
    assert code == 1 and "symbolic input dimensions" in err and "--input-shape" in err
    code, out, err = run_cli(capsys, "run", path)
    assert code == 1 and "--input-shape" in err
    np.save(tmp_path / "x6.npy", np.ones((6, 4), np.float32))
    code, out, err = run_cli(capsys, "run", path, "--input", f"x={tmp_path / 'x6.npy'}")
    assert code == 0 and "6x4" in out, err
    code, out, err = run_cli(capsys, "profile", path, "--input", f"x={tmp_path / 'x6.npy'}", "--repeat", "2")
    assert code == 0 and "Relu" in out, err


@pytest.mark.skipif(find_c_compiler() is None, reason="no C compiler installed: --emit so cannot link")
def test_compile_emit_so(capsys, files, tmp_path):
    so = tmp_path / "libmlp.so"
    code, out, err = run_cli(capsys, "compile", files["onnx"], "--emit", "so", "-o", so)
    assert code == 0, err
    assert so.exists() and (tmp_path / "libmlp.h").exists()
    assert "mlc_model_run" in (tmp_path / "libmlp.h").read_text()


# ------------------------------------------------------------------------ bench / profile

def test_bench(capsys, files):
    code, out, err = run_cli(capsys, "bench", files["onnx"], "--repeat", "3", "--warmup", "1")
    assert code == 0, err
    for word in ("threads", "mlc ms", "ort ms", "ort/mlc", "GFLOP/s", "max |mlc - onnxruntime|"):
        assert word in out
    lines = [l for l in out.splitlines() if l.strip().startswith("1 ")]
    assert lines, out


def test_profile_prints_table_and_json(capsys, files, tmp_path):
    j = tmp_path / "p.json"
    code, out, err = run_cli(capsys, "profile", files["mlc"], "--repeat", "5", "--json", j)
    assert code == 0, err
    assert "k0_Gemm_Relu" in out and "profiler overhead" in out
    data = json.loads(j.read_text())
    assert len(data["rows"]) == 3


# ------------------------------------------------------------------------ inspect

@pytest.mark.parametrize("stage,expect", [("graph", "Gemm("), ("fused", "FLOPs"), ("loop", "for "),
                                          ("llvm", "define"), ("asm", "mlc_run:")])
def test_inspect_stages(capsys, files, stage, expect):
    code, out, err = run_cli(capsys, "inspect", files["onnx"], "--stage", stage)
    assert code == 0, err
    assert expect in out


def test_inspect_one_kernel_and_dot(capsys, files, tmp_path):
    code, out, err = run_cli(capsys, "inspect", files["onnx"], "--stage", "loop", "--kernel", "k2_Gemm")
    assert code == 0, err
    assert "k2_Gemm" in out and "k0_Gemm_Relu" not in out
    code, out, err = run_cli(capsys, "inspect", files["onnx"], "--stage", "asm", "--kernel", "k2_Gemm")
    assert code == 0 and "k2_Gemm" in out
    dot = tmp_path / "g.dot"
    code, out, err = run_cli(capsys, "inspect", files["onnx"], "--dot", dot)
    assert code == 0, err
    text = dot.read_text()
    assert text.startswith("digraph") and "k0_Gemm_Relu" in text and "->" in text
    code, out, err = run_cli(capsys, "inspect", files["onnx"], "--stage", "loop", "--kernel", "nope")
    assert code == 1 and "no kernel named 'nope'" in err


def test_inspect_artifact(capsys, files):
    code, out, err = run_cli(capsys, "inspect", files["mlc"])
    assert code == 0, err
    assert "mlc artifact" in out and "schedule:" in out and "logits" in out


def test_inspect_python_api(files):
    text = mlc.inspect(files["onnx"], stage="fused")
    assert "k0_Gemm_Relu" in text and "bytes moved" in text
    import mlc.inspect as module
    assert callable(module) and module(files["onnx"], stage="graph").startswith("graph")
    assert mlc.inspect_dot(files["onnx"]).startswith("digraph")
    with pytest.raises(mlc.MlcError, match="unknown stage"):
        mlc.inspect(files["onnx"], stage="nope")


# ------------------------------------------------------------------------ errors

@pytest.mark.parametrize("argv,msg", [
    (["run", "missing.mlc"], "no such file"),
    (["run", "{onnx}", "--input", "x"], "expected NAME=FILE.npy"),
    (["run", "{onnx}", "--input", "y={x}"], "unknown input(s) ['y']"),
    (["run", "{onnx}", "--input-shape", "x=1,2"], "expected NAME:D1,D2"),
    (["compile", "{x}"], "not a readable ONNX model"),
    (["run", "{corrupt}"], "corrupted"),
    (["compile", "{onnx}", "--target", "riscv"], "unknown target"),
])
def test_errors_are_one_line(capsys, files, argv, msg):
    corrupt = files["dir"] / "corrupt.mlc"
    data = bytearray(open(files["mlc"], "rb").read())
    data[200] ^= 1
    corrupt.write_bytes(bytes(data))
    argv = [a.format(onnx=files["onnx"], x=files["x"], corrupt=corrupt) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlc: error: "), err
    assert msg in lines[0]
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys):
    code, out, err = run_cli(capsys, "--debug", "run", "missing.mlc")
    assert code == 1 and "Traceback" in err and "mlc: error: no such file" in err
    code, out, err = run_cli(capsys, "run", "missing.mlc", "--debug")
    assert code == 1 and "Traceback" in err


def test_bad_choice_is_a_usage_error(capsys, files):
    code, out, err = run_cli(capsys, "inspect", files["onnx"], "--stage", "bogus")
    assert code == 2 and "invalid choice" in err


# ------------------------------------------------------------------------ as a process

def test_runs_as_a_process(files, tmp_path):
    out_path = tmp_path / "o.npz"
    res = subprocess.run([sys.executable, "-m", "mlc.cli.main", "run", files["mlc"], "--input",
                          f"x={files['x']}", "--output", str(out_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert out_path.exists()
    res = subprocess.run([sys.executable, "-m", "mlc.cli.main", "run", "missing.mlc"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and res.stderr.strip() == "mlc: error: no such file: missing.mlc"
    script = shutil.which("mlc", path=os.path.dirname(sys.executable)) or shutil.which("mlc")
    if script:
        res = subprocess.run([script, "inspect", files["mlc"]], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and "mlc artifact" in res.stdout, res.stderr
