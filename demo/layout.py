"""The Blocks: four tabs (Generate, Compare, Interpolate, Model card) wired to `Handlers`.

Model events run with `preprocess=False`: the service validates raw values itself, so
the API and the UI get the same clear messages. They share one concurrency group. In the
UI each first runs its check, an event without outputs: a refusal is then one message and
the last results stay on screen. `generate` returns one file (the grid PNG) to the API;
the UI's labelled grid and gallery come from a second, UI-only event.
Every component a test or a user script needs has an `elem_id`; no label or button is
drawn over an image.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from .examples import compare_default, curated, default_checkpoint, prompt_sets
from .handlers import COMPARE_SLOTS, Handlers, status_markdown
from .render import COMPARE_COLUMNS, SCORE_COLUMNS
from .service import FRAMES_RANGE, MAX_BEST_OF, MAX_IMAGES, MAX_SEED, TRUNCATION_RANGE

MODEL_GROUP = "model"  # generate / compare / interpolate share this concurrency group
CSS = """
#gen-grid img, #gen-gallery img, .pixelated img, #interp-anim img, #interp-strip img, #card-samples img {
  image-rendering: pixelated; }
#ckpt-status { font-size: 0.9em; }
#gen-randomize, #cmp-randomize { align-self: center; }
#gen-gallery .grid-wrap { min-height: 0 !important; max-height: 80vh; }
#gen-gallery img { object-fit: contain !important; }
/* thumbnails: square corners (rounded ones clip the image's), the caption under the image, not over it */
#gen-gallery .thumbnail-item { border-radius: 0 !important; aspect-ratio: auto !important; height: auto !important;
  display: flex !important; flex-direction: column !important; overflow: visible !important; }
#gen-gallery .thumbnail-item img { aspect-ratio: 1 / 1; width: 100% !important; height: auto !important;
  border-radius: 0 !important; }
#gen-gallery .caption-label { position: static !important; transform: none !important; max-width: 100% !important;
  margin: 2px 0 0 0 !important; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.range-note p { color: var(--color-accent); margin: 0; }
