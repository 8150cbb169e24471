"""mod.export_library(path): a shared library with a C ABI and its generated header.

A small C program built with the system compiler against the library runs the model on
inputs from a file; its outputs are checked against onnxruntime.  The library is also
driven through ctypes: introspection, errors, thread counts, copy outputs, and two
libraries loaded in one process.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import textwrap

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc
from mlc import zoo
from mlc.errors import MlcError
from mlc.runtime.library import ToolchainError, find_c_compiler

from conftest import ort_run

CC = find_c_compiler()
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc/clang) installed: "
                                                 "export_library cannot link")


def copy_model():
    """Outputs that are copies: of an input, of another output (via a view), of a constant."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
            for n, s in [("y", [2, 3]), ("xc", [2, 3]), ("yr", [3, 2]), ("c", [4]), ("y2", [2, 3])]]
    c = numpy_helper.from_array(np.arange(4, dtype=np.float32), "cval")
    shp = numpy_helper.from_array(np.array([3, 2], dtype=np.int64), "shp")
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("Identity", ["x"], ["xc"]),
             helper.make_node("Reshape", ["y", "shp"], ["yr"]),
             helper.make_node("Identity", ["cval"], ["c"]),
             helper.make_node("Identity", ["y"], ["y2"])]
    graph = helper.make_graph(nodes, "copies", [x], outs, [c, shp])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


class Lib:
    """ctypes view of an exported library's C ABI."""

    def __init__(self, path: str, prefix: str = "mlc_model"):
        self.lib = ctypes.CDLL(os.path.abspath(path))
        self.p = prefix
        vp, i32, i64, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_char_p
        sig = {"create": (vp, []), "run": (i32, [vp, vp, vp]), "destroy": (None, [vp]),
               "set_num_threads": (i32, [vp, i32]), "get_num_threads": (i32, [vp]),
               "num_inputs": (i32, []), "num_outputs": (i32, []), "last_error": (cp, []),
               "target": (cp, [])}
        for kind in ("input", "output"):
            sig.update({f"{kind}_name": (cp, [i32]), f"{kind}_dtype": (cp, [i32]),
                        f"{kind}_ndim": (i32, [i32]), f"{kind}_shape": (ctypes.POINTER(i64), [i32]),
                        f"{kind}_nbytes": (i64, [i32])})
        for name, (res, args) in sig.items():
            fn = getattr(self.lib, f"{prefix}_{name}")
            fn.restype, fn.argtypes = res, args
            setattr(self, name, fn)

    def tensors(self, kind: str) -> list:
        n = self.num_inputs() if kind == "input" else self.num_outputs()
        out = []
        for i in range(n):
            ndim = getattr(self, f"{kind}_ndim")(i)
            shape = getattr(self, f"{kind}_shape")(i)
            out.append((getattr(self, f"{kind}_name")(i).decode(), tuple(shape[k] for k in range(ndim)),
                        getattr(self, f"{kind}_dtype")(i).decode(), getattr(self, f"{kind}_nbytes")(i)))
        return out

    def infer(self, handle, arrays: list) -> list:
        """Run through the C ABI; returns the outputs."""
        outs = [np.empty(shape, dtype=dtype) for _, shape, dtype, _ in self.tensors("output")]
        ins = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
        ptrs = (ctypes.c_void_p * max(1, len(outs)))(*[o.ctypes.data for o in outs])
        rc = self.run(handle, ins, ptrs)
        assert rc == 0, self.last_error()
        return outs


@pytest.fixture(scope="module")
def mlp_lib(tmp_path_factory):
    if CC is None:
        pytest.skip("no C compiler installed")
    d = tmp_path_factory.mktemp("mlp_lib")
    model = zoo.build("mlp")
    mod = mlc.compile(model, num_threads=1)
    path = str(d / "libmlp.so")
    assert mod.export_library(path) == path
    return model, mod, path


