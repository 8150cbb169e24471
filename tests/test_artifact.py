"""Saved artifacts: mod.save(path) / mlc.load(path) (mlc.runtime.artifact).

Round trips are bit-exact for every zoo model; every way a file can be wrong (not ours,
truncated, corrupted, another format or mlc version, a CPU without the features the
code needs, another architecture) is a clear ArtifactError or TargetError.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

import mlc
from mlc import zoo
from mlc.errors import ArtifactError, TargetError, UnsupportedError
from mlc.runtime import artifact
from mlc.runtime.compiled_model import CompiledModel

ZOO_CASES = [
    ("mlp", {}),
    ("resnet18", {"image": 64}),
    ("mobilenetv2", {"image": 64}),
    ("bert", {"layers": 1, "seq": 16, "vocab": 100}),
]


def _compile_or_skip(name: str, **kwargs):
    try:
        return mlc.compile(zoo.build(name, **kwargs), num_threads=1)
    except UnsupportedError as exc:
        ops = sorted({item[0] for item in exc.items}) or [str(exc)]
        pytest.skip(f"{name} does not compile yet: missing op(s) {', '.join(ops)}")


@pytest.fixture(scope="module")
def mlp_model():
    return mlc.compile(zoo.build("mlp"), num_threads=1)


@pytest.fixture(scope="module")
def mlp_file(mlp_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("artifact") / "mlp.mlc"
    mlp_model.save(path)
    return str(path)


@pytest.fixture
def mlp_copy(mlp_file, tmp_path):
    """A private copy of the saved MLP that a test may damage."""
    path = tmp_path / "copy.mlc"
    path.write_bytes(open(mlp_file, "rb").read())
    return str(path)


def _outputs_equal(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"output {k} differs after load")


# ------------------------------------------------------------------------ round trips

@pytest.mark.parametrize("name,kwargs", ZOO_CASES, ids=[c[0] for c in ZOO_CASES])
def test_save_load_run_is_bit_exact(name, kwargs, tmp_path):
    mod = _compile_or_skip(name, **kwargs)
    feeds = zoo.example_inputs(name, **kwargs)
    ref = mod.run(feeds)
    path = tmp_path / f"{name}.mlc"
    assert mod.save(path) == str(path)
    loaded = mlc.load(path, num_threads=1)
    assert isinstance(loaded, CompiledModel)
    assert [(t.name, tuple(t.shape), t.dtype) for t in loaded.inputs] == \
        [(t.name, tuple(t.shape), t.dtype) for t in mod.inputs]
    assert [(t.name, tuple(t.shape), t.dtype) for t in loaded.outputs] == \
        [(t.name, tuple(t.shape), t.dtype) for t in mod.outputs]
    _outputs_equal(ref, loaded.run(feeds))
    # the kernel records, schedules included, survive
    assert [k.__dict__ for k in loaded.kernels] == [k.__dict__ for k in mod.kernels]
    assert loaded.stats == json.loads(json.dumps(mod.stats))
    loaded.close()


def test_load_num_threads_and_resave(mlp_model, mlp_file, tmp_path):
    feeds = zoo.example_inputs("mlp")
    m2 = mlc.load(mlp_file, num_threads=2)
    assert m2.num_threads == 2
    _outputs_equal(mlp_model.run(feeds), m2.run(feeds))
    # a loaded model saves again to an identical payload (only the timestamp may differ)
    again = tmp_path / "again.mlc"
    m2.save(again)
    a, b = open(mlp_file, "rb").read(), again.read_bytes()
    ma, mb = artifact.read_metadata(mlp_file), artifact.read_metadata(again)
    ma.pop("created"), mb.pop("created")
    assert ma == mb
    off = ma["sections"]["weights"]["offset"] + ma["sections"]["weights"]["size"]
    assert a[64:off] == b[64:off]


def test_compiled_model_from_a_loaded_executable(mlp_model, mlp_file):
    exe, meta = artifact.read(mlp_file)
    mod = CompiledModel(exe, num_threads=1)
    feeds = zoo.example_inputs("mlp")
    _outputs_equal(mlp_model.run(feeds), mod.run(feeds))
    assert exe.weights.ctypes.data % 64 == 0
    assert meta["format_version"] == artifact.FORMAT_VERSION
    assert meta["mlc_version"] == mlc.__version__
    assert meta["target"]["cpu"] == mlp_model.target.cpu
    assert meta["target"]["required_features"] == mlp_model.target.required_features()


def test_file_layout(mlp_file):
    data = open(mlp_file, "rb").read()
    assert data[:8] == artifact.MAGIC
    meta = artifact.read_metadata(mlp_file)
    for name in ("object", "weights"):
        sec = meta["sections"][name]
        assert sec["offset"] % 64 == 0 and sec["offset"] + sec["size"] <= len(data)
    assert data[meta["sections"]["object"]["offset"]:][:4] == b"\x7fELF"


def test_entry_name_agrees_with_codegen():
    from mlc.codegen.module import ENTRY
    from mlc.runtime import compiled_model
    assert compiled_model.ENTRY == ENTRY


def test_loading_runs_neither_frontend_nor_optimiser(mlp_file):
    """In a fresh interpreter, mlc.load imports no ONNX, no frontend, no code generator and,
    when the artifact carries its prelinked shared object, not even LLVM."""
    from mlc.runtime.library import find_c_compiler
    llvm = ", 'llvmlite'" if find_c_compiler() else ""
    code = ("import sys, mlc; m = mlc.load(sys.argv[1]); import numpy as np; "
            "m(*[np.zeros(t.shape, t.dtype) for t in m.inputs]); "
            "bad = [n for n in ('onnx', 'mlc.frontend', 'mlc.codegen.module', 'mlc.compiler.pipeline', "
            f"'mlc.kernels'{llvm}) if n in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code, mlp_file], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_crc32_combine():
    rng = np.random.default_rng(0)
    for n1, n2 in [(0, 5), (5, 0), (7, 13), (1000, 1 << 20), (3 << 20, 5 << 20)]:
        a, b = rng.bytes(n1), rng.bytes(n2)
        assert artifact.crc32_combine(zlib.crc32(a), zlib.crc32(b), n2) == zlib.crc32(a + b)


def test_resnet18_full_load_time(tmp_path):
    """The issue's bar: ResNet-18 loads in <= 0.3 s.  Measured and printed, not asserted."""
    mod = mlc.compile(zoo.build("resnet18"), num_threads=1)
    feeds = zoo.example_inputs("resnet18")
    ref = mod.run(feeds)
    path = tmp_path / "resnet18.mlc"
    mod.save(path)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        loaded = mlc.load(path, num_threads=1)
        times.append(time.perf_counter() - t0)
        loaded.close()
    loaded = mlc.load(path, num_threads=1)
    _outputs_equal(ref, loaded.run(feeds))
    print(f"\nResNet-18 artifact {os.path.getsize(path) / 1e6:.1f} MB: mlc.load took "
          f"{', '.join(f'{t * 1e3:.0f}' for t in times)} ms")