"""
INTRO = """# Text-to-image GAN playground
A small text-conditional StyleGAN trained from scratch on a world of coloured shapes and on emoji.
Type one prompt per line; every image is scored by the checkpoint's discriminators
(**realism** = how real it looks, from the discriminator the generator trained against; **text match** = how well
it fits the prompt, from the checkpoint's judge, trained on real images only, where it has one)."""


def _range_note(slider: gr.Slider, note: gr.Markdown, label: str, lo: float, hi: float) -> None:
    """Say, in `note`, when a number typed into `slider`'s box is out of range: the box sets it to
    the nearest allowed value when it loses focus, and the message stays while the slider holds
    that value. Any other value, typed or set by the page (a curated example), removes it: a note
    belongs to the value it describes.

    Runs in the browser: only there is the typed value seen before the box changes it. The
    note keeps one line per slider (the other sliders' lines are kept). `input` (the user typed)
    drops the line for any allowed value; `change` (any cause) keeps it while the value is the one
    the line says it was set to."""
    lo, hi = f"{lo:g}", f"{hi:g}"

    def js(typed: bool) -> str:
        return f"""(v, note) => {{
        const all = (note || "").split(/\\n+/).filter((l) => l);
        const mine = all.find((l) => l.startsWith("{label} "));
        const lines = all.filter((l) => !l.startsWith("{label} "));
        if (typeof v === "number" && (v < {lo} || v > {hi})) {{
            const set = Math.min(Math.max(v, {lo}), {hi});
            lines.push(`{label} ${{v}} is outside {lo}–{hi}; it was set to ${{set}}, the nearest allowed value.`);
        }} else if (mine && !{str(typed).lower()}) {{
            const m = mine.match(/it was set to (\\S+), the nearest/);
            if (m && Number(m[1]) === Number(v)) lines.push(mine);
        }}
        return lines.join("\\n\\n");
    }}"""

    slider.input(None, [slider, note], note, js=js(True), queue=False, api_visibility="private")
    slider.change(None, [slider, note], note, js=js(False), queue=False, api_visibility="private")


# A new run closes the messages (toasts) of earlier ones: errors already fixed do not pile up.
CLEAR_TOASTS = "() => { document.querySelectorAll('.toast-close').forEach((b) => b.click()); }"


def _clears_toasts(run: gr.Button) -> None:
    run.click(None, None, None, js=CLEAR_TOASTS, queue=False, api_visibility="private")


def _seed(prefix: str, label: str = "Seed", value: int = 0, suffix: str = "seed") -> gr.Number:
    """A seed box: whole numbers 0 .. MAX_SEED; anything else is refused with a message (never clamped)."""
    return gr.Number(value, precision=0, minimum=0, maximum=MAX_SEED, step=1, label=label,
                     info=f"0 to {MAX_SEED:,}", elem_id=f"{prefix}-{suffix}", min_width=160)


def _sliders(prefix: str, seed: int = 0, truncation: float = 0.7, images: int = 4) -> SimpleNamespace:
    with gr.Row(equal_height=True):
        s = _seed(prefix, value=seed)
        rnd = gr.Button("Random seed", elem_id=f"{prefix}-randomize", scale=0, min_width=110, size="sm")
    psi = gr.Slider(*TRUNCATION_RANGE, value=truncation, step=0.05, label="Truncation ψ",
                    info="lower = more typical images, 1 = no truncation, above 1 = more varied",
                    elem_id=f"{prefix}-psi")
    n = gr.Slider(1, MAX_IMAGES, value=images, step=1, precision=0, label="Images per prompt", elem_id=f"{prefix}-n")
    note = gr.Markdown("", elem_id=f"{prefix}-adjusted", elem_classes="range-note")
    _range_note(psi, note, "Truncation ψ", *TRUNCATION_RANGE)
    _range_note(n, note, "Images per prompt", 1, MAX_IMAGES)
    rnd.click(Handlers.random_seed, outputs=s, api_visibility="private", queue=False)
    return SimpleNamespace(seed=s, psi=psi, n=n, note=note)


def _generate_tab(h: Handlers, names: list[str]) -> SimpleNamespace:
    rows, labels = curated(h.service.scan.found)
    first = rows[0] if rows else ["a large red circle at the top left\ntwo green triangles", 0, 0.7, 4,
                                  default_checkpoint(h.service.scan.found), 0]
    with gr.Row():
        with gr.Column(scale=2):
            prompts = gr.Textbox(value=first[0], lines=4, max_lines=8, label="Prompts (one per line, up to 8)",
                                 elem_id="gen-prompts")
            ckpt = gr.Dropdown(names, value=first[4], label="Checkpoint", elem_id="gen-checkpoint")
            ui = _sliders("gen", first[1], first[2], first[3])
            best = gr.Slider(0, MAX_BEST_OF, value=0, step=1, precision=0, label="Best of N",
                             info="draw N candidates per prompt, keep the top ones by the score that helped most in evaluation (0 = off)",
                             elem_id="gen-bestof")
            _range_note(best, ui.note, "Best of N", 0, MAX_BEST_OF)
            run = gr.Button("Generate", variant="primary", elem_id="gen-run")
            if rows:
                gr.Examples(rows, [prompts, ui.seed, ui.psi, ui.n, ckpt, best], example_labels=labels,
                            label="Curated examples (click one, then Generate)", elem_id="gen-examples")
        with gr.Column(scale=3):
            gr.Markdown("**Grid**: one row per prompt (its number and text above it), one column per seed",
                        elem_id="gen-grid-title")
            grid = gr.Image(type="filepath", show_label=False, buttons=[], interactive=False, elem_id="gen-grid")
            notes = gr.Markdown(label="notes", elem_id="gen-notes")
            gr.Markdown("**Images** (click one for a larger view)", elem_id="gen-gallery-title")
            gallery = gr.Gallery(show_label=False, columns=4, format="png", height="auto", object_fit="contain",
                                 buttons=["download"], elem_id="gen-gallery")
            scores = gr.Dataframe(headers=SCORE_COLUMNS, label="Discriminator scores", interactive=False,
                                  elem_id="gen-scores")
            download = gr.File(label="Grid PNG with metadata (prompts, seeds, ψ, checkpoint, step)",
                               elem_id="gen-download")
    last = gr.State(None)
    inputs = [prompts, ui.seed, ui.psi, ui.n, ckpt, best]
    _clears_toasts(run)
    run.click(h.check_generate, inputs, None, preprocess=False, api_visibility="private").success(
        h.generate, inputs, [download, scores, notes, last], api_name="generate", preprocess=False,
        concurrency_id=MODEL_GROUP,
        api_description="prompts (one per line), seed, truncation, images per prompt, checkpoint, best of N -> "
                        "grid PNG (with metadata), score table, notes").success(
        h.show_generation, [last, ui.note], [grid, gallery, notes], api_visibility="private")
    return SimpleNamespace(checkpoint=ckpt)


def _compare_tab(h: Handlers, names: list[str]) -> SimpleNamespace:
    picked, default_prompts = compare_default(h.service.scan.found)
    picked = picked or names[:2]
    with gr.Row():
        with gr.Column(scale=3):
            prompts = gr.Textbox(value=default_prompts, lines=3, max_lines=8,
                                 label="Prompts (one per line)", elem_id="cmp-prompts")
            sets = gr.Radio(prompt_sets(h.service.scan.found, picked), value=None,
                            label="Curated prompts of the picked checkpoints' datasets (click to use)",
                            elem_id="cmp-prompt-sets")
        ckpts = gr.CheckboxGroup(names, value=picked, label="Checkpoints (pick 2 to 4)",
                                 elem_id="cmp-checkpoints", scale=2)
    with gr.Row():
        ui = _sliders("cmp", images=4)
    run = gr.Button("Compare", variant="primary", elem_id="cmp-run")
    cols, grids, heads, feet = [], [], [], []
    with gr.Row(equal_height=False):
        for i in range(COMPARE_SLOTS):
            with gr.Column(visible=i < 2, min_width=200) as col:
                heads.append(gr.Markdown(label=f"header {i + 1}", elem_id=f"cmp-head-{i}"))
                grids.append(gr.Image(type="pil", format="png", interactive=False, label=f"grid {i + 1}",
                                      show_label=False, buttons=[], elem_id=f"cmp-grid-{i}",
                                      elem_classes="pixelated"))
                feet.append(gr.Markdown(label=f"footer {i + 1}", elem_id=f"cmp-foot-{i}"))
            cols.append(col)
    summary = gr.Dataframe(headers=COMPARE_COLUMNS, label="Summary: the common judge scores every checkpoint "
                           "of a dataset alike; each checkpoint's own D does not", interactive=False,
                           elem_id="cmp-summary")

    def show_slots(picked: object) -> list:
        count = len(picked) if isinstance(picked, list) else 0
        return [gr.Column(visible=i < max(2, min(count, COMPARE_SLOTS))) for i in range(COMPARE_SLOTS)]

    ckpts.change(show_slots, ckpts, cols, api_visibility="private", queue=False, preprocess=False)
    ckpts.change(h.prompt_sets, ckpts, sets, api_visibility="private", queue=False, preprocess=False)
    sets.input(h.use_prompts, sets, prompts, api_visibility="private", queue=False, preprocess=False)
    inputs = [prompts, ui.seed, ui.psi, ui.n, ckpts]
    _clears_toasts(run)
    run.click(h.check_compare, inputs, None, preprocess=False, api_visibility="private").success(
        h.compare, inputs, [*grids, *heads, *feet, summary], api_name="compare", preprocess=False,
        concurrency_id=MODEL_GROUP,
        api_description="prompts, seed, truncation, images per prompt, list of 2-4 checkpoints -> "
                        "4 grids (None when unused), 4 headers, 4 footers, summary table")
    return SimpleNamespace(checkpoints=ckpts)


def _interpolate_tab(h: Handlers, names: list[str]) -> SimpleNamespace:
    with gr.Row():
        with gr.Column(scale=2):
            mode = gr.Radio([("prompt A → prompt B (at seed A)", "prompts"), ("seed A → seed B (for prompt A)", "seeds"),
                             ("both at once", "both")], value="prompts", label="Walk", elem_id="interp-mode")
            a = gr.Textbox("a large red circle at the top left", label="Prompt A", elem_id="interp-a")
            b = gr.Textbox("a small blue square in the center", label="Prompt B", elem_id="interp-b")
            with gr.Row():
                sa = _seed("interp", "Seed A", 0, "seed-a")
                sb = _seed("interp", "Seed B", 1, "seed-b")
            frames = gr.Slider(*FRAMES_RANGE, value=12, step=1, precision=0, label="Frames", elem_id="interp-frames")
            psi = gr.Slider(*TRUNCATION_RANGE, value=0.7, step=0.05, label="Truncation ψ", elem_id="interp-psi")
            note = gr.Markdown("", elem_id="interp-adjusted", elem_classes="range-note")
            _range_note(frames, note, "Frames", *FRAMES_RANGE)
            _range_note(psi, note, "Truncation ψ", *TRUNCATION_RANGE)
            ckpt = gr.Dropdown(names, value=default_checkpoint(h.service.scan.found), label="Checkpoint",
                               elem_id="interp-checkpoint")
            run = gr.Button("Interpolate", variant="primary", elem_id="interp-run")
        with gr.Column(scale=3):
            gr.Markdown("**Animation** (GIF, loops A → B → A)")
            anim = gr.Image(type="filepath", label="animation (GIF)", show_label=False, buttons=[], interactive=False,
                            elem_id="interp-anim")
            gr.Markdown("**Frames**, A on the left, B on the right")
            strip = gr.Image(type="pil", format="png", label="frame strip", show_label=False, buttons=[],
                             interactive=False, elem_id="interp-strip")
            notes = gr.Markdown(label="notes", elem_id="interp-notes")
    inputs = [mode, a, b, sa, sb, frames, psi, ckpt]
    _clears_toasts(run)
    run.click(h.check_interpolate, inputs, None, preprocess=False, api_visibility="private").success(
        h.interpolate, inputs, [anim, strip, notes], api_name="interpolate", preprocess=False,
        concurrency_id=MODEL_GROUP,
        api_description="mode (prompts|seeds|both), prompt A, prompt B, seed A, seed B, frames, truncation, "
                        "checkpoint -> animated GIF, frame strip, notes")
    return SimpleNamespace(checkpoint=ckpt)


def _card_tab(h: Handlers, names: list[str]) -> SimpleNamespace:
    """Headline table, training curves, captioned samples; the full metrics, config and model card folded."""
    ckpt = gr.Dropdown(names, value=default_checkpoint(h.service.scan.found), label="Checkpoint",
                       elem_id="card-checkpoint")
    headline = gr.Markdown(label="headline", elem_id="card-headline")
    # The plots' legends are one line under each plot that is cut, not wrapped, where the plot is too narrow
    # ("rec…"): the losses (five series) get a row of their own, the two-series plots share one.
    plots = []
    for row in ((("Losses", "card-losses"),),
                (("Regularisers (R1, KL)", "card-reg"), ("Discriminator accuracy", "card-acc"))):
        with gr.Row():
            plots += [gr.LinePlot(x="step", y="value", color="series", title=title, height=260, label=title,
                                  show_label=False, elem_id=eid) for title, eid in row]
    gr.Markdown("**Training samples** (samples.png): one row per prompt, written above it; one column per seed")
    samples = gr.Image(type="pil", format="png", label="training samples", show_label=False, buttons=[],
                       interactive=False, elem_id="card-samples")
    with gr.Accordion("All metrics (metrics.json) and training facts", open=False, elem_id="card-metrics-fold"):
        summary = gr.Markdown(label="training facts", elem_id="card-summary")
        metrics = gr.Markdown(label="metrics", elem_id="card-metrics")
    with gr.Accordion("config.json", open=False):
        config = gr.JSON(label="config.json", show_label=False, elem_id="card-config")
    with gr.Accordion("Model card (README.md)", open=False):
        readme = gr.Markdown(label="model card (README.md)", elem_id="card-readme", container=True)
    outputs = [headline, *plots, samples, summary, metrics, config, readme]
    ckpt.change(h.model_card, ckpt, outputs, api_name="model_card", api_visibility="undocumented",
                preprocess=False)
    return SimpleNamespace(checkpoint=ckpt, outputs=outputs)


def build_blocks(h: Handlers) -> gr.Blocks:
    """Lay out the app for a ready `Handlers` (its service has scanned the checkpoints)."""
    names = h.service.names
    with gr.Blocks(title="Text-to-image GAN playground", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO, elem_id="intro")
        with gr.Row(equal_height=False):
            status = gr.Markdown(status_markdown(h.service), label="checkpoint status", elem_id="ckpt-status")
            rescan = gr.Button("↻ Rescan checkpoints", size="sm", scale=0, min_width=170, elem_id="rescan")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Generate", id="generate", elem_id="tab-generate"):
                gen = _generate_tab(h, names)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
                cmp = _compare_tab(h, names)
            with gr.Tab("Interpolate", id="interpolate", elem_id="tab-interpolate"):
                itp = _interpolate_tab(h, names)
            with gr.Tab("Model card", id="card", elem_id="tab-card"):
                card = _card_tab(h, names)
        pickers = [gen.checkpoint, cmp.checkpoints, itp.checkpoint, card.checkpoint]
        rescan.click(h.rescan, pickers, [status, *pickers], api_name="rescan", api_visibility="undocumented",
                     preprocess=False)
        demo.load(h.choices, pickers, [status, *pickers], api_visibility="private", preprocess=False).then(
            h.model_card, card.checkpoint, card.outputs, api_visibility="private", preprocess=False)
    return demo
