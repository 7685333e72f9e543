"""Slow tier: the real-model distillation path on stand-ins of the hub teachers' real shapes (12 x 768, output
vocabularies 50,000 / 37,788, random weights, WordPiece tokenizers trained on the smoke corpus), distilled on
the CPU for two steps through `rokd.distill.distill(profile="paper")`; shapes, coverage, memory and step time
are printed. The full measurement is `python benchmarks/standin_real_shapes.py --save`."""

import importlib.util
import math

import pytest

from rokd.paths import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _benchmark():
    path = REPO_ROOT / "benchmarks" / "standin_real_shapes.py"
    spec = importlib.util.spec_from_file_location("standin_real_shapes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_shapes_distil_on_cpu(tmp_path):
    from rokd.models.teachers import corpus_files

    bench = _benchmark()
    record = bench.run(tmp_path, corpus_files("smoke")[0], batch_sizes=[2], steps=2, max_length=128)
    for key, vocab in (("bert-base-ro", 50000), ("robert-base", 37788)):
        s = record["shapes"][key]
        assert (s["layers"], s["hidden"], s["heads"], s["ffn"], s["vocab_size"]) == (12, 768, 12, 3072, vocab)
    run = record["runs"][0]
    assert run["teacher_layers_kept"] == [0, 2, 4, 7, 9, 11]
    assert 60e6 < run["student_params"] < 90e6 and all(p > 100e6 for p in run["teacher_params"].values())
    cov = run["coverage"]
    assert cov["masked_positions_label_mapped"] >= 0.5 and cov["case_folded"]
    assert all(math.isfinite(v) for v in run["final_losses"].values())
    assert run["s_per_step_median"] > 0 and run["peak_rss_mb"] > 1000
    print(
        f"\nstep {run['s_per_step_median']:.2f} s at batch 2, peak RSS {run['peak_rss_mb']:.0f} MB, "
        f"coverage {cov['masked_positions_covered']:.1%}, mapped mass {cov['mapped_probability_mass']:.1%}"
    )
