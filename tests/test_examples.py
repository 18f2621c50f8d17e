"""The playground's starting choices: checkpoints and prompts that fit each other."""

from pathlib import Path

from demo.examples import compare_default
from demo.registry import CheckpointInfo


def info(name: str, dataset: str, step: int) -> CheckpointInfo:
    return CheckpointInfo(name, Path(name), {"dataset": {"name": dataset}, "step": step})


def test_compare_starts_on_two_checkpoints_of_one_dataset_with_that_datasets_prompts():
    found = {c.name: c for c in (info("emoji-32", "emoji", 9000), info("shapes-32", "shapes", 8000),
                                 info("shapes-32-early", "shapes", 2000))}
    picked, prompts = compare_default(found)
    assert picked == ["shapes-32", "shapes-32-early"]  # the most trained first
    assert prompts.splitlines() == ["a large red circle at the top left", "a small blue square in the center"]


def test_compare_default_follows_the_dataset_that_has_two_checkpoints():
    found = {c.name: c for c in (info("emoji-32", "emoji", 9000), info("emoji-32-early", "emoji", 100),
                                 info("shapes-32", "shapes", 8000))}
    picked, prompts = compare_default(found)
    assert picked == ["emoji-32", "emoji-32-early"]
    assert "red heart" in prompts.splitlines()
    assert compare_default({}) == ([], "")
