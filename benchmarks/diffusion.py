"""The reference point: a diffusers UNet2DModel with random weights, with about as many parameters
as our generator (~2M), sampling 32 px images (the shipped checkpoints' resolution) with a 50-step
DDIM scheduler loop, timed per image in the same process and on the same threads as the GAN.

The UNet is a small DDPM-style one: four resolutions (32, 16, 8, 4 px), one ResNet layer per
block, self-attention at 8 px. Its parameter count is of the generator's order, not its FLOPs:
a UNet runs every layer on every one of its steps, which is the point of the comparison. The
report gives both networks' parameters and FLOPs per image next to the speed ratio.
"""

from __future__ import annotations

from typing import Any

from .common import LoadMeter, count_flops, inverted, matmul_limit, pooled_limit, scaled, stats, time_calls

UNET_CONFIG: dict[str, Any] = {
    "sample_size": 32, "in_channels": 3, "out_channels": 3, "layers_per_block": 1,
    "block_out_channels": (32, 48, 64, 96),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    "norm_num_groups": 16, "attention_head_dim": 32,
}
TINY_UNET_CONFIG: dict[str, Any] = {  # smoke tests: same block kinds, 16 px, a few thousand weights
    **UNET_CONFIG, "sample_size": 16, "block_out_channels": (8, 8, 16, 16), "norm_num_groups": 4,
    "attention_head_dim": 8,
}


def build(config: dict[str, Any] | None = None, seed: int = 0):
    """(unet, scheduler): random-weight UNet2DModel in eval mode and a DDIM scheduler."""
    import torch
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(**(config or UNET_CONFIG)).eval().requires_grad_(False)
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    return unet, scheduler


def sample(unet, scheduler, batch: int, steps: int, seed: int = 0):
    """One full reverse-diffusion loop: noise -> `steps` UNet calls + scheduler steps -> images."""
    import torch

    size = unet.config.sample_size
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, unet.config.in_channels, size, size, generator=g)
    scheduler.set_timesteps(steps)
    with torch.inference_mode():
        for t in scheduler.timesteps:
            eps = unet(x, t).sample
            x = scheduler.step(eps, t, x).prev_sample
    return x.clamp(-1, 1)


def run(batches: tuple[int, ...] = (1, 4), steps: int = 50, threads: int = 2, warmup: int = 1, repeats: int = 3,
        config: dict[str, Any] | None = None, matmul_n: int = 2048, matmul_repeats: int = 3) -> dict[str, Any]:
    """Seconds per image of the 50-step loop at each batch size, FLOPs per image, params, matmul limit."""
    import torch

    torch.set_num_threads(threads)
    unet, scheduler = build(config)
    size = unet.config.sample_size
    x1 = torch.randn(1, unet.config.in_channels, size, size)
    step_flops = count_flops(lambda: unet(x1, torch.tensor(500)).sample)
    rows = []
    with LoadMeter() as load:
        before = matmul_limit("cpu", matmul_n, 1, matmul_repeats)
        for b in batches:
            # warm-up: a short loop at this batch size (allocations, oneDNN primitives)
            for _ in range(warmup):
                sample(unet, scheduler, b, min(steps, 3))
            secs = stats(time_calls(lambda: sample(unet, scheduler, b, steps), 0, repeats))
            rows.append({"batch": b, "s_per_call": secs, "s_per_image": scaled(secs, 1.0 / b),
                         "images_per_s": inverted(secs, b)})
        after = matmul_limit("cpu", matmul_n, 1, matmul_repeats)
    limit = pooled_limit(before, after)
    flops_img = float(step_flops * steps)
    for r in rows:
        r["flops_per_s"] = inverted(r["s_per_call"], flops_img * r["batch"])
        r["fraction_of_matmul"] = scaled(r["flops_per_s"], 1.0 / limit["flops"]["median"])
    return {"model": "diffusers.UNet2DModel (random weights) + DDIMScheduler", "config": _jsonable(config or UNET_CONFIG),
            "params": sum(p.numel() for p in unet.parameters()), "steps": steps, "threads": threads,
            "resolution": size, "flops_per_step": float(step_flops), "flops_per_image": flops_img,
            "matmul_limit": limit, "load": load.result, "batches": rows}


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
