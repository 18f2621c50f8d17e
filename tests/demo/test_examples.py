"""The playground's starting choices: checkpoints and prompts that fit each other."""

from pathlib import Path

from demo.examples import compare_default, prompt_sets
from demo.registry import CheckpointInfo


def info(name: str, dataset: str, step: int) -> CheckpointInfo:
    return CheckpointInfo(name, Path(name), {"dataset": {"name": dataset}, "step": step})


def test_compare_starts_on_two_checkpoints_of_one_dataset_with_that_datasets_prompts():
    found = {c.name: c for c in (info("emoji-32", "emoji", 9000), info("shapes-32", "shapes", 8000),
                                 info("shapes-32-early", "shapes", 2000))}
    picked, prompts = compare_default(found)
    assert picked == ["shapes-32", "shapes-32-early"]  # the most trained first
    assert prompts.splitlines() == ["a large red circle at the top left", "a black triangle above a green circle",
                                    "two green triangles", "a green square right of a red circle"]


def test_compare_default_follows_the_dataset_that_has_two_checkpoints():
    found = {c.name: c for c in (info("emoji-32", "emoji", 9000), info("emoji-32-early", "emoji", 100),
                                 info("shapes-32", "shapes", 8000))}
    picked, prompts = compare_default(found)
    assert picked == ["emoji-32", "emoji-32-early"]
    assert "red heart" in prompts.splitlines()
    assert compare_default({}) == ([], "")


def test_compare_default_makes_up_a_pair_when_no_dataset_has_two():
    found = {c.name: c for c in (info("emoji-32", "emoji", 9000), info("shapes-32", "shapes", 8000))}
    picked, prompts = compare_default(found)
    assert picked == ["shapes-32", "emoji-32"]  # shapes on the tie, then the most trained other
    assert prompts.splitlines()[0] == "a large red circle at the top left"
    assert compare_default({"emoji-32": found["emoji-32"]}) == (["emoji-32"], "red heart\ngrinning face, google style")


def test_prompt_sets_offer_each_picked_datasets_curated_prompts():
    found = {c.name: c for c in (info("emoji-32", "emoji", 9000), info("shapes-32", "shapes", 8000),
                                 info("shapes-32-early", "shapes", 2000))}
    assert [label for label, _ in prompt_sets(found, ["shapes-32", "shapes-32-early"])] == [
        "Shapes: position, size, count", "Shapes: relations"]
    sets = prompt_sets(found, ["emoji-32", "shapes-32"])
    assert [label for label, _ in sets] == ["Emoji: styles", "Emoji: objects", "Shapes: position, size, count",
                                            "Shapes: relations"]
    assert sets[0][1] == "red heart\ngrinning face, google style\nthumbs up, twitter style\nred apple, fluent style"
    assert prompt_sets(found, ["gone"]) == []


def test_the_sharpest_checkpoint_draws_the_examples_and_a_dataset_with_compare_prompts_is_compared():
    def sized(name: str, dataset: str, step: int, resolution: int) -> CheckpointInfo:
        return CheckpointInfo(name, Path(name), {"dataset": {"name": dataset}, "step": step,
                                                 "model": {"resolution": resolution}})

    found = {c.name: c for c in (sized("emoji-32", "emoji", 13898, 32), sized("emoji-64", "emoji", 9440, 64),
                                 sized("emoji-64-early", "emoji", 2898, 64), sized("shapes-32", "shapes", 8000, 32),
                                 sized("shapes-32-early", "shapes", 2000, 32))}
    from demo.examples import curated
    rows, labels = curated(found)
    assert [row[4] for row, label in zip(rows, labels) if label.startswith("Emoji")] == ["emoji-64", "emoji-64"]
    assert compare_default(found)[0] == ["shapes-32", "shapes-32-early"]  # three emoji, but shapes has its prompts
    del found["shapes-32-early"]
    assert compare_default(found)[0] == ["emoji-64", "emoji-64-early"]  # the sharpest two, not the most trained
