"""The one-command recipes for training a model from scratch: `python -m dalle train --preset NAME`.

A preset is a set of flag values; flags given on the command line win over it. Each recipe is
sized to finish in one sitting on a 2-core CPU with the two runs side by side (one core each).
Each choice was compared with its alternative at an equal budget (docs/recipe.md). A shipped
checkpoint's model card quotes the command that trained it, which may predate later choices.
"""

from __future__ import annotations

import dataclasses

from .config import ModelConfig, TrainConfig

# The recipe for captioned images people bring (`--data FOLDER` uses it unless another preset is named): 64 px,
# a generator and discriminator thin at high resolution (on a CPU thin convolutions are what buys images per
# second), translation augmentation. Nothing in it is specific to one dataset.
REAL_DATA: dict = {"resolution": 64, "channel_base": 1024, "d_channel_base": 512, "max_minutes": 60.0,
                   "threads": 1, "snapshot_minutes": [15.0], "augment": "translation", "lr_g": 1e-3, "lr_d": 1e-3}

PRESETS: dict[str, dict] = {
    "shapes": {"data": "shapes", "resolution": 32, "out": "runs/shapes-32", "max_minutes": 60.0, "threads": 1,
               "snapshot_minutes": [15.0], "augment": "", "channel_base": 1024, "lr_g": 1e-3, "lr_d": 1e-3,
               "normalize_text": True, "recon_loss": "l2", "warmup_kimg": 100.0, "lr_decay": 0.5,
               "hard_negatives": 0.5, "d_word_order": True, "g_word_order": True, "d_near_miss_weight": 1.0,
               "near_miss_weight": 1.0, "recon_open": 0.0, "seeded_layouts": True, "seeded_pairs": True,
               "pair_layout": "center", "recon_weight": 30.0},
    # two hours leaves the sitting time to evaluate the run and train its judge; the learning rates fall over the
    # second hour, and each image is reconstructed from the nearer of 2 prior draws, which keeps the seeds apart
    "emoji": {**REAL_DATA, "data": "emoji", "out": "runs/emoji-64", "max_minutes": 120.0, "snapshot_minutes": [40.0],
              "lr_decay": 0.5, "recon_candidates": 2},
    "folder": REAL_DATA,  # give --data PATH; the run folder is runs/<folder name>-64
    # the recipe `checkpoints/emoji-32` was trained with (then called `emoji`), kept so that it can be rebuilt
    "emoji-32": {"data": "emoji", "resolution": 32, "out": "runs/emoji-32", "max_minutes": 120.0, "threads": 1,
                 "snapshot_minutes": [20.0], "augment": "translation", "lr_g": 1e-3, "lr_d": 1e-3},
}
# Presets renamed since a shipped checkpoint recorded them: {recorded command's preset: (its resolution, today's
# name)}. A model card shows today's name, so that its command still rebuilds the checkpoint.
RENAMED: dict[str, tuple[int, str]] = {"emoji": (32, "emoji-32")}


def preset_command(name: str) -> str:
    """The command line that trains preset `name` from scratch."""
    return f"python -m dalle train --preset {name}"


def preset_configs(name: str, **overrides) -> tuple[ModelConfig, TrainConfig, dict]:
    """Preset `name` (with `overrides`) split into its model config, its training config and the dataset's
    own options (`dalle/datasets.py`), as `python -m dalle train --preset NAME` uses them."""
    values = {**PRESETS[name], **overrides}
    fields = lambda cls: {f.name for f in dataclasses.fields(cls)}  # noqa: E731
    model = ModelConfig(**{k: v for k, v in values.items() if k in fields(ModelConfig)})
    train = TrainConfig(**{k: v for k, v in values.items() if k in fields(TrainConfig)})
    options = {k: v for k, v in values.items() if k not in fields(ModelConfig) | fields(TrainConfig)}
    return model, train, options


def _field_defaults() -> dict[str, object]:
    """{field name: default} of every `train` flag that takes a value: the model and training configs and every
    dataset's own options."""
    from .datasets import option_fields

    def default(f: dataclasses.Field):
        return f.default_factory() if f.default is dataclasses.MISSING else f.default

    values = {f.name: default(f) for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)}
    values.update({name: default(f) for name, (_, f) in option_fields().items()})
    return values


def _same_value(texts: list[str], preset_value, default) -> bool:
    """Whether a flag's words on the command line give the preset's value, read with the field's type (booleans as
    the CLI reads them: 1/true/yes/on)."""
    try:
        if isinstance(default, bool):
            return len(texts) == 1 and (texts[0].lower() in ("1", "true", "yes", "on")) == preset_value
        if isinstance(default, (tuple, list)):
            return [float(t) for t in texts] == [float(v) for v in preset_value]
        return len(texts) == 1 and type(default)(texts[0]) == preset_value
    except (TypeError, ValueError):
        return False


def effective_command(recorded: str) -> tuple[str, list[str]]:
    """(the command to show, the recorded flags it leaves out) for a checkpoint's recorded training command.

    Where a flag after `--preset NAME` only repeats that preset's current value (field names with dashes, values
    compared with the field's type), the flag is left out: `python -m dalle train --preset shapes --seeded-pairs
    true` shows as `python -m dalle train --preset shapes`, with ["--seeded-pairs true"] left out. Flags that
    differ from the preset, or that it does not set, stay. A command without a known preset comes back as it is.
    """
    import shlex

    try:
        words = shlex.split(recorded)
    except ValueError:
        return recorded, []
    groups: list[list[str]] = []  # [flag, value words...]
    head: list[str] = []
    for word in words:
        if word.startswith("--"):
            groups.append(word.split("=", 1) if "=" in word else [word])
        elif groups:
            groups[-1].append(word)
        else:
            head.append(word)
    preset = next((g[1] for g in groups if g[0] == "--preset" and len(g) == 2), None)
    if preset not in PRESETS:
        return recorded, []
    values, defaults = PRESETS[preset], _field_defaults()
    kept, left_out = [], []
    for group in groups:
        name = group[0][2:].replace("-", "_")
        if name in values and name in defaults and _same_value(group[1:], values[name], defaults[name]):
            left_out.append(shlex.join(group))
        else:
            kept += group
    if not left_out:
        return recorded, []
    return shlex.join(head + kept), left_out


def renamed_command(recorded: str, resolution: int | None) -> str:
    """`recorded` with a preset that has been renamed since (`RENAMED`) spelt by today's name, where the checkpoint's
    resolution shows that it is the old recipe: "... --preset emoji" at 32 px -> "... --preset emoji-32"."""
    import shlex

    try:
        words = shlex.split(recorded)
    except ValueError:
        return recorded
    for i, word in enumerate(words[:-1]):
        if word == "--preset" and words[i + 1] in RENAMED and RENAMED[words[i + 1]][0] == resolution:
            return shlex.join(words[:i + 1] + [RENAMED[words[i + 1]][1]] + words[i + 2:])
    return recorded


def command_note(recorded: str, resolution: int | None = None) -> tuple[str, str]:
    """(the command to show, a note on what it changes, "" when nothing) for a recorded training command of a
    checkpoint at `resolution` px; the wording `python -m dalle info` and the model card share."""
    renamed = renamed_command(recorded, resolution)
    shown, left_out = effective_command(renamed)
    notes = []
    if renamed != recorded:
        notes.append(f"recorded as `{recorded}`, the preset's name at the time")
    if left_out:
        notes.append(("" if notes else f"recorded as `{recorded}`; ")
                     + f"its extra flags `{' '.join(left_out)}` equal the preset's current values")
    return shown, "; ".join(notes)
