"""Launch the playground: `python app.py` (also the Hugging Face Space entry point).

Environment: DALLE_CHECKPOINTS (checkpoints folder, default ./checkpoints next to this file),
DALLE_MAX_PIPELINES (pipelines kept loaded, default 4), GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
(default 127.0.0.1:7860; a Space sets 0.0.0.0).
"""

from __future__ import annotations

import logging

from demo import QUEUE_CONCURRENCY, QUEUE_MAX_SIZE, build_demo, launch_options


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    demo = build_demo()
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
    demo.launch(**launch_options())


if __name__ == "__main__":
    main()