# ------------------------------------------------------------------------ targets

@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_other_isa_targets_save_and_load(target, tmp_path):
    model = zoo.build("mlp", sizes=(32, 16, 4), batch=2)
    feeds = zoo.example_inputs("mlp", sizes=(32, 16, 4), batch=2)
    mod = mlc.compile(model, target=target, num_threads=1)
    path = tmp_path / "m.mlc"
    mod.save(path)
    meta = artifact.read_metadata(path)
    assert meta["target"]["cpu"] == mod.target.cpu
    loaded = mlc.load(path)
    assert loaded.target.cpu == mod.target.cpu
    _outputs_equal(mod.run(feeds), loaded.run(feeds))


def test_missing_cpu_feature_is_a_target_error(mlp_copy):
    def add_fake(meta):
        meta["target"]["required_features"] += ["fakefeature", "avx1024"]
        return meta
    artifact.edit_metadata(mlp_copy, add_fake)
    with pytest.raises(TargetError) as err:
        mlc.load(mlp_copy)
    msg = str(err.value)
    assert "lacks: fakefeature, avx1024" in msg and mlp_copy in msg


def test_other_architecture_is_a_target_error(mlp_copy):
    def aarch64(meta):
        meta["target"]["triple"] = "aarch64-unknown-linux-gnu"
        return meta
    artifact.edit_metadata(mlp_copy, aarch64)
    with pytest.raises(TargetError, match="aarch64"):
        mlc.load(mlp_copy)


# ------------------------------------------------------------------------ bad files

def test_not_an_mlc_file(tmp_path):
    p = tmp_path / "junk.mlc"
    p.write_bytes(b"this is not a model at all, just some text" * 10)
    with pytest.raises(ArtifactError, match="not an mlc artifact"):
        mlc.load(p)
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(zoo.build("mlp", sizes=(4, 2)).SerializeToString())
    with pytest.raises(ArtifactError, match="ONNX"):
        mlc.load(onnx_path)
    empty = tmp_path / "empty.mlc"
    empty.write_bytes(b"")
    with pytest.raises(ArtifactError, match="empty"):
        mlc.load(empty)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ArtifactError, match="no such file"):
        mlc.load(tmp_path / "nope.mlc")
    with pytest.raises(ArtifactError, match="directory"):
        mlc.load(tmp_path)


