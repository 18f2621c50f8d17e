"""GPU: generator images/s at batch 1 and 1024 in bf16, and MFU against the bf16 matmul FLOP/s
measured in the same process. Without CUDA it returns {"available": False, "note": "no GPU in this run"}.

bf16 here means the weights and activations are cast to bfloat16 (`.to(torch.bfloat16)`), not
autocast, so every matmul and convolution runs on the tensor cores; the FLOPs per image are the
same count as on CPU (FlopCounterMode on the fp32 graph).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import LoadMeter, inverted, matmul_limit, pooled_limit, scaled, stats, time_calls

NO_GPU = "no GPU in this run"


def available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken CUDA install counts as no GPU
        return False


def run(checkpoint: Path, batches: tuple[int, ...] = (1, 1024), warmup: int = 3, repeats: int = 10,
        matmul_n: int = 8192, force_cpu_for_test: bool = False) -> dict[str, Any]:
    """bf16 G (mapping + truncation + synthesis) and D throughput on CUDA; a note when there is no GPU.

    `force_cpu_for_test` runs the same code path on CPU in bf16 (smoke tests only: numbers, not speed).
    """
    if not available() and not force_cpu_for_test:
        return {"available": False, "note": NO_GPU}
    import torch

    from .models import flops_per_image, load_pipeline, make_inputs

    device = "cpu" if force_cpu_for_test else "cuda"
    sync = torch.cuda.synchronize if device == "cuda" else None
    pipe = load_pipeline(checkpoint, device="cpu")
    flops = flops_per_image(pipe)  # counted on the fp32 CPU graph: the same ops run on the GPU
    inputs = {b: make_inputs(pipe, b) for b in batches}  # text (TextCondition), noise, centres (fp32, CPU)
    pipe.generator.to(device=device, dtype=torch.bfloat16)
    pipe.discriminator.to(device=device, dtype=torch.bfloat16)
    pipe.device = torch.device(device)
    rows: dict[str, list[dict[str, Any]]] = {"generator": [], "discriminator": []}
    with LoadMeter() as load:
        before = matmul_limit(device, matmul_n, 2, 5, torch.bfloat16)
        for b in batches:
            # tensors and the TextCondition alike: floats to bf16 on the device (its bool mask keeps its dtype)
            x = {k: v.to(device, torch.bfloat16) for k, v in inputs[b].items()}

            def gen() -> Any:
                return pipe.synthesize(x["text"], x["z"], x["eps"], 0.7, x["centers"])

            imgs = gen()
            for which, fn in (("generator", gen), ("discriminator", lambda: pipe.score_tensor(imgs, x["text"]))):
                secs = stats(time_calls(fn, warmup, repeats, sync))
                rows[which].append({"batch": b, "s_per_call": secs, "ms_per_image": scaled(secs, 1000.0 / b),
                                    "images_per_s": inverted(secs, b)})
        after = matmul_limit(device, matmul_n, 1, 5, torch.bfloat16)
    limit = pooled_limit(before, after)
    for which, rs in rows.items():
        for r in rs:
            r["flops_per_s"] = inverted(r["s_per_call"], flops[which] * r["batch"])
            r["mfu"] = scaled(r["flops_per_s"], 1.0 / limit["flops"]["median"])
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke test)"
    return {"available": True, "device": name, "dtype": "bfloat16", "flops_per_image": flops,
            "matmul_limit": limit, "load": load.result, **rows}
