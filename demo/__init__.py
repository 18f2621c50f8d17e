"""The Gradio app around the `dalle` library: `build_demo()` returns ready-to-launch Blocks.

Modules, one concept each:
    service      input validation and the model service (checkpoints -> pipelines -> results)
    registry     checkpoint discovery and the bounded LRU of loaded pipelines
    devices      CUDA / ZeroGPU: the one function that runs the networks
    results      Generation / Interpolation: numpy results, grids, PNG metadata
    render       post-processing for display (upscaling, captions, tables, GIFs, download files)
    model_card   config, metrics.json, README.md and log.csv curves of a checkpoint
    examples     curated examples, each with the checkpoint that draws it best
    judge        the Compare tab's common judge (evaluator cosine for emoji, shapes checker for shapes)
    handlers     event handlers: service results -> Gradio values, errors -> gr.Error
    layout       the Blocks
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from .handlers import Handlers
from .layout import CSS, build_blocks
from .render import OutputFolder
from .service import ModelService

REPO_ROOT = Path(__file__).resolve().parent.parent
QUEUE_CONCURRENCY = 1  # one model call at a time: CPU boxes have few cores, ZeroGPU one GPU
QUEUE_MAX_SIZE = 32  # requests beyond this are refused with "queue is full"


def checkpoints_dir() -> Path:
    """`DALLE_CHECKPOINTS` if set, else `checkpoints/` next to app.py."""
    return Path(os.environ.get("DALLE_CHECKPOINTS") or REPO_ROOT / "checkpoints").expanduser()


def build_demo(root: str | Path | None = None, capacity: int | None = None) -> gr.Blocks:
    """Create the model service (loads every checkpoint once to check it) and the Blocks."""
    capacity = capacity or int(os.environ.get("DALLE_MAX_PIPELINES", "4"))
    service = ModelService(root or checkpoints_dir(), capacity=capacity, wait_for_captions=False)
    return build_blocks(Handlers(service, OutputFolder()))


def launch_options() -> dict:
    """Keyword arguments for `launch()` (Gradio 6 takes theme and CSS there)."""
    return {"theme": gr.themes.Soft(primary_hue="indigo"), "css": CSS,
            "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
            # Gradio's own refusals (e.g. too few inputs) carry their message instead of null
            "show_error": True,
            # Gradio keeps ~180 KB of state per session, up to 10,000 sessions by default; every
            # raw API call is a new session, so a busy Space would grow by ~1.8 GB
            "state_session_capacity": 128}


__all__ = ["QUEUE_CONCURRENCY", "QUEUE_MAX_SIZE", "build_demo", "checkpoints_dir", "launch_options"]
