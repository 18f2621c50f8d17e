"""Launch the playground: `python app.py [--host H] [--port P] [--checkpoints DIR]` (also the Space entry point).

Flags win over the environment: DALLE_CHECKPOINTS (checkpoints folder, default ./checkpoints next to
this file), DALLE_MAX_PIPELINES (pipelines kept loaded, default 4), GRADIO_SERVER_NAME /
GRADIO_SERVER_PORT (default 127.0.0.1:7860; a Space sets 0.0.0.0).
"""

from __future__ import annotations

import argparse
import logging
import os

# Before torch starts OpenMP: one compute thread per request, and idle OpenMP threads sleep
# instead of spinning. With torch's default (a thread per core) on a 2-core box, a spinning
# worker fights the web server and any other process for the cores, and small batches (the
# app's 4-16 images) ran 2-60x slower. Set either variable to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from demo import QUEUE_CONCURRENCY, QUEUE_MAX_SIZE, build_demo, launch_options  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The text-to-image GAN playground.")
    parser.add_argument("--host", default=None, help="address to serve on (default $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--checkpoints", default=None,
                        help="folder of checkpoint folders (default $DALLE_CHECKPOINTS or ./checkpoints)")
    return parser.parse_args(argv)  # an unknown flag is an error, not silently ignored


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    demo = build_demo(args.checkpoints)
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
    options = launch_options()
    options.update({k: v for k, v in (("server_name", args.host), ("server_port", args.port)) if v is not None})
    demo.launch(**options)


if __name__ == "__main__":
    main()
