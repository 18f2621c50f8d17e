"""Benchmarks for the text-to-image GAN playground: `python -m benchmarks.run [--quick] [--out DIR]`.

Modules, one measurement each:
    common      timing statistics, the in-process matmul limit, FLOP counting, load, checkpoints
    models      generator / discriminator on CPU: ms per image, images/s, FLOP/s vs matmul FLOP/s
    e2e         the app end to end: `python app.py` + gradio_client (latency, cold start, peak RSS)
    diffusion   a diffusers UNet2DModel + DDIM 50-step loop of comparable size (the reference point)
    gpu         bf16 images/s and MFU on CUDA when present ("no GPU in this run" otherwise)
    stages      where a warm `generate` spends its time on the server, stage by stage
    report      the targets table (markdown), JSON, and the plots
    run         the command line that runs them all

Every timed figure is the median of several runs after a warm-up, reported with min and max.
"""
