"""Where a warm `generate` spends its time on the server, stage by stage (in process, no HTTP).

The app's own objects are built as `demo.build_demo` builds them (ModelService -> Handlers ->
Blocks), the library and demo functions on the generate path are wrapped with timers, and
`Handlers.generate` is called the way the Gradio event calls it; then the output components'
`postprocess` runs, which is what Gradio does with the returned values (PNG encoding into its
cache). Times are inclusive; "other" is the handler's time not covered by a listed stage.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import CHECKPOINT_NAMES, LoadMeter, scaled, stats
from .e2e import EMOJI_PROMPTS

# (label, module, attribute path) of what is wrapped; nested stages are indented in the label.
STAGES = (
    ("handler (Handlers.generate)", "demo.handlers", "Handlers.generate"),
    ("  service.generate", "demo.service", "ModelService.generate"),
    ("    text encoder (condition)", "dalle.text_encoder", "TextEncoder.condition"),
    ("    prompt length check (tokenise)", "dalle.text_encoder", "TextEncoder.is_too_long"),
    ("    truncation centres", "dalle.pipeline", "TextToImagePipeline.conditional_centers"),
    ("    seeds -> latents", "dalle.pipeline", "seed_latents"),
    ("    generator (mapping + synthesis)", "dalle.pipeline", "TextToImagePipeline.synthesize"),
    ("    discriminator scores", "dalle.pipeline", "TextToImagePipeline.score_tensor"),
    ("    tensor -> uint8", "dalle.pipeline", "tensor_to_uint8"),
    ("  grid PNG with metadata", "demo.results", "Generation.png"),
    ("  write download file", "demo.render", "OutputFolder.write"),
    ("  display grid (upscaled)", "demo.render", "display_grid"),
    ("  gallery items (upscaled)", "demo.render", "gallery_items"),
    ("  score table", "demo.render", "score_table"),
)
OUTPUT_IDS = ("gen-download", "gen-scores", "gen-notes")  # the API outputs of generate, in order


class Timers:
    """Wraps functions/methods with wall-clock timers; `calls[label]` lists seconds per call."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, label: str, module_name: str, path: str) -> None:
        import importlib

        owner: Any = importlib.import_module(module_name)
        *parents, attr = path.split(".")
        for p in parents:
            owner = getattr(owner, p)
        if not hasattr(owner, attr):
            return  # a refactor removed it: the stage is simply not reported
        original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        func = original.__func__ if isinstance(original, staticmethod) else original
        calls = self.calls[label]

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                calls.append(time.perf_counter() - t0)

        timed.__wrapped__ = func  # type: ignore[attr-defined]
        setattr(owner, attr, staticmethod(timed) if isinstance(original, staticmethod) else timed)
        self._undo.append((owner, attr, original))

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()

    def reset(self) -> None:
        for v in self.calls.values():
            v.clear()


