"""Launch the playground: `python app.py` (also the Hugging Face Space entry point).

Environment: DALLE_CHECKPOINTS (checkpoints folder, default ./checkpoints next to this file),
DALLE_MAX_PIPELINES (pipelines kept loaded, default 4), GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
(default 127.0.0.1:7860; a Space sets 0.0.0.0).
"""

from __future__ import annotations

import logging
import os

# Before torch starts OpenMP: one compute thread per request, and idle OpenMP threads sleep
# instead of spinning. With torch's default (a thread per core) on a 2-core box, a spinning
# worker fights the web server and any other process for the cores, and small batches (the
# app's 4-16 images) ran 2-60x slower. Set either variable to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from demo import QUEUE_CONCURRENCY, QUEUE_MAX_SIZE, build_demo, launch_options  # noqa: E402


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    demo = build_demo()
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
    demo.launch(**launch_options())


if __name__ == "__main__":
    main()
