"""The Blocks: four tabs (Generate, Compare, Interpolate, Model card) wired to `Handlers`.

Model events run with `preprocess=False`: the service validates raw values itself, so
the API and the UI get the same clear messages. They share one concurrency group.
Every component a test or a user script needs has an `elem_id`.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from .examples import compare_default, curated, default_checkpoint
from .handlers import COMPARE_SLOTS, Handlers, status_markdown
from .render import COMPARE_COLUMNS, SCORE_COLUMNS
from .service import FRAMES_RANGE, MAX_BEST_OF, MAX_IMAGES, MAX_SEED, TRUNCATION_RANGE

MODEL_GROUP = "model"  # generate / compare / interpolate share this concurrency group
CSS = """
#gen-grid img, #gen-gallery img, .pixelated img, #interp-anim img, #interp-strip img { image-rendering: pixelated; }
#ckpt-status { font-size: 0.9em; }
#gen-randomize, #cmp-randomize { align-self: center; }
#gen-gallery .grid-wrap { min-height: 0 !important; max-height: 80vh; }
"""
INTRO = """# Text-to-image GAN playground
A small text-conditional StyleGAN trained from scratch on a world of coloured shapes and on emoji.
Type one prompt per line; every image is scored by the checkpoint's own discriminator
(**realism** = how real it looks, **text match** = how well it fits the prompt)."""


def _sliders(prefix: str, seed: int = 0, truncation: float = 0.7, images: int = 4) -> SimpleNamespace:
    with gr.Row(equal_height=True):
        s = gr.Slider(0, MAX_SEED, value=seed, step=1, precision=0, label="Seed", elem_id=f"{prefix}-seed", scale=4)
        rnd = gr.Button("Random seed", elem_id=f"{prefix}-randomize", scale=1, min_width=110, size="sm")
    psi = gr.Slider(*TRUNCATION_RANGE, value=truncation, step=0.05, label="Truncation ψ",
                    info="lower = more typical images, 1 = no truncation, above 1 = more varied",
                    elem_id=f"{prefix}-psi")
    n = gr.Slider(1, MAX_IMAGES, value=images, step=1, precision=0, label="Images per prompt", elem_id=f"{prefix}-n")
    rnd.click(Handlers.random_seed, outputs=s, api_visibility="private", queue=False)
    return SimpleNamespace(seed=s, psi=psi, n=n)


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
                             info="draw N candidates per prompt, keep the top ones by realism × match (0 = off)",
                             elem_id="gen-bestof")
            run = gr.Button("Generate", variant="primary", elem_id="gen-run")
            if rows:
                gr.Examples(rows, [prompts, ui.seed, ui.psi, ui.n, ckpt, best], example_labels=labels,
                            label="Curated examples (click one, then Generate)", elem_id="gen-examples")
        with gr.Column(scale=3):
            grid = gr.Image(label="Grid (rows: prompts, columns: seeds)", type="pil", format="png",
                            interactive=False, elem_id="gen-grid")
            notes = gr.Markdown(label="notes", elem_id="gen-notes")
            gallery = gr.Gallery(label="Images", columns=4, format="png", height="auto", elem_id="gen-gallery")
            scores = gr.Dataframe(headers=SCORE_COLUMNS, label="Discriminator scores", interactive=False,
                                  elem_id="gen-scores")
            download = gr.File(label="Grid PNG with metadata (prompts, seeds, ψ, checkpoint, step)",
                               elem_id="gen-download")
    run.click(h.generate, [prompts, ui.seed, ui.psi, ui.n, ckpt, best], [grid, gallery, scores, download, notes],
              api_name="generate", preprocess=False, concurrency_id=MODEL_GROUP,
              api_description="prompts (one per line), seed, truncation, images per prompt, checkpoint, "
                              "best of N -> grid, gallery, score table, grid PNG, notes")
    return SimpleNamespace(checkpoint=ckpt)


def _compare_tab(h: Handlers, names: list[str]) -> SimpleNamespace:
    picked, default_prompts = compare_default(h.service.scan.found)
    with gr.Row():
        prompts = gr.Textbox(value=default_prompts, lines=3, max_lines=8,
                             label="Prompts (one per line)", elem_id="cmp-prompts", scale=3)
        ckpts = gr.CheckboxGroup(names, value=picked or names[:2], label="Checkpoints (pick 2 to 4)",
                                 elem_id="cmp-checkpoints", scale=2)
    with gr.Row():
        ui = _sliders("cmp", images=4)
    run = gr.Button("Compare", variant="primary", elem_id="cmp-run")
    cols, grids, heads, feet = [], [], [], []
    with gr.Row(equal_height=False):
        for i in range(COMPARE_SLOTS):
            with gr.Column(visible=i < 2, min_width=200) as col:
                heads.append(gr.Markdown(label=f"header {i + 1}", elem_id=f"cmp-head-{i}"))
                grids.append(gr.Image(type="pil", format="png", interactive=False, label=f"grid {i + 1}", show_label=False,
                                      elem_id=f"cmp-grid-{i}", elem_classes="pixelated"))
                feet.append(gr.Markdown(label=f"footer {i + 1}", elem_id=f"cmp-foot-{i}"))
            cols.append(col)
    summary = gr.Dataframe(headers=COMPARE_COLUMNS, label="Summary", interactive=False, elem_id="cmp-summary")

    def show_slots(picked: object) -> list:
        count = len(picked) if isinstance(picked, list) else 0
        return [gr.Column(visible=i < max(2, min(count, COMPARE_SLOTS))) for i in range(COMPARE_SLOTS)]

    ckpts.change(show_slots, ckpts, cols, api_visibility="private", queue=False, preprocess=False)
    run.click(h.compare, [prompts, ui.seed, ui.psi, ui.n, ckpts], [*grids, *heads, *feet, summary],
              api_name="compare", preprocess=False, concurrency_id=MODEL_GROUP,
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
                sa = gr.Slider(0, MAX_SEED, value=0, step=1, precision=0, label="Seed A", elem_id="interp-seed-a")
                sb = gr.Slider(0, MAX_SEED, value=1, step=1, precision=0, label="Seed B", elem_id="interp-seed-b")
            frames = gr.Slider(*FRAMES_RANGE, value=12, step=1, precision=0, label="Frames", elem_id="interp-frames")
            psi = gr.Slider(*TRUNCATION_RANGE, value=0.7, step=0.05, label="Truncation ψ", elem_id="interp-psi")
            ckpt = gr.Dropdown(names, value=default_checkpoint(h.service.scan.found), label="Checkpoint",
                               elem_id="interp-checkpoint")
            run = gr.Button("Interpolate", variant="primary", elem_id="interp-run")
        with gr.Column(scale=3):
            anim = gr.Image(type="filepath", label="Animation (GIF, loops A → B → A)", interactive=False,
                            elem_id="interp-anim")
            strip = gr.Image(type="pil", format="png", label="Frames", interactive=False, elem_id="interp-strip")
            notes = gr.Markdown(label="notes", elem_id="interp-notes")
    run.click(h.interpolate, [mode, a, b, sa, sb, frames, psi, ckpt], [anim, strip, notes], api_name="interpolate",
              preprocess=False, concurrency_id=MODEL_GROUP,
              api_description="mode (prompts|seeds|both), prompt A, prompt B, seed A, seed B, frames, truncation, "
                              "checkpoint -> animated GIF, frame strip, notes")
    return SimpleNamespace(checkpoint=ckpt)


def _card_tab(h: Handlers, names: list[str]) -> SimpleNamespace:
    with gr.Row():
        with gr.Column(scale=1):
            ckpt = gr.Dropdown(names, value=default_checkpoint(h.service.scan.found), label="Checkpoint",
                               elem_id="card-checkpoint")
            summary = gr.Markdown(elem_id="card-summary")
            metrics = gr.Markdown(elem_id="card-metrics")
        samples = gr.Image(label="Training samples (samples.png)", type="pil", format="png", interactive=False,
                           elem_id="card-samples", scale=1)
    with gr.Row():
        plots = [gr.LinePlot(x="step", y="value", color="series", title=title, height=260, elem_id=eid)
                 for title, eid in (("Losses", "card-losses"), ("Regularisers (R1, KL)", "card-reg"),
                                    ("Discriminator accuracy", "card-acc"))]
    with gr.Accordion("config.json", open=False):
        config = gr.JSON(elem_id="card-config")
    readme = gr.Markdown(elem_id="card-readme", container=True)
    outputs = [summary, metrics, samples, *plots, config, readme]
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
            status = gr.Markdown(status_markdown(h.service), elem_id="ckpt-status")
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
