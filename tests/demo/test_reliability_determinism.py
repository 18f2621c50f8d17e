"""Determinism of the running app.

* Two separate server processes (the session app of conftest.py and a second `python app.py`
  on another port, same checkpoints) give byte-identical grid PNGs (with their metadata) for
  the same prompts, seed, ψ and checkpoint.
* Concurrent requests with different seeds, prompts, ψ and checkpoints do not leak RNG state
  into each other: each equals the same request made alone.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from gradio_client import Client
from test_reliability_support import AppProcess

REQUESTS = [  # prompts, seed, psi, images per prompt, checkpoint, best of N
    ("a large red circle at the top left\ntwo green triangles", 123, 0.7, 3, "shapes-32", 0),
    ("a small blue square in the center", 0, 1.0, 2, "shapes-32", 0),
    ("red heart\ngrinning face", 2**31 - 9, 0.5, 4, "emoji-32", 0),
    ("a yellow triangle at the bottom right", 77, 1.5, 1, "shapes-32", 6),
    ("❤️ red heart", 5, 0.0, 2, "emoji-32", 0),
    ("three blue circles", 40_000, 0.7, 8, "shapes-32", 0),
    ("smiling face with sunglasses", 31337, 0.9, 1, "emoji-32", 4),
    ("a green circle left of a black square", 999_999, 0.3, 2, "shapes-32", 0),
]


def fingerprint(result: tuple) -> dict[str, str]:
    """sha256 of the grid PNG (every image, with its metadata), the score table and the notes."""
    png, table, notes = result
    return {"png": hashlib.sha256(Path(png).read_bytes()).hexdigest(), "table": repr(table["data"]), "notes": notes}


_clients = threading.local()


def generate(url: str, args: tuple) -> dict[str, str]:
    """One request through this thread's own gradio_client Client for `url`."""
    cache = _clients.__dict__.setdefault("by_url", {})
    if url not in cache:
        cache[url] = Client(url, verbose=False)
    return fingerprint(cache[url].predict(*args, api_name="/generate"))


@pytest.fixture(scope="session")
def second_app(checkpoints_dir: Path, tmp_path_factory) -> Iterator[AppProcess]:
    """Started, not awaited: listed before `app_url`, it boots while the session app does."""
    app = AppProcess(checkpoints_dir, tmp_path_factory.mktemp("second-app"))
    try:
        yield app
    finally:
        app.stop()


@pytest.mark.parametrize("args", REQUESTS[:4], ids=[f"seed{r[1]}-{r[4]}" for r in REQUESTS[:4]])
def test_same_request_same_png_in_two_processes(second_app: AppProcess, app_url: str, args: tuple) -> None:
    second_app.wait_ready()
    assert app_url != second_app.url
    first, second = generate(app_url, args), generate(second_app.url, args)
    assert first == second


def test_concurrent_requests_do_not_share_rng_state(app_url: str) -> None:
    alone = [generate(app_url, args) for args in REQUESTS]
    assert len({a["png"] for a in alone}) == len(REQUESTS)  # different requests, different images
    with ThreadPoolExecutor(len(REQUESTS)) as pool:
        for round_ in range(2):  # twice, in opposite submission orders
            order = REQUESTS if round_ == 0 else REQUESTS[::-1]
            together = list(pool.map(lambda a: generate(app_url, a), order))
            if round_:
                together = together[::-1]
            for args, a, b in zip(REQUESTS, alone, together):
                assert a == b, f"seed {args[1]} on {args[4]} differs when run concurrently"


def test_a_prompt_embeds_the_same_whatever_came_before() -> None:
    """Padding in a batch changes float rounding; the app's embeddings must depend on the prompt alone."""
    from dalle.text_encoder import TextEncoder

    fresh, warmed = TextEncoder(cache_size=8), TextEncoder(cache_size=8)
    warmed.embed(["red heart", "a much longer prompt that forces padding on the shorter one in its batch"])
    alone = fresh.embed(["grinning face", "red heart"])
    after = warmed.embed(["grinning face", "red heart"])
    assert torch.equal(alone, after)
    # the word states G attends to, too
    warmed.condition(["red heart", "a much longer prompt that forces padding on the shorter one in its batch"], 24)
    alone_c = fresh.condition(["grinning face", "red heart"], 24)
    after_c = warmed.condition(["grinning face", "red heart"], 24)
    assert torch.equal(alone_c.pooled, after_c.pooled) and torch.equal(alone_c.pooled, alone)
    assert torch.equal(alone_c.tokens, after_c.tokens) and torch.equal(alone_c.mask, after_c.mask)


def test_a_prompt_centre_is_the_same_whatever_came_before(checkpoints_dir: Path) -> None:
    """Batch shape changes float rounding; a cached truncation centre must depend on its prompt alone."""
    from dalle.pipeline import TextToImagePipeline

    first = TextToImagePipeline.from_pretrained(checkpoints_dir / "emoji-32", device="cpu")
    second = TextToImagePipeline.from_pretrained(checkpoints_dir / "emoji-32", device="cpu",
                                                 text_encoder=first.text_encoder)
    prompts = ["red heart", "grinning face"]
    text = first.encode(prompts)
    together = first.conditional_centers(prompts, text)
    alone = second.conditional_centers(prompts[1:], text[1:])
    assert torch.equal(together[1], alone[0])
