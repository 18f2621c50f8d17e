"""Where the networks run: CUDA when present (pipelines load with device="auto"), and
ZeroGPU on Hugging Face Spaces when the `spaces` package is importable.

On ZeroGPU, a function wrapped with `spaces.GPU` runs in a forked worker that holds a GPU
for the duration of the call; its arguments and result are pickled across. The service
therefore wraps a method that receives only a checkpoint name and plain values, and finds
the (already loaded) pipeline itself. Everywhere else `gpu` returns the function unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

GPU_SECONDS = 60  # what ZeroGPU reserves per call; an 8 x 32 batch of 64px images needs far less


def gpu(fn: F) -> F:
    """`spaces.GPU(duration=GPU_SECONDS)(fn)` when `spaces` is installed, else `fn` itself."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(duration=GPU_SECONDS)(fn)
