"""Generator and discriminator on CPU: ms per image, images/s, and achieved FLOP/s as a fraction
of the matmul FLOP/s measured in the same process (before and after, pooled).

The calls timed are the library's own inference paths, so a change in `dalle/` shows up here:
    generator      TextToImagePipeline.synthesize: mapping -> truncation toward the cached centre -> synthesis
    discriminator  TextToImagePipeline.score_tensor: trunk -> realism and match heads -> probabilities
Text conditions are random (the text encoder is not part of either network): unit sentence vectors
and `max_tokens` token states per prompt with a few real words each, so G's word attention runs at its
full length. The truncation centres are computed once beforehand, as the app caches them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import LoadMeter, count_flops, inverted, matmul_limit, pooled_limit, scaled, stats, time_calls

BATCHES = (1, 4, 16, 64)
PROMPTS = 4  # distinct prompts in a batch (rows cycle through them), as in a 4 x N grid


def load_pipeline(checkpoint: Path, device: str = "cpu"):
    """A TextToImagePipeline over the checkpoint's G and D, without loading a text encoder."""
    from dalle.checkpoint import load_networks
    from dalle.pipeline import TextToImagePipeline

    config, g, d = load_networks(checkpoint)
    return TextToImagePipeline(g, d, None, config, device=device, name=checkpoint.name)  # type: ignore[arg-type]


def random_condition(cfg, count: int, generator: Any = None):
    """A TextCondition of `count` random prompts: unit pooled vectors [count, text_dim] and token states
    [count, max_tokens, text_dim], zero past each prompt's length (4, 6, 8, ... real tokens, capped at
    max_tokens), as `dalle.text_encoder.fixed_length` pads them."""
    import torch

    from dalle.text_encoder import TextCondition

    pooled = torch.nn.functional.normalize(torch.randn(count, cfg.text_dim, generator=generator), dim=-1)
    lengths = torch.tensor([min(4 + 2 * i, cfg.max_tokens) for i in range(count)])
    mask = torch.arange(cfg.max_tokens)[None, :] < lengths[:, None]
    tokens = torch.randn(count, cfg.max_tokens, cfg.text_dim, generator=generator) * mask[..., None]
    return TextCondition(pooled, tokens, mask)


def make_inputs(pipe, batch: int, seed: int = 0) -> dict[str, Any]:
    """Text (a TextCondition), noise, and cached centres for a batch (prompts cycle through PROMPTS rows)."""
    import torch

    cfg = pipe.model_config
    g = torch.Generator().manual_seed(seed)
    prompts = random_condition(cfg, PROMPTS, g)
    with torch.inference_mode():
        centers = pipe.generator.mapping.conditional_center(prompts.pooled.to(pipe.device))
    rows = torch.arange(batch) % PROMPTS
    return {"text": prompts[rows].to(pipe.device), "z": torch.randn(batch, cfg.z_dim, generator=g),
            "eps": torch.randn(batch, cfg.cond_dim, generator=g), "centers": centers[rows]}


def flops_per_image(pipe) -> dict[str, float]:
    """FLOPs per image of G (mapping + synthesis, word attention included), of D (trunk + heads), and of
    one prompt's centre. FlopCounterMode counts every matmul and convolution run, so new layers count."""
    x = make_inputs(pipe, 1)
    holder: dict[str, Any] = {}

    def gen() -> None:
        holder["img"] = pipe.synthesize(x["text"], x["z"], x["eps"], 0.7, x["centers"])

    g = count_flops(gen)
    d = count_flops(lambda: pipe.score_tensor(holder["img"], x["text"]))
    c = count_flops(lambda: pipe.generator.mapping.conditional_center(x["text"].pooled))
    return {"generator": float(g), "discriminator": float(d), "center_per_prompt": float(c)}


def bench_network(pipe, which: str, batch: int, warmup: int, repeats: int) -> dict[str, Any]:
    """Seconds per call of G or D at one batch size -> ms/image and images/s statistics."""
    x = make_inputs(pipe, batch)
    imgs = pipe.synthesize(x["text"], x["z"], x["eps"], 0.7, x["centers"])
    if which == "generator":
        def fn() -> None:
            pipe.synthesize(x["text"], x["z"], x["eps"], 0.7, x["centers"])
    else:
        def fn() -> None:
            pipe.score_tensor(imgs, x["text"])
    secs = stats(time_calls(fn, warmup, repeats))
    return {"batch": batch, "s_per_call": secs, "ms_per_image": scaled(secs, 1000.0 / batch),
            "images_per_s": inverted(secs, batch)}


def profile_ops(pipe, which: str, batch: int, calls: int = 3, top: int = 6) -> dict[str, Any]:
    """torch.profiler self-CPU time by op for G or D at one batch: the share spent in convolutions
    and matmuls (compute-bound) versus everything else (elementwise, upsampling, copies)."""
    from torch.profiler import ProfilerActivity, profile

    x = make_inputs(pipe, batch)
    imgs = pipe.synthesize(x["text"], x["z"], x["eps"], 0.7, x["centers"])
    fn = ((lambda: pipe.synthesize(x["text"], x["z"], x["eps"], 0.7, x["centers"])) if which == "generator"
          else (lambda: pipe.score_tensor(imgs, x["text"])))
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    rows = [(e.key, e.self_cpu_time_total / 1000.0 / calls) for e in prof.key_averages()]
    total = sum(ms for _, ms in rows) or 1.0
    dense = sum(ms for k, ms in rows if any(t in k for t in ("conv", "addmm", "aten::mm", "bmm", "matmul", "linear")))
    rows.sort(key=lambda r: -r[1])
    return {"batch": batch, "self_cpu_ms_per_call": total, "dense_share": dense / total,
            "top_ops": [{"op": k, "ms": ms, "share": ms / total} for k, ms in rows[:top]]}


def run(checkpoint: Path, threads: int = 2, batches: tuple[int, ...] = BATCHES, warmup: int = 2,
        repeats: int = 7, matmul_n: int = 2048, matmul_repeats: int = 5, profile: bool = True) -> dict[str, Any]:
    """The whole section. Returns per-network, per-batch figures plus the same-run matmul limit."""
    import torch

    torch.set_num_threads(threads)
    pipe = load_pipeline(checkpoint)
    with LoadMeter() as load:
        before = matmul_limit("cpu", matmul_n, 1, matmul_repeats)
        flops = flops_per_image(pipe)
        results: dict[str, list[dict[str, Any]]] = {"generator": [], "discriminator": []}
        for which in results:
            for b in batches:
                # fewer timed calls for big batches: each is long, so its median is already stable
                reps = max(3, repeats if b <= 16 else (repeats + 1) // 2)
                results[which].append(bench_network(pipe, which, b, warmup, reps))
        after = matmul_limit("cpu", matmul_n, 1, matmul_repeats)
        profiles = {w: profile_ops(pipe, w, max(batches)) for w in results} if profile else {}
    limit = pooled_limit(before, after)
    peak = limit["flops"]["median"]
    for which, rows in results.items():
        for r in rows:
            achieved = inverted(r["s_per_call"], flops[which] * r["batch"])  # FLOP/s statistics
            r["flops_per_s"] = achieved
            r["fraction_of_matmul"] = scaled(achieved, 1.0 / peak)
    params = {"generator": sum(p.numel() for p in pipe.generator.parameters()),
              "discriminator": sum(p.numel() for p in pipe.discriminator.parameters())}
    return {"threads": threads, "resolution": pipe.model_config.resolution, "checkpoint": checkpoint.name,
            "params": params, "flops_per_image": flops, "matmul_limit": limit, "load": load.result, "profile": profiles, **results}
