"""A run's state on disk, and which settings a continued run keeps.

`<out>/state/` holds everything `--resume` needs to continue exactly where training stopped
(weights, optimizer moments, RNGs, counters, settings) as safetensors + JSON, written atomically.
`--init-from` starts a new run from a checkpoint's weights instead, with fresh optimizers.
`run_model_config` is the one rule for which model config a run uses.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import torch

from ..checkpoint import (
    CheckpointError,
    load_networks,
    load_tensors,
    model_config,
    read_config,
    recover_folder,
    save_tensors,
    write_folder_atomically,
)
from ..config import RESUMABLE_MODEL_FIELDS, ModelConfig

# Train settings that do not change what is learned; a resume may change them without a note.
# "workers" is a retired setting (drawing a shapes batch takes about 3 ms of a 200-450 ms step) that the
# saved state of older runs still names.
BOOKKEEPING = {"out", "threads", "max_minutes", "device", "workers", "cache_dir", "sample_every",
               "checkpoint_every", "snapshot_kimg", "snapshot_minutes", "total_kimg", "init_from"}

# D heads that a run started with --init-from may add to the checkpoint's D: they start fresh, the rest loads
ADDABLE_D_HEADS = ("d_group_spread",)


def setting_changes(before: dict, after: dict) -> dict[str, list]:
    """{name: [old, new]} for the learning-relevant settings that differ (JSON-normalised)."""
    norm = lambda d: json.loads(json.dumps({k: v for k, v in d.items() if k not in BOOKKEEPING}))  # noqa: E731
    a, b = norm(before), norm(after)
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def run_model_config(given: ModelConfig, given_fields: set[str], out: str | Path, resume: bool,
                     init_from: str) -> ModelConfig:
    """The model config a run uses. A resumed run keeps its own (the fields in RESUMABLE_MODEL_FIELDS may be
    changed by naming them in `given_fields`); a run started with --init-from takes its checkpoint's, plus the
    D heads of ADDABLE_D_HEADS that `given` turns on; otherwise `given`."""
    saved = Path(out) / "state" / "state.json"
    if resume and saved.exists():
        cfg = ModelConfig.from_dict(json.loads(saved.read_text())["model"])
        return dataclasses.replace(cfg, **{f: getattr(given, f) for f in RESUMABLE_MODEL_FIELDS if f in given_fields})
    if init_from:
        cfg = model_config(read_config(init_from))
        return dataclasses.replace(cfg, **{f: True for f in ADDABLE_D_HEADS if getattr(given, f)})
    return given


def init_from(G: torch.nn.Module, D: torch.nn.Module, model_cfg: ModelConfig, folder: Path) -> dict:
    """--init-from: load G (the checkpoint's EMA weights) and D from a checkpoint folder. The model configs
    must agree, except that this run's D may add the heads in ADDABLE_D_HEADS, which keep their init.
    Returns the checkpoint's own training history plus an entry for this start."""
    config, g_old, d_old = load_networks(folder)
    theirs = g_old.cfg
    added = [f for f in ADDABLE_D_HEADS if getattr(model_cfg, f) and not getattr(theirs, f)]
    if dataclasses.replace(theirs, **{f: True for f in added}) != model_cfg:
        raise CheckpointError(f"{folder / 'config.json'}: --init-from needs the same model config as this run"
                              f" (it may add {', '.join(ADDABLE_D_HEADS)})")
    G.load_state_dict(g_old.state_dict())
    missing, unexpected = D.load_state_dict(d_old.state_dict(), strict=not added)
    assert not unexpected and bool(missing) == bool(added), (missing, unexpected)
    entry = {"step": 0, "kimg": 0.0, "init_from": str(folder), "from_step": config.get("step", 0),
             "from_kimg": round(config.get("images_seen", 0) / 1000, 1),
             "from_command": (config.get("training_compute") or {}).get("command", "")}
    # the source's own history first: a continued checkpoint's card tells the whole way from scratch
    return list(config.get("training_history") or []) + [entry | ({"added": added} if added else {})]


def save(folder: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
         rngs: dict[str, torch.Tensor], data_rng: random.Random, meta: dict) -> None:
    """Write modules (fp32), optimizer moments, RNG states and `meta` (counters, settings) to `folder`."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, m in modules.items():
        tensors.update({f"{prefix}.{k}": v.float() for k, v in m.state_dict().items()})
    meta = {**meta, "python_rng": list(_jsonable(data_rng.getstate())), "opt": {}}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        meta["opt"][name] = {"param_groups": sd["param_groups"], "steps": {}}
        for pid, st in sd["state"].items():
            meta["opt"][name]["steps"][str(pid)] = float(st["step"])
            tensors[f"{name}.{pid}.exp_avg"] = st["exp_avg"]
            tensors[f"{name}.{pid}.exp_avg_sq"] = st["exp_avg_sq"]
    tensors.update({f"rng.{k}": v for k, v in rngs.items()})

    def write(tmp: Path) -> None:
        save_tensors(tensors, tmp, "state")
        (tmp / "state.json").write_text(json.dumps(meta))

    write_folder_atomically(folder, write)


def read_meta(folder: Path) -> dict | None:
    """The saved counters and settings of `folder` (state.json), or None when there is no saved state."""
    folder = recover_folder(folder)
    if not (folder / "state.json").exists():
        return None
    return json.loads((folder / "state.json").read_text())


def load(folder: Path, meta: dict, modules: dict[str, torch.nn.Module],
         optimizers: dict[str, torch.optim.Optimizer], data_rng: random.Random, device: torch.device,
         ) -> dict[str, torch.Tensor]:
    """Load what `save` wrote into modules, optimizers and `data_rng`; returns the saved RNG tensors by name."""
    tensors = load_tensors(folder, "state")
    for prefix, m in modules.items():
        m.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == prefix})
    for name, opt in optimizers.items():
        om = meta["opt"][name]
        state = {int(pid): {"step": torch.tensor(step), "exp_avg": tensors[f"{name}.{pid}.exp_avg"].to(device),
                            "exp_avg_sq": tensors[f"{name}.{pid}.exp_avg_sq"].to(device)}
                 for pid, step in om["steps"].items()}
        opt.load_state_dict({"state": state, "param_groups": om["param_groups"]})
    data_rng.setstate(_from_jsonable(meta["python_rng"]))
    return {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("rng.")}


def _jsonable(state):
    """random.Random.getstate() -> nested lists (JSON)."""
    return [list(x) if isinstance(x, tuple) else x for x in state]


def _from_jsonable(state):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
