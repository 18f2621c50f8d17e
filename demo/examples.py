"""Curated examples for the Generate tab, each tied to the checkpoint that draws it best.

Prompts are captions (or close paraphrases) of the training worlds; each example reranks
16 candidates per prompt, so the shown images are the discriminator's favourites.
An example is offered only when a checkpoint trained on its dataset is available; the
sharpest such checkpoint (highest resolution), then the most trained (highest step), is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import CheckpointInfo


@dataclass(frozen=True)
class Example:
    dataset: str  # matched against config.json's dataset name
    label: str
    prompts: tuple[str, ...]
    seed: int = 0
    truncation: float = 0.7
    num_images: int = 4
    best_of: int = 16


EXAMPLES: tuple[Example, ...] = (
    Example("shapes", "Shapes: position, size, count",
            ("a large red circle at the top left", "a small blue square in the center", "two green triangles")),
    Example("shapes", "Shapes: relations",
            ("a yellow circle left of a blue square", "a black triangle above a green circle",
             "three red squares"), seed=7, truncation=0.6),
    Example("emoji", "Emoji: styles",
            ("red heart", "grinning face, google style", "thumbs up, twitter style", "red apple, fluent style")),
    Example("emoji", "Emoji: objects",
            ("fire", "red apple", "rocket", "smiling face with sunglasses"), seed=11, truncation=0.6),
)


def _rank(c: CheckpointInfo) -> tuple:
    """Sort key, best first: the highest resolution, then the most trained, then the name."""
    return -c.resolution, -c.step, c.name


def best_checkpoint(found: dict[str, CheckpointInfo], dataset: str) -> str | None:
    """The best checkpoint (`_rank`) whose dataset name matches."""
    matches = [c for c in found.values() if c.dataset.lower() == dataset]
    if not matches:
        return None
    return min(matches, key=_rank).name


def default_checkpoint(found: dict[str, CheckpointInfo]) -> str | None:
    """What the pickers start on: the best shapes checkpoint (the default prompts are shapes), else the first."""
    return best_checkpoint(found, "shapes") or next(iter(found), None)


# What the Compare tab starts on for a dataset: prompts of the kinds the checkpoints differ on. For
# shapes, a placed single (which even a 15-minute run draws right), a relation, a count and a
# right-of pair: at seeds 0-3, ψ 0.7, the common judge gives shapes-32 0.875 of 16 images (95% interval
# 0.64-0.97) and shapes-32-early 0.250 (0.10-0.49); at seeds 4, 8, 12, 100 and 12345 too, shapes-32
# scored 0.69-0.94 and shapes-32-early 0.25-0.31. The first curated prompts alone (two placed singles)
# gave shapes-32-early 1.000 and shapes-32 0.875 on 8 images, which tells them apart not at all.
COMPARE_PROMPTS = {"shapes": ("a large red circle at the top left", "a black triangle above a green circle",
                              "two green triangles", "a green square right of a red circle")}


def compare_default(found: dict[str, CheckpointInfo]) -> tuple[list[str], str]:
    """(checkpoints, prompts) the Compare tab starts on: the best two checkpoints (`_rank`) of one dataset (among
    the datasets with two or more, one with compare prompts, then the one with the most checkpoints) and that
    dataset's compare prompts (`COMPARE_PROMPTS`, else its first curated prompts). When no dataset has two, the
    best other checkpoint makes up the pair."""
    by_dataset: dict[str, list[CheckpointInfo]] = {}
    for c in found.values():
        by_dataset.setdefault(c.dataset.lower(), []).append(c)
    if not by_dataset:
        return [], ""
    dataset = max(by_dataset, key=lambda d: (len(by_dataset[d]) > 1, d in COMPARE_PROMPTS, len(by_dataset[d])))
    picked = [c.name for c in sorted(by_dataset[dataset], key=_rank)[:2]]
    others = sorted((c for c in found.values() if c.name not in picked), key=_rank)
    picked += [c.name for c in others[:2 - len(picked)]]
    prompts = COMPARE_PROMPTS.get(dataset) or next((ex.prompts[:2] for ex in EXAMPLES if ex.dataset == dataset), ())
    return picked, "\n".join(prompts)


def curated(found: dict[str, CheckpointInfo]) -> tuple[list[list], list[str]]:
    """(rows for gr.Examples: [prompts, seed, ψ, images, checkpoint, best of], labels)."""
    rows, labels = [], []
    for ex in EXAMPLES:
        name = best_checkpoint(found, ex.dataset)
        if name is None:
            continue
        rows.append(["\n".join(ex.prompts), ex.seed, ex.truncation, ex.num_images, name, ex.best_of])
        labels.append(f"{ex.label} · {name}")
    return rows, labels


def prompt_sets(found: dict[str, CheckpointInfo], picked: list[str]) -> list[tuple[str, str]]:
    """(label, prompts one per line) of the curated examples of each dataset among the picked
    checkpoints: the datasets in the order first picked, each dataset once."""
    datasets = list(dict.fromkeys(found[n].dataset.lower() for n in picked if n in found))
    return [(ex.label, "\n".join(ex.prompts)) for d in datasets for ex in EXAMPLES if ex.dataset == d]

