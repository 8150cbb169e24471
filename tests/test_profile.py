"""mod.profile(): per-kernel times measured natively by the mlc_run_profiled entry."""
from __future__ import annotations

import json

import numpy as np
import pytest

import mlc
from mlc import zoo
from mlc.errors import InputError


@pytest.fixture(scope="module")
def mlp():
    return mlc.compile(zoo.build("mlp"), num_threads=1)


@pytest.fixture(scope="module")
def resnet():
    return mlc.compile(zoo.build("resnet18", image=64), num_threads=1)


def test_profiled_entry_is_emitted():
    from mlc.codegen.module import PROFILED_ENTRY
    text = mlc.inspect(zoo.build("mlp", sizes=(8, 4)), stage="llvm")
    assert f"@{PROFILED_ENTRY}(" in text and "@mlc_run(" in text


def test_rows_cover_every_kernel(mlp):
    feeds = zoo.example_inputs("mlp")
    prof = mlp.profile(feeds, repeat=30)
    assert len(prof.rows) == len(mlp.kernels)
    assert sorted(r.index for r in prof.rows) == list(range(len(mlp.kernels)))
    assert [r.ms for r in prof.rows] == sorted((r.ms for r in prof.rows), reverse=True)
    for r in prof.rows:
        rec = mlp.kernels[r.index]
        assert (r.name, r.ops, r.out_shapes, r.flops) == (rec.name, rec.ops, rec.out_shapes, rec.flops)
        assert r.ms > 0
        assert r.gflops == pytest.approx(r.flops / (r.ms * 1e6))
        assert r.percent == pytest.approx(100 * r.ms / prof.total_ms)
    # every run is partitioned exactly into the kernels' intervals
    assert prof.samples_ns.shape == (30, len(mlp.kernels))
    np.testing.assert_array_equal(prof.samples_ns.sum(axis=1), prof.totals_ns)
    # the medians add up to the measured total (an MLP run is short enough that the
    # scheduler rarely interrupts it, even on a busy machine)
    assert abs(prof.coverage - 1.0) < 0.05, prof.table()
    assert sum(r.percent for r in prof.rows) == pytest.approx(100 * prof.coverage)
    assert np.isfinite(prof.overhead_ms) and prof.plain_ms > 0 and prof.profiled_ms > 0


def test_resnet_table_and_json(resnet, tmp_path):
    feeds = zoo.example_inputs("resnet18", image=64)
    prof = resnet.profile(feeds, repeat=10, warmup=2)
    text = prof.table()
    print("\n" + text)
    for word in ("kernel", "fused ops", "output shape", "time ms", "GFLOP/s", "%", "Conv+Relu",
                 "profiler overhead", "total"):
        assert word in text
    assert str(prof) == text
    assert len(prof.table(top=3).splitlines()) < len(text.splitlines())
    path = tmp_path / "prof.json"
    prof.to_json(path)
    data = json.loads(path.read_text())
    assert len(data["rows"]) == len(resnet.kernels)
    assert {"name", "ops", "out_shapes", "ms", "gflops", "percent"} <= set(data["rows"][0])
    for key in ("total_ms", "kernel_sum_ms", "plain_ms", "profiled_ms", "overhead_ms", "repeat"):
        assert key in data
    assert data["repeat"] == 10 and data["num_threads"] == 1
    np.testing.assert_array_equal(prof.samples_ns.sum(axis=1), prof.totals_ns)


def test_profile_does_not_change_results(resnet):
    feeds = zoo.example_inputs("resnet18", image=64)
    before = resnet.run(feeds)
    resnet.profile(feeds, repeat=2, warmup=0)
    after = resnet.run(feeds)
    np.testing.assert_array_equal(before["logits"], after["logits"])


def test_default_feeds_are_random_and_seeded(mlp):
    from mlc.runtime.profile import random_inputs
    prof = mlp.profile(repeat=3)
    assert len(prof.rows) == len(mlp.kernels)
    a, b = random_inputs(mlp.inputs), random_inputs(mlp.inputs)
    np.testing.assert_array_equal(a["x"], b["x"])
    assert a["x"].dtype == np.float32 and a["x"].shape == (1, 784)


def test_profile_a_loaded_artifact(mlp, tmp_path):
    mlp.save(tmp_path / "m.mlc")
    loaded = mlc.load(tmp_path / "m.mlc", num_threads=2)
    prof = loaded.profile(repeat=5)
    assert prof.num_threads == 2 and len(prof.rows) == len(mlp.kernels)


def test_bad_arguments(mlp):
    with pytest.raises(InputError, match="repeat"):
        mlp.profile(repeat=0)
    with pytest.raises(InputError, match="missing"):
        mlp.profile({"nope": np.zeros(3)})
    with pytest.raises(InputError, match="dtype"):
        mlp.profile({"x": np.zeros((1, 784))})
    with pytest.raises(InputError):
        mlp.profile([1, 2, 3])
