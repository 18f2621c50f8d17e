"""The one-command recipes for training a model from scratch: `python -m dalle train --preset NAME`.

A preset is a set of flag values; flags given on the command line win over it. Each recipe is
sized to finish in one sitting on a 2-core CPU with the two runs side by side (one core each).
Each choice was compared with its alternative at an equal budget (docs/recipe.md). A shipped
checkpoint's model card quotes the command that trained it, which may predate later choices.
"""

from __future__ import annotations

import dataclasses

from .config import ModelConfig, TrainConfig

PRESETS: dict[str, dict] = {
    "shapes": {"data": "shapes", "resolution": 32, "out": "runs/shapes-32", "max_minutes": 60.0, "threads": 1,
               "snapshot_minutes": [15.0], "augment": "", "channel_base": 1024, "lr_g": 1e-3, "lr_d": 1e-3,
               "normalize_text": True, "recon_loss": "l2", "warmup_kimg": 100.0, "lr_decay": 0.5,
               "hard_negatives": 0.5, "d_word_order": True, "g_word_order": True, "d_near_miss_weight": 1.0,
               "near_miss_weight": 1.0, "recon_open": 0.0, "seeded_layouts": True, "seeded_pairs": True,
               "pair_layout": "center", "recon_weight": 30.0},
    "emoji": {"data": "emoji", "resolution": 32, "out": "runs/emoji-32", "max_minutes": 120.0, "threads": 1,
              "snapshot_minutes": [20.0], "augment": "translation", "lr_g": 1e-3, "lr_d": 1e-3},
}


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
