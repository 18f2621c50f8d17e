"""Event handlers: call the service, turn its results into Gradio values, and turn its
errors into `gr.Error` (so the UI shows a message, never a traceback, and the server
keeps serving)."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from . import render
from .examples import default_checkpoint
from .model_card import ACCURACIES, LOSSES, REGULARISERS, read_card
from .results import Generation
from .service import MAX_SEED, InputError, ModelService, ServiceError

log = logging.getLogger(__name__)
COMPARE_SLOTS = 4


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show service errors as they are and anything unexpected as a short generic message."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except gr.Error:
            raise
        except ServiceError as e:
            title = "Invalid input" if isinstance(e, InputError) else "Checkpoint problem"
            raise gr.Error(str(e), title=title, print_exception=False) from None
        except Exception:
            log.exception("unexpected error in %s", getattr(fn, "__name__", fn))
            raise gr.Error("Something went wrong on the server (the details are in its log); "
                           "please try again.", title="Server error", print_exception=False) from None

    return wrapper


def status_markdown(service: ModelService) -> str:
    """One line on what loaded, plus one line per folder that failed (with its reason).

    The folder is shown by name only, so a public Space does not print its own file layout.
    """
    scan = service.scan
    where = f"`{scan.root.name}/`"
    if scan.found:
        items = ", ".join(f"`{c.name}` (step {c.step:,})" for c in scan.found.values())
        lines = [f"**{len(scan.found)} checkpoint{'s' * (len(scan.found) != 1)}** in {where}: {items}"]
    else:
        lines = [f"**No loadable checkpoint** in {where} (set `DALLE_CHECKPOINTS` to another folder)."]
    lines += [f"⚠️ `{name}` failed to load: {reason}" for name, reason in scan.failed.items()]
    if scan.skipped:
        lines.append("Skipped (not generators): " + ", ".join(f"`{n}`" for n in scan.skipped))
    return "  \n".join(lines)


def _notes(gen: Generation) -> str:
    p, n = gen.shape
    first = f"**{gen.checkpoint}** · step {gen.step:,} · {p} prompt{'s' * (p > 1)} × {n} · ψ {gen.truncation:.2f}"
    first += (f" · best {n} of {gen.best_of} candidates (seeds {gen.seed}–{gen.seed + gen.best_of - 1})"
              if gen.best_of else f" · seeds {gen.seed}–{gen.seed + n - 1}")
    return "  \n".join([first] + [f"⚠️ {w}" for w in gen.warnings])


def _warn(messages: list[str]) -> None:
    for m in messages:
        gr.Warning(m)


class Handlers:
    """The functions the layout wires to events; one instance per app."""

    def __init__(self, service: ModelService, outputs: render.OutputFolder):
        self.service = service
        self.outputs = outputs

    @user_errors
    def generate(self, prompts: Any, seed: Any, truncation: Any, num_images: Any, checkpoint: Any,
                 best_of: Any) -> tuple:
        """Returns (grid image, gallery of (image, caption), score table, grid PNG file, notes)."""
        gen = self.service.generate(prompts, seed, truncation, num_images, checkpoint, best_of)
        _warn(gen.warnings)
        stem = f"{gen.checkpoint}-seed{gen.seed}"
        path = self.outputs.write(stem, "png", gen.png())
        # the display grid goes out as a ready PNG file, so Gradio does not re-encode it at level 6
        grid = self.outputs.write(f"{stem}-display", "png", render.fast_png(render.display_grid(gen)))
        return grid, render.gallery_items(gen), render.score_table(gen), path, _notes(gen)

    @user_errors
    def compare(self, prompts: Any, seed: Any, truncation: Any, num_images: Any, checkpoints: Any) -> tuple:
        """Returns 4 grids, 4 headers, 4 footers (unused slots None / ""), and a summary table."""
        gens = self.service.compare(prompts, seed, truncation, num_images, checkpoints)
        _warn(gens[0].warnings)
        pad = [None] * (COMPARE_SLOTS - len(gens))
        grids = [render.display_grid(g) for g in gens] + pad
        heads = [render.compare_header(g) for g in gens] + [""] * len(pad)
        feet = [render.compare_footer(g) for g in gens] + [""] * len(pad)
        return (*grids, *heads, *feet, render.compare_table(gens))

    @user_errors
    def interpolate(self, mode: Any, prompt_a: Any, prompt_b: Any, seed_a: Any, seed_b: Any, frames: Any,
                    truncation: Any, checkpoint: Any) -> tuple:
        """Returns (animated GIF file, frame strip, notes)."""
        walk = self.service.interpolate(prompt_a, prompt_b, seed_a, seed_b, frames, truncation, checkpoint, mode)
        _warn(walk.warnings)
        gif = self.outputs.write(f"{walk.checkpoint}-walk", "gif", render.animation_gif(walk))
        a, b = walk.prompts
        route = f"“{a}” → “{b}”" if a != b else f"“{a}”"
        seeds = f"seed {walk.seeds[0]} → {walk.seeds[1]}" if walk.seeds[0] != walk.seeds[1] else f"seed {walk.seeds[0]}"
        notes = (f"**{walk.checkpoint}** · step {walk.step:,} · {route} · {seeds} · {len(walk.frames)} frames · "
                 f"ψ {walk.truncation:.2f} · mean realism {float(np.mean(walk.realism)):.3f} · "
                 f"mean match {float(np.mean(walk.match)):.3f}")
        return gif, render.display_strip(walk), "  \n".join([notes] + [f"⚠️ {w}" for w in walk.warnings])

    @user_errors
    def model_card(self, checkpoint: Any) -> tuple:
        """Returns (summary, metrics, samples image, losses, regularisers, accuracies, config, README)."""
        if not self.service.names:
            empty = pd.DataFrame(columns=["step", "series", "value"])
            return "*No checkpoint loaded.*", "", None, empty, empty, empty, {}, ""
        card = read_card(self.service.info(checkpoint))
        return (card.summary, card.metrics, card.samples, card.curves(LOSSES), card.curves(REGULARISERS),
                card.curves(ACCURACIES), card.config, card.readme)

    @user_errors
    def rescan(self, *current: Any) -> tuple:
        """Look at the checkpoints folder again; returns status and choices (see `choices`)."""
        self.service.refresh()
        return self.choices(*current)

    def choices(self, generate: Any, compare: Any, interpolate: Any, card: Any) -> tuple:
        """(status line, then updated choices for the four checkpoint pickers, keeping valid picks)."""
        names = self.service.names
        fallback = default_checkpoint(self.service.scan.found)

        def pick(value: Any) -> str | None:
            return value if isinstance(value, str) and value in names else fallback

        picked = [v for v in compare if isinstance(v, str) and v in names] if isinstance(compare, list) else []
        return (status_markdown(self.service), gr.Dropdown(choices=names, value=pick(generate)),
                gr.CheckboxGroup(choices=names, value=picked or names[:2]),
                gr.Dropdown(choices=names, value=pick(interpolate)), gr.Dropdown(choices=names, value=pick(card)))

    @staticmethod
    def random_seed() -> int:
        return secrets.randbelow(MAX_SEED + 1)