@pytest.mark.parametrize("keep", [4, 40, 64, 1000, -100, -1])
def test_truncated_file(mlp_copy, keep):
    data = open(mlp_copy, "rb").read()
    cut = data[:keep] if keep > 0 else data[:len(data) + keep]
    with open(mlp_copy, "wb") as f:
        f.write(cut)
    with pytest.raises(ArtifactError, match="truncated"):
        mlc.load(mlp_copy)


def test_extra_bytes_after_the_end(mlp_copy):
    with open(mlp_copy, "ab") as f:
        f.write(b"\0" * 10)
    with pytest.raises(ArtifactError, match="corrupted"):
        mlc.load(mlp_copy)


@pytest.mark.parametrize("where", ["header", "object", "weights", "weights_end", "metadata"])
def test_corrupted_byte_anywhere(mlp_copy, where):
    meta = artifact.read_metadata(mlp_copy)
    data = bytearray(open(mlp_copy, "rb").read())
    obj, w = meta["sections"]["object"], meta["sections"]["weights"]
    pos = {"header": 20, "object": obj["offset"] + obj["size"] // 2,
           "weights": w["offset"] + w["size"] // 3,
           "weights_end": w["offset"] + w["size"] - 1,
           "metadata": len(data) - 10}[where]
    data[pos] ^= 0x40
    with open(mlp_copy, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(ArtifactError, match="corrupted"):
        mlc.load(mlp_copy)


def _rewrite_header_version(path: str, version: int):
    data = bytearray(open(path, "rb").read())
    struct.pack_into("<I", data, 8, version)
    struct.pack_into("<I", data, 44, zlib.crc32(bytes(data[:44])))
    with open(path, "wb") as f:
        f.write(bytes(data))


def test_incompatible_format_version(mlp_copy):
    _rewrite_header_version(mlp_copy, artifact.FORMAT_VERSION + 1)
    with pytest.raises(ArtifactError, match=f"format version {artifact.FORMAT_VERSION + 1}"):
        mlc.load(mlp_copy)


def test_incompatible_mlc_version(mlp_copy):
    def old(meta):
        meta["mlc_version"] = "0.0.7"
        return meta
    artifact.edit_metadata(mlp_copy, old)
    with pytest.raises(ArtifactError, match="written by mlc 0.0.7"):
        mlc.load(mlp_copy)


def test_compatible_patch_version_loads(mlp_copy):
    major, minor = mlc.__version__.split(".")[:2]

    def patch(meta):
        meta["mlc_version"] = f"{major}.{minor}.99"
        return meta
    artifact.edit_metadata(mlp_copy, patch)
    assert mlc.load(mlp_copy).output_names == ["logits"]


@pytest.mark.parametrize("damage", ["section_out_of_range", "missing_key", "bad_copy_outputs"])
def test_malformed_metadata(mlp_copy, damage):
    def edit(meta):
        if damage == "section_out_of_range":
            meta["sections"]["weights"]["size"] = 10 ** 12
        elif damage == "missing_key":
            del meta["outputs"]
        else:
            meta["copy_outputs"] = [["x"]]
        return meta
    artifact.edit_metadata(mlp_copy, edit)
    with pytest.raises(ArtifactError, match="corrupted"):
        mlc.load(mlp_copy)


def test_save_to_a_missing_directory(mlp_model, tmp_path):
    with pytest.raises(ArtifactError, match="cannot write"):
        mlp_model.save(tmp_path / "no" / "such" / "dir" / "m.mlc")
    assert not list(tmp_path.iterdir())


def test_copy_outputs_survive_a_round_trip(tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
            for n, s in [("y", [2, 3]), ("xc", [2, 3]), ("c", [4])]]
    c = numpy_helper.from_array(np.arange(4, dtype=np.float32), "cval")
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Identity", ["x"], ["xc"]),
             helper.make_node("Identity", ["cval"], ["c"])]
    model = helper.make_model(helper.make_graph(nodes, "copies", [x], outs, [c]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    mod = mlc.compile(model, num_threads=1)
    assert mod.executable.copy_outputs
    path = tmp_path / "copies.mlc"
    mod.save(path)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)}
    _outputs_equal(mod.run(feeds), mlc.load(path).run(feeds))
