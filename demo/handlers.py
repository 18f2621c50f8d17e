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
from .card_tab import ACCURACIES, LOSSES, REGULARISERS, match_trust, read_card, realism_trust, rerank_choice
from .examples import default_checkpoint, prompt_sets
from .results import Generation
from .service import MAX_SEED, InputError, ModelService, ServiceError

log = logging.getLogger(__name__)
COMPARE_SLOTS = 4
SAMPLE_COLUMNS = 8  # training writes samples.png with 8 seeds per prompt
SAMPLE_TILE = 96  # its tiles are shown at about this many pixels


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


WRAP = "(seed + j) mod 2**31"  # how image j's seed wraps past MAX_SEED; the README says it the same way


def seed_span(seed: int, count: int) -> str:
    """The seeds of `count` images from `seed`, as the score table shows them: "seeds 42–45";
    past MAX_SEED they wrap to 0: "seeds 2147483647, 0–2 ((seed + j) mod 2**31)"."""
    seeds = [(seed + j) % (MAX_SEED + 1) for j in range(count)]
    runs: list[list[int]] = []
    for s in seeds:
        if runs and s == runs[-1][-1] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    text = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)
    return f"seed{'s' * (count > 1)} {text}" + (f" ({WRAP})" if len(runs) > 1 else "")


def _notes(gen: Generation, trust: str = "") -> str:
    """The line under a result: checkpoint, shape, ψ, seeds; its warnings; how far its text match goes."""
    p, n = gen.shape
    first = f"**{gen.checkpoint}** · step {gen.step:,} · {p} prompt{'s' * (p > 1)} × {n} · ψ {gen.truncation:.2f}"
    first += (f" · best {n} of {gen.best_of} candidates by {gen.rerank_score} ({seed_span(gen.seed, gen.best_of)})"
              if gen.best_of else f" · {seed_span(gen.seed, n)}")
    return "  \n".join([first] + [f"⚠️ {w}" for w in gen.warnings] + ([trust] if trust else []))


def _warn(messages: list[str]) -> None:
    for m in messages:
        gr.Warning(m)


class Handlers:
    """The functions the layout wires to events; one instance per app."""

    def __init__(self, service: ModelService, outputs: render.OutputFolder):
        self.service = service
        self.outputs = outputs

    def _trust(self, gen: Generation) -> str:
        """How far `gen`'s text-match column can be trusted, from its checkpoint's metrics.json."""
        folder = self.service.info(gen.checkpoint).path
        lines = [match_trust(folder), realism_trust(folder)] + ([rerank_choice(folder)[1]] if gen.best_of else [])
        return "  \n".join(line for line in lines if line)

    # Each model event runs its check first (no outputs, so a refusal is one message and the
    # last good results stay on screen), then the task itself.
    @user_errors
    def check_generate(self, prompts: Any, seed: Any, truncation: Any, num_images: Any, checkpoint: Any,
                       best_of: Any) -> None:
        self.service.check_generate(prompts, seed, truncation, num_images, checkpoint, best_of)

    @user_errors
    def check_compare(self, prompts: Any, seed: Any, truncation: Any, num_images: Any, checkpoints: Any) -> None:
        self.service.check_compare(prompts, seed, truncation, num_images, checkpoints)

    @user_errors
    def check_interpolate(self, mode: Any, prompt_a: Any, prompt_b: Any, seed_a: Any, seed_b: Any, frames: Any,
                          truncation: Any, checkpoint: Any) -> None:
        self.service.check_interpolate(prompt_a, prompt_b, seed_a, seed_b, frames, truncation, checkpoint, mode)

    @user_errors
    def generate(self, prompts: Any, seed: Any, truncation: Any, num_images: Any, checkpoint: Any,
                 best_of: Any) -> tuple:
        """Returns (grid PNG file with metadata, score table, notes, the Generation for `show_generation`).

        One file per call: an API client downloads only the grid; the UI draws its labelled
        grid and gallery from the Generation in a second event."""
        gen = self.service.generate(prompts, seed, truncation, num_images, checkpoint, best_of)
        _warn(gen.warnings)
        path = self.outputs.write(f"{gen.checkpoint}-seed{gen.seed}", "png", gen.png())
        return path, render.score_table(gen), _notes(gen, self._trust(gen)), gen

    @user_errors
    def show_generation(self, gen: Generation | None, adjusted: Any) -> tuple:
        """(labelled display grid file, gallery of (image, caption), notes with what the UI adjusted)."""
        if gen is None:
            return None, [], ""
        grid = self.outputs.write(f"{gen.checkpoint}-seed{gen.seed}-display", "png",
                                  render.fast_png(render.display_grid(gen)))
        extra = adjusted.strip() if isinstance(adjusted, str) else ""
        return grid, render.gallery_items(gen), _notes(gen, self._trust(gen)) + (f"  \n{extra}" if extra else "")

    @user_errors
    def compare(self, prompts: Any, seed: Any, truncation: Any, num_images: Any, checkpoints: Any) -> tuple:
        """Returns 4 labelled grids, 4 headers, 4 footers (unused slots None / ""), and a summary table."""
        gens = self.service.compare(prompts, seed, truncation, num_images, checkpoints)
        _warn(gens[0].warnings)
        verdicts = [self.service.common_judge(g) for g in gens]
        pad = [None] * (COMPARE_SLOTS - len(gens))
        grids = [render.display_grid(g) for g in gens] + pad
        heads = [render.compare_header(g) for g in gens] + [""] * len(pad)
        feet = [render.compare_footer(g, v) for g, v in zip(gens, verdicts)] + [""] * len(pad)
        return (*grids, *heads, *feet, render.compare_table(gens, verdicts))

    def prompt_sets(self, picked: Any) -> gr.Radio:
        """The curated prompt sets of the datasets of the picked checkpoints, as radio choices."""
        names = [v for v in picked if isinstance(v, str)] if isinstance(picked, list) else []
        return gr.Radio(choices=prompt_sets(self.service.scan.found, names), value=None)

    @staticmethod
    def use_prompts(prompts: Any) -> Any:
        """A picked prompt set goes into the prompt box (nothing changes when none is picked)."""
        return prompts if isinstance(prompts, str) and prompts else gr.skip()

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
        """Returns (headline, losses, regularisers, accuracies, captioned samples, facts, metrics, config,
        README): the headline table first, the full metrics last (the layout folds them away)."""
        empty = pd.DataFrame(columns=["step", "series", "value"])
        if not self.service.names:
            return "*No checkpoint loaded.*", empty, empty, empty, None, "", "", {}, ""
        card = read_card(self.service.info(checkpoint))
        samples = card.samples
        if samples is not None and card.sample_prompts:
            try:
                tiles = render.split_grid(samples, len(card.sample_prompts), SAMPLE_COLUMNS)
                samples = render.labelled_grid(tiles, card.sample_prompts, tile=SAMPLE_TILE)
            except ValueError:
                pass  # not the grid its metadata describes: shown as it is
        return (card.headline, card.curves(LOSSES), card.curves(REGULARISERS), card.curves(ACCURACIES), samples,
                card.summary, card.metrics, card.config, card.readme)

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