class HashEncoder:
    """A stand-in text encoder for smoke tests (no transformers import): deterministic unit
    vectors and token states from a hash of the prompt. Same interface as dalle.text_encoder.TextEncoder."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", device: Any = "cpu", dim: int = 384, **_: Any):
        self.name, self.dim, self.max_length = name, dim, 128

    def count_tokens(self, prompt: str) -> int:
        return len(prompt.split()) + 2

    def unknown_share(self, prompt: str) -> float:
        return 0.0

    def is_too_long(self, prompt: str) -> bool:
        return self.count_tokens(prompt) > self.max_length

    def embed(self, prompts: list[str], batch_size: int = 256) -> Any:
        """Pooled unit vectors [B, dim] on CPU."""
        import torch

        rows = [torch.randn(self.dim, generator=self._generator(p)) for p in prompts]
        if not rows:
            return torch.empty(0, self.dim)
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)

    def condition(self, prompts: list[str], max_tokens: int) -> Any:
        """A TextCondition on CPU: the pooled vector of `embed` and `max_tokens` token states, real for the
        prompt's `count_tokens` (cut at max_tokens) and zero after, all from the prompt's hash."""
        import torch

        from dalle.text_encoder import TextCondition

        pooled = self.embed(prompts)
        tokens = torch.zeros(len(prompts), max_tokens, self.dim)
        mask = torch.zeros(len(prompts), max_tokens, dtype=torch.bool)
        for i, p in enumerate(prompts):
            n = min(self.count_tokens(p), max_tokens)
            tokens[i, :n] = torch.randn(n, self.dim, generator=self._generator("tokens\0" + p))
            mask[i, :n] = True
        return TextCondition(pooled, tokens, mask)

    @staticmethod
    def _generator(prompt: str) -> Any:
        import hashlib

        import torch

        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "little")
        return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def timed_app(checkpoints: Path, fake_encoder: bool = False) -> Iterator[tuple[Any, Any, Timers]]:
    """(handlers, output components by elem_id, timers) of an in-process app over `checkpoints`.
    `fake_encoder` swaps the text encoder for `HashEncoder` (smoke tests)."""
    timers = Timers()
    for label, module, path in STAGES:
        timers.wrap(label, module, path)
    if fake_encoder:
        import demo.service

        timers._undo.append((demo.service, "TextEncoder", demo.service.TextEncoder))
        demo.service.TextEncoder = HashEncoder  # type: ignore[misc,assignment]
    try:
        from demo.handlers import Handlers
        from demo.layout import build_blocks
        from demo.render import OutputFolder
        from demo.service import ModelService

        handlers = Handlers(ModelService(checkpoints), OutputFolder())
        blocks = build_blocks(handlers)
        comps = {b.elem_id: b for b in blocks.blocks.values() if getattr(b, "elem_id", None) in OUTPUT_IDS}
        yield handlers, comps, timers
    finally:
        timers.restore()


def run(checkpoints: Path, checkpoint: str = CHECKPOINT_NAMES[0], warmup: int = 2, repeats: int = 10,
        threads: int | None = None, fake_encoder: bool = False) -> dict[str, Any]:
    """Median per stage (ms) for 1x4 and 4x4, with a text-embedding cache hit and a miss."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    token = secrets.token_hex(3)
    counter = iter(range(10 ** 9))
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "text_encoder": "hash stand-in" if fake_encoder
                           else "as configured", "scenarios": {}}
    with LoadMeter() as load, timed_app(checkpoints, fake_encoder) as (handlers, comps, timers):
        order = [c for c in OUTPUT_IDS if c in comps]
        for name, k, miss in (("1x4_hit", 1, False), ("1x4_miss", 1, True), ("4x4_hit", 4, False),
                              ("4x4_miss", 4, True)):
            post: list[float] = []
            total: list[float] = []
            for i in range(warmup + repeats):
                if i == warmup:
                    timers.reset()
                    post.clear()
                    total.clear()
                prompts = ([f"{EMOJI_PROMPTS[j % 4]} {token} {next(counter)}" for j in range(k)] if miss
                           else list(EMOJI_PROMPTS[:k]))
                t0 = time.perf_counter()
                values = handlers.generate("\n".join(prompts), i + 1, 0.7, 4, checkpoint, 0)
                t1 = time.perf_counter()
                for cid, v in zip(OUTPUT_IDS, values):
                    if cid in comps:
                        comps[cid].postprocess(v)
                t2 = time.perf_counter()
                post.append(t2 - t1)
                total.append(t2 - t0)
            rows: dict[str, Any] = {}
            for label, _, _ in STAGES:
                calls = timers.calls.get(label) or []
                if calls:  # per generate call: sum of this stage's calls in each request
                    per = len(calls) / repeats
                    rows[label] = {"ms": scaled(stats(_per_request(calls, repeats)), 1000.0),
                                   "calls_per_request": per}
            rows["gradio postprocess (PNG encode into cache)"] = {"ms": scaled(stats(post), 1000.0),
                                                                  "calls_per_request": len(order)}
            rows["server total (handler + postprocess)"] = {"ms": scaled(stats(total), 1000.0),
                                                            "calls_per_request": 1}
            out["scenarios"][name] = rows
    out["load"] = load.result
    return out


def _per_request(calls: list[float], repeats: int) -> list[float]:
    """Group a stage's call times into `repeats` requests (a stage may run several times per request)."""
    per = max(len(calls) // repeats, 1)
    return [sum(calls[i * per:(i + 1) * per]) for i in range(min(repeats, len(calls) // per))]
