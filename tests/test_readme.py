"""Every command the README shows is run here, in a scratch directory with a small model.

Python blocks run in order in one namespace; shell lines starting with ``mlc`` run as
commands; ``make`` lines are checked with a dry run (they would recurse into this suite);
the C snippet is compiled against a library exported by the README's own Python block.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mlc import zoo
from mlc.tuning.records import read_records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def blocks(lang: str) -> list:
    text = open(README).read()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    model = zoo.build("resnet18", image=64)
    (d / "model.onnx").write_bytes(model.SerializeToString())
    np.savez(d / "feeds.npz", **zoo.example_inputs("resnet18", image=64))
    (d / "tuning_logs").mkdir()
    return d


def test_readme_shows_the_two_commands_first():
    sh = blocks("sh")
    assert sh and "make run" in sh[0] and "make test" in sh[0]


def test_make_targets_exist():
    for target in ("run", "test"):
        out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "pip install" in out.stdout or "mlc-installed" in out.stdout or "pytest" in out.stdout \
            or "mlc.demo" in out.stdout


def test_python_blocks_run(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("MLC_TUNING_LOGS", "none")
    ns: dict = {}
    for code in blocks("python"):
        exec(compile(code, "README.md", "exec"), ns)
    assert (workdir / "model.mlc").exists() and (workdir / "model.so").exists()
    assert (workdir / "tuning_logs" / "model.jsonl").exists()
    assert 0 < len(read_records(str(workdir / "tuning_logs" / "model.best.jsonl"))) <= len(
        read_records(str(workdir / "tuning_logs" / "model.jsonl")))


def test_shell_commands_run(workdir):
    env = dict(os.environ, MLC_TUNING_LOGS="none")
    mlc_cmd = [sys.executable, "-m", "mlc.cli.main"]
    ran = 0
    for block in blocks("sh"):
        for line in block.splitlines():
            cmd = line.split("#")[0].strip()
            if not cmd.startswith("mlc "):
                continue
            out = subprocess.run(mlc_cmd + cmd.split()[1:], cwd=workdir, env=env, capture_output=True,
                                 text=True, timeout=600)
            assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
            ran += 1
    assert ran >= 6


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler installed")
def test_c_snippet_compiles_and_runs(workdir):
    if not (workdir / "model.so").exists():
        pytest.skip("the Python blocks did not run first")
    snippet = blocks("c")[0]
    body = "\n".join(l for l in snippet.splitlines() if not l.startswith("#include"))
    program = f"""#include <stdlib.h>
#include <stdio.h>
#include "model.h"
int main(void) {{
    const void* inputs[1] = {{calloc(1, MLC_MODEL_INPUT0_NBYTES)}};
    void* outputs[1] = {{malloc(MLC_MODEL_OUTPUT0_NBYTES)}};
{body}
    printf("ok\\n");
    return 0;
}}
"""
    (workdir / "main.c").write_text(program)
    subprocess.run(["cc", "main.c", "-o", "main", "-L.", "-l:model.so", "-Wl,-rpath,$ORIGIN"],
                   cwd=workdir, check=True)
    out = subprocess.run(["./main"], cwd=workdir, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