@pytest.fixture(scope="module")
def copy_lib(tmp_path_factory):
    if CC is None:
        pytest.skip("no C compiler installed")
    d = tmp_path_factory.mktemp("copy_lib")
    model = copy_model()
    mod = mlc.compile(model, num_threads=1)
    assert mod.executable.copy_outputs, "the test model should have copied outputs"
    path = str(d / "libcopies.so")
    mod.export_library(path, header=str(d / "copies_api.h"))
    return model, mod, path


C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "HEADER"

/* usage: app inputs.bin outputs.bin -- inputs back to back in order, outputs likewise */
int main(int argc, char** argv) {
    if (argc != 3) return 64;
    mlc_model* m = mlc_model_create();
    if (!m) { fprintf(stderr, "create: %s\n", mlc_model_last_error()); return 2; }
    printf("threads %d\n", mlc_model_get_num_threads(m));
    int nin = mlc_model_num_inputs(), nout = mlc_model_num_outputs();
    const void** ins = calloc(nin > 0 ? nin : 1, sizeof(void*));
    void** outs = calloc(nout > 0 ? nout : 1, sizeof(void*));
    FILE* f = fopen(argv[1], "rb");
    if (!f) return 3;
    for (int i = 0; i < nin; ++i) {
        int64_t n = mlc_model_input_nbytes(i);
        void* buf = aligned_alloc(64, (size_t)((n + 63) / 64 * 64));
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) return 4;
        ins[i] = buf;
        printf("input %d %s %s", i, mlc_model_input_name(i), mlc_model_input_dtype(i));
        for (int k = 0; k < mlc_model_input_ndim(i); ++k) printf(" %lld", (long long)mlc_model_input_shape(i)[k]);
        printf("\n");
    }
    fclose(f);
    for (int j = 0; j < nout; ++j) {
        outs[j] = malloc((size_t)mlc_model_output_nbytes(j));
        printf("output %d %s %s %d\n", j, mlc_model_output_name(j), mlc_model_output_dtype(j),
               mlc_model_output_ndim(j));
    }
    if (mlc_model_run(m, ins, (void* const*)outs) != 0) return 5;
    if (mlc_model_set_num_threads(m, 1) != 0 || mlc_model_get_num_threads(m) != 1) return 6;
    if (mlc_model_run(m, ins, (void* const*)outs) != 0) return 7;   /* again, 1 thread */
    if (mlc_model_run(NULL, ins, (void* const*)outs) != -1 || !mlc_model_last_error()) return 8;
    if (mlc_model_input_name(nin) != NULL || mlc_model_output_ndim(-1) != -1) return 9;
    FILE* g = fopen(argv[2], "wb");
    for (int j = 0; j < nout; ++j) fwrite(outs[j], 1, (size_t)mlc_model_output_nbytes(j), g);
    fclose(g);
    mlc_model_destroy(m);
    printf("ok %s\n", mlc_model_target());
    return 0;
}
"""


def _build_and_run_c(lib_path: str, header: str, model, feeds: dict, tmp_path, env_threads=None):
    src = tmp_path / "app.c"
    src.write_text(C_PROGRAM.replace("HEADER", os.path.basename(header)))
    exe = tmp_path / "app"
    lib_dir = os.path.dirname(os.path.abspath(lib_path))
    build = subprocess.run([CC, "-std=c11", "-Wall", "-Werror", "-O1", "-I", os.path.dirname(header),
                            str(src), "-o", str(exe), os.path.abspath(lib_path), f"-Wl,-rpath,{lib_dir}"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    names = [i.name for i in model.graph.input]
    (tmp_path / "in.bin").write_bytes(b"".join(np.ascontiguousarray(feeds[n]).tobytes() for n in names))
    env = dict(os.environ)
    env.pop("MLC_NUM_THREADS", None)
    if env_threads is not None:
        env["MLC_NUM_THREADS"] = str(env_threads)
    run = subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stdout}\n{run.stderr}"
    return run.stdout, (tmp_path / "out.bin").read_bytes()


def _split_outputs(raw: bytes, mod) -> list:
    outs, pos = [], 0
    for t in mod.outputs:
        dt = np.dtype(t.dtype)
        n = int(np.prod(t.shape, dtype=np.int64)) * dt.itemsize
        outs.append(np.frombuffer(raw[pos:pos + n], dtype=dt).reshape(t.shape))
        pos += n
    assert pos == len(raw)
    return outs


# ------------------------------------------------------------------------ the C program

@needs_cc
def test_c_program_matches_onnxruntime(mlp_lib, tmp_path):
    model, mod, path = mlp_lib
    header = path[:-3] + ".h"
    assert os.path.exists(header)
    feeds = zoo.example_inputs("mlp")
    stdout, raw = _build_and_run_c(path, header, model, feeds, tmp_path, env_threads=3)
    assert "threads 3" in stdout                       # $MLC_NUM_THREADS honoured
    assert "input 0 x float32 1 784" in stdout and "ok " + mod.target.cpu in stdout
    got = _split_outputs(raw, mod)
    for g, r in zip(got, ort_run(model, feeds)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
    # the same machine code and weights as the in-process model (which ran 1 thread too)
    np.testing.assert_array_equal(got[0], mod.run(feeds)["logits"])


@needs_cc
def test_c_program_copy_outputs(copy_lib, tmp_path):
    model, mod, path = copy_lib
    header = os.path.join(os.path.dirname(path), "copies_api.h")
    feeds = {"x": np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)}
    stdout, raw = _build_and_run_c(path, header, model, feeds, tmp_path)
    for g, r in zip(_split_outputs(raw, mod), ort_run(model, feeds)):
        np.testing.assert_array_equal(g, r)


@needs_cc
def test_resnet_small_c_program(tmp_path):
    model = zoo.build("resnet18", image=64)
    feeds = zoo.example_inputs("resnet18", image=64)
    mod = mlc.compile(model, num_threads=1)
    path = str(tmp_path / "libresnet.so")
    mod.export_library(path)
    stdout, raw = _build_and_run_c(path, str(tmp_path / "libresnet.h"), model, feeds, tmp_path)
    got = _split_outputs(raw, mod)
    np.testing.assert_allclose(got[0], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------ ctypes

@needs_cc
def test_ctypes_introspection_and_run(mlp_lib):
    model, mod, path = mlp_lib
    lib = Lib(path)
    assert lib.tensors("input") == [("x", (1, 784), "float32", 784 * 4)]
    assert lib.tensors("output") == [("logits", (1, 10), "float32", 40)]
    assert lib.input_name(1) is None and lib.input_ndim(-1) == -1 and lib.output_nbytes(5) == -1
    assert lib.target().decode().startswith(mod.target.cpu + ":")
    h = lib.create()
    assert h
    assert lib.set_num_threads(h, 2) == 0 and lib.get_num_threads(h) == 2
    assert lib.set_num_threads(h, 0) == -1
    feeds = zoo.example_inputs("mlp")
    out = lib.infer(h, [feeds["x"]])
    np.testing.assert_allclose(out[0], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-5)
    assert lib.run(None, None, None) == -1
    assert b"null" in lib.last_error()
    lib.destroy(h)
    lib.destroy(None)                                  # ignored


@needs_cc
def test_only_the_c_api_is_exported(mlp_lib):
    _, _, path = mlp_lib
    lib = ctypes.CDLL(os.path.abspath(path))
    for internal in ("mlc_run", "mlc_run_profiled", "mlc_parallel_for", "mlc_set_num_threads",
                     "mlc_shutdown", "mlc_weights"):
        with pytest.raises(AttributeError):
            getattr(lib, internal)
    nm = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True) \
        if _which("nm") else None
    if nm is not None and nm.returncode == 0:
        names = [line.split()[-1] for line in nm.stdout.splitlines() if line.strip()]
        assert names and all(n.startswith("mlc_model_") for n in names), names


@needs_cc
def test_two_libraries_in_one_process(mlp_lib, copy_lib):
    (m1, _, p1), (m2, _, p2) = mlp_lib, copy_lib
    a, b = Lib(p1), Lib(p2)
    ha, hb = a.create(), b.create()
    f1 = zoo.example_inputs("mlp")
    f2 = {"x": np.random.default_rng(5).standard_normal((2, 3)).astype(np.float32)}
    for _ in range(3):
        oa = a.infer(ha, [f1["x"]])
        ob = b.infer(hb, [f2["x"]])
    np.testing.assert_allclose(oa[0], ort_run(m1, f1)[0], rtol=1e-4, atol=1e-5)
    for g, r in zip(ob, ort_run(m2, f2)):
        np.testing.assert_array_equal(g, r)
    a.destroy(ha)
    b.destroy(hb)


@needs_cc
def test_prefix_names_the_api(tmp_path):
    model = zoo.build("mlp", sizes=(8, 4), batch=2)
    mod = mlc.compile(model, num_threads=1)
    path = str(tmp_path / "libtiny.so")
    mod.export_library(path, prefix="tiny")
    text = open(str(tmp_path / "libtiny.h")).read()
    assert "tiny* tiny_create(void);" in text and "mlc_model_create" not in text
    lib = Lib(path, prefix="tiny")
    h = lib.create()
    feeds = zoo.example_inputs("mlp", sizes=(8, 4), batch=2)
    np.testing.assert_allclose(lib.infer(h, [feeds["x"]])[0], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-5)
    lib.destroy(h)
    with pytest.raises(MlcError, match="C identifier"):
        mod.export_library(str(tmp_path / "bad.so"), prefix="9-bad")


@needs_cc
def test_header_compiles_as_cxx_and_c(mlp_lib, tmp_path):
    _, _, path = mlp_lib
    header = path[:-3] + ".h"
    src = tmp_path / "h.c"
    src.write_text(textwrap.dedent(f"""
        #include "{header}"
        #include "{header}"
        int main(void) {{ return MLC_MODEL_NUM_INPUTS == 1 && MLC_MODEL_OUTPUT0_NBYTES == 40 ? 0 : 1; }}
    """))
    out = subprocess.run([CC, "-std=c99", "-Wall", "-Werror", "-pedantic", str(src), "-o", str(tmp_path / "h")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert subprocess.run([str(tmp_path / "h")]).returncode == 0
    import shutil
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx:
        cpp = tmp_path / "h.cpp"
        cpp.write_text(src.read_text() + "\nextern \"C\" int probe(void) { return mlc_model_num_inputs(); }\n")
        out = subprocess.run([cxx, "-Wall", "-Werror", "-c", str(cpp), "-o", str(tmp_path / "h.o")],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def test_no_c_compiler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/bin/cc-missing")
    mod = mlc.compile(zoo.build("mlp", sizes=(8, 4)), num_threads=1)
    with pytest.raises(ToolchainError, match="C compiler"):
        mod.export_library(str(tmp_path / "x.so"))
    assert not os.path.exists(tmp_path / "x.so")


def _which(name: str) -> bool:
    import shutil
    return shutil.which(name) is not None


@needs_cc
def test_create_refuses_a_cpu_without_a_required_feature(tmp_path, monkeypatch):
    """The library's own CPU check: here a pretend feature read from a reserved cpuid bit
    (leaf 1 EDX bit 10, always 0) stands in for a missing ISA extension."""
    from mlc.codegen import c_api
    monkeypatch.setitem(c_api.CPUID_BITS, "fakefeature", (1, 0, "edx", 10))
    monkeypatch.setattr(c_api, "checked_features", lambda target: ["avx2", "fakefeature", "fma"])
    mod = mlc.compile(zoo.build("mlp", sizes=(8, 4)), num_threads=1)
    path = str(tmp_path / "libfussy.so")
    mod.export_library(path)
    lib = Lib(path)
    assert not lib.create()
    msg = lib.last_error().decode()
    assert "lacks" in msg and "fakefeature" in msg and "avx2" not in msg.split("missing:")[1]
