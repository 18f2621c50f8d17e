"""Shipped metrics.json files record the hash of the evaluation and generation code they were measured with."""

import shutil
from pathlib import Path

import pytest

from dalle.evaluation.code_version import PACKAGE, code_files, code_hash
from dalle.evaluation.metrics_io import read_metrics

SHIPPED_METRICS = sorted((Path(__file__).resolve().parents[2] / "checkpoints").glob("*/metrics.json"))


def test_code_files_are_what_evaluation_and_generation_import():
    names = {f.relative_to(PACKAGE.parent).as_posix() for f in code_files()}
    for needed in ("dalle/pipeline.py", "dalle/models/generator.py", "dalle/models/discriminator.py", "dalle/text_encoder.py",
                   "dalle/shapes/world.py", "dalle/evaluation/evaluate.py", "dalle/shapes/checker.py",
                   "dalle/evaluation/stats.py", "dalle/evaluation/evaluator.py", "dalle/__init__.py"):
        assert needed in names
    for unrelated in ("dalle/training/trainer.py", "dalle/cli.py", "dalle/evaluation/ablation.py", "dalle/evaluation/model_card.py"):
        assert unrelated not in names


def test_hash_follows_the_code(tmp_path):
    copy = tmp_path / "dalle"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_hash(copy) == code_hash()
    (copy / "training" / "trainer.py").write_text("# training is not evaluation\n", encoding="utf-8")
    assert code_hash(copy) == code_hash()
    gen = copy / "models" / "generator.py"
    gen.write_text(gen.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert code_hash(copy) != code_hash()


@pytest.mark.skipif(not SHIPPED_METRICS, reason="no shipped checkpoints in this checkout")
@pytest.mark.parametrize("path", SHIPPED_METRICS, ids=lambda p: p.parent.name)
def test_shipped_metrics_were_measured_with_this_code(path):
    recorded = (read_metrics(path).get("run", {}).get("code") or {}).get("sha256")
    assert recorded == code_hash(), (f"{path} was measured with other evaluation/generation code "
                                     f"(recorded {recorded}); run scripts/regenerate.sh")
