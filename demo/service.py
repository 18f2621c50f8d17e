"""The model service: input validation, checkpoint loading (bounded LRU) and generation.

Everything the UI or the API sends arrives here unparsed (the Gradio events run with
`preprocess=False`), so the checks below are the only gate: each raises `InputError`,
a `ValueError` subclass whose message is written for the person who sent the input.
The layout turns these into `gr.Error`.

Seeds become latents inside the pipeline (one generator per seed, so a seed gives the same
image whatever else is in the batch); prompt embeddings and truncation centres are cached
by the pipeline and its text encoder; this module adds only the pipeline LRU.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import numbers
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from dalle.checkpoint import CheckpointError, model_config, read_config
from dalle.datasets import known_kind
from dalle.device import pick_device
from dalle.pipeline import MAX_SEED, PipelineOutput, TextToImagePipeline
from dalle.prompts import spell_out_emoji
from dalle.rerank import rerank
from dalle.text_encoder import TextEncoder

from .card_tab import rerank_choice
from .devices import gpu
from .judge import EVALUATOR_FOLDER, CommonJudge, Verdict
from .registry import CheckpointInfo, PipelineCache, Scan, candidate_folders
from .results import Generation, Interpolation

log = logging.getLogger(__name__)

MAX_PROMPTS = 8
MAX_PROMPT_CHARS = 1000  # per prompt; a 1 MB paste is refused before any tokenising
TRUNCATION_RANGE = (0.0, 1.5)
MAX_IMAGES = 8
MAX_BEST_OF = 32
FRAMES_RANGE = (2, 32)
COMPARE_RANGE = (2, 4)
# A prompt whose text embedding is this far from every caption a checkpoint was trained on (cosine to the nearest
# one below this) is outside its world. Measured with all-MiniLM-L6-v2 against the 2,352 shapes captions: new
# phrasings inside the world score 0.81-1.00 ("an orange circle" 0.814, "a cyan square at the bottom" 0.831,
# "a purple triangle" 0.873, "four black squares" 0.935, "a big red circle at the top left" 0.982, "two green
# triangles" 1.000); prompts outside it 0.10-0.65 ("a photo of a dog on a beach" 0.259, "a cat" 0.262, "a sunset
# over mountains" 0.343, "a bowl of fruit" 0.412, "a red car" 0.542, "a blue bird" 0.549, "a yellow sun" 0.648).
FAR_PROMPT_COSINE = 0.73
MODES = ("prompts", "seeds", "both")


class ServiceError(ValueError):
    """A request the service cannot serve; the message is meant to be shown as is."""


class InputError(ServiceError):
    """The request itself is invalid (wrong type, out of range, unknown name...)."""


# ---------------------------------------------------------------------------- validation
def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _check_unicode(text: str, label: str) -> None:
    """Lone UTF-16 surrogates (possible in JSON) are not text the tokenizer can read."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{label} holds invalid Unicode text (a lone surrogate at character "
                         f"{e.start + 1}); retype it or remove that character.") from None


def parse_prompts(text: Any, max_prompts: int = MAX_PROMPTS) -> list[str]:
    """Split text into prompts, one per non-blank line; strips spaces; checks count and length."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(f"Prompts must be text, one prompt per line (got {_show(text)}).")
    _check_unicode(text, "The prompt text")
    if len(text) > max_prompts * (MAX_PROMPT_CHARS + 1):
        raise InputError(f"The prompt text is {len(text):,} characters long; "
                         f"each prompt may have at most {MAX_PROMPT_CHARS:,} characters.")
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise InputError("Enter a prompt (one per line), for example: a small blue square in the center.")
    if len(prompts) > max_prompts:
        raise InputError(f"At most {max_prompts} prompts, one per line (got {len(prompts)}).")
    for i, p in enumerate(prompts, 1):
        if len(p) > MAX_PROMPT_CHARS:
            raise InputError(f"Prompt {i} is {len(p):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
    return prompts


def parse_prompt(text: Any, label: str = "Prompt") -> str:
    """One prompt: line breaks become spaces; must be non-blank and within the length limit."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(f"{label} must be text (got {_show(text)}).")
    _check_unicode(text, label)
    prompt = " ".join(text.split()) if len(text) <= 4 * MAX_PROMPT_CHARS else text
    if not prompt:
        raise InputError(f"{label} is empty; enter some text.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"{label} is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
    return prompt


def _real(value: Any, name: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number (got {_show(value)}).")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{name} must be a finite number (got {value}).")
    return value


def check_int(value: Any, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]; floats such as 3.0 (what sliders send) are accepted."""
    v = _real(value, name)
    if isinstance(v, float) and not v.is_integer():
        raise InputError(f"{name} must be a whole number (got {v}).")
    if not lo <= v <= hi:
        raise InputError(f"{name} must be between {lo:,} and {hi:,} (got {_show(v, 24)}).")
    return int(v)


def check_float(value: Any, name: str, lo: float, hi: float) -> float:
    v = _real(value, name)
    if not lo <= v <= hi:
        raise InputError(f"{name} must be between {lo} and {hi} (got {_show(v, 24)}).")
    return float(v)


def check_checkpoint(value: Any, names: list[str]) -> str:
    """Only the exact names listed in the UI are accepted: never a path."""
    if not names:
        raise InputError("No checkpoint is available; see the status line for folders that failed to load.")
    if isinstance(value, str) and value in names:
        return value
    if isinstance(value, str) and any(c in value for c in "/\\") or value in (".", ".."):
        raise InputError(f"Checkpoint paths are not accepted ({_show(value)}); "
                         f"choose one of: {', '.join(names)}.")
    raise InputError(f"Unknown checkpoint {_show(value)}; choose one of: {', '.join(names)}.")


def check_checkpoints(values: Any, names: list[str], lo: int = COMPARE_RANGE[0],
                      hi: int = COMPARE_RANGE[1]) -> list[str]:
    """A list of `lo`..`hi` distinct checkpoint names, in the order given."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise InputError(f"Checkpoints must be a list of {lo} to {hi} names (got {_show(values)}).")
    picked = list(dict.fromkeys(check_checkpoint(v, names) for v in values))
    if not lo <= len(picked) <= hi:
        raise InputError(f"Pick {lo} to {hi} different checkpoints to compare (got {len(picked)}).")
    return picked


def check_mode(value: Any) -> str:
    if value not in MODES:
        raise InputError(f"Mode must be one of {', '.join(MODES)} (got {_show(value)}).")
    return value


def _one_line(e: BaseException | str | None, root: Path | None = None) -> str:
    """First line of an error message, with `root/` removed from paths when given."""
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else type(e).__name__
    return text.replace(f"{root}/", "") if root is not None else text


# ---------------------------------------------------------------------------- the service
def _core_captions(captions: list[str]) -> list[str]:
    """The captions that do not merely extend another caption after a comma ("red heart, google style" extends
    "red heart"): as near to any prompt as the full list, and a quarter of an emoji list to encode."""
    known = set(captions)
    return [c for c in captions if not any(c[:i] in known for i, ch in enumerate(c) if ch == ",")]


@functools.lru_cache(maxsize=16)
def _read_core_captions(path: str, mtime_ns: int, size: int) -> tuple[str, ...] | None:
    """`_core_captions` of a captions.json, read once per file version (mtime and size are the cache key): every
    request asks, and reading and reducing emoji-64's 24,191 captions takes about 30 ms. None when not a list of
    strings."""
    captions = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(captions, list) and captions and all(isinstance(c, str) for c in captions):
        return tuple(_core_captions(captions))
    return None


class ModelService:
    """Checkpoints from one folder, loaded on demand into a bounded LRU, and the three tasks.

    Args:
        root: the checkpoints folder (each sub-folder with a config.json is a candidate).
        capacity: how many pipelines stay loaded at once.
        device: "auto" = CUDA when present, else CPU.
        wait_for_captions: encode a checkpoint's caption list (for the far-prompt note) inside the first request
            that needs it; False (the app): encode it in the background and leave the note out until it is ready
            (emoji-64's 5,144 core captions take about 20 s on a CPU, which the first image would wait for).
    """

    def __init__(self, root: str | Path, capacity: int = 4, device: str = "auto", wait_for_captions: bool = True):
        self.root = Path(root)
        self.device = device
        self.wait_for_captions = wait_for_captions
        self._encoders: dict[str, TextEncoder] = {}
        self._encoders_lock = threading.Lock()
        self._cache = PipelineCache(self._load, capacity)
        self._captions: dict[tuple, tuple[list[str], Any] | None] = {}  # see `_caption_table`
        self._captions_lock = threading.Lock()
        self._captions_pending: set[tuple] = set()  # tables being encoded in the background
        self._run_lock = threading.Lock()  # one forward pass at a time (the pipelines' caches are not thread-safe)
        # wrapped before launch, as ZeroGPU requires
        self._generate_on_device = gpu(self._generate_here)
        self._interpolate_on_device = gpu(self._interpolate_here)
        self.judge = CommonJudge(self.root / EVALUATOR_FOLDER, self._encoder)
        self.scan = Scan(self.root)
        self.refresh()

    # ------------------------------------------------------------------ checkpoints
    def _encoder(self, name: str) -> TextEncoder:
        """One text encoder per encoder name, shared by every pipeline that uses it."""
        with self._encoders_lock:
            if name not in self._encoders:
                self._encoders[name] = TextEncoder(name, device=pick_device(self.device))
            return self._encoders[name]

    def _load(self, path: Path) -> TextToImagePipeline:
        encoder = self._encoder(model_config(read_config(path)).text_encoder)
        return TextToImagePipeline.from_pretrained(path, device=self.device, text_encoder=encoder)

    def refresh(self) -> Scan:
        """Look at the checkpoints folder again; every generator folder is loaded once to check it."""
        candidates, failed, skipped = candidate_folders(self.root)
        failed = {name: _one_line(reason, self.root) for name, reason in failed.items()}
        found: dict[str, CheckpointInfo] = {}
        for name, path in candidates.items():
            try:
                pipe = self._cache.get(path)
                found[name] = CheckpointInfo(name, path, dict(pipe.config))
            except Exception as e:  # any load failure is reported, never fatal
                failed[name] = _one_line(e, self.root)
                log.warning("checkpoint %s failed to load: %s", name, failed[name])
        self.scan = Scan(self.root, found, dict(sorted(failed.items())), skipped)
        return self.scan

    @property
    def names(self) -> list[str]:
        return self.scan.names

    def info(self, name: Any) -> CheckpointInfo:
        return self.scan.found[check_checkpoint(name, self.names)]

    def pipeline(self, name: Any) -> tuple[CheckpointInfo, TextToImagePipeline]:
        """The loaded pipeline for a listed checkpoint name (reloaded if training re-exported it)."""
        info = self.info(name)
        error: Exception | None = None
        for attempt in range(3):  # a live run may be swapping the folder for a moment
            try:
                pipe = self._cache.get(info.path)
                return CheckpointInfo(info.name, info.path, dict(pipe.config)), pipe
            except CheckpointError as e:
                error = e
                time.sleep(0.5 * (attempt + 1))
        raise ServiceError(f"Checkpoint {info.name!r} could not be loaded: {_one_line(error, self.root)}")

    # ------------------------------------------------------------------ the checkpoint's world
    @staticmethod
    def _trained_captions(info: CheckpointInfo) -> list[str] | None:
        """Every caption the checkpoint was trained on: its captions.json (training writes one with each export),
        else what the dataset registry can list without the data (shapes); None when neither can say."""
        try:
            stat = (info.path / "captions.json").stat()
            captions = _read_core_captions(str(info.path / "captions.json"), stat.st_mtime_ns, stat.st_size)
            if captions is not None:
                return list(captions)
        except (OSError, ValueError):
            pass
        dataset = info.config.get("dataset")
        kind = known_kind(dataset.get("name")) if isinstance(dataset, dict) else None
        try:
            return kind.captions(dataset) or None if kind is not None else None
        except (TypeError, ValueError, KeyError):
            return None

    def _caption_table(self, info: CheckpointInfo, pipe: TextToImagePipeline) -> tuple[list[str], Any] | None:
        """(captions, their pooled embeddings [N, D]) of the checkpoint's training captions, encoded once per
        caption list and text encoder (shapes-32 and shapes-32-early share one); None when there is no list, and,
        without `wait_for_captions`, while it is being encoded in the background."""
        captions = self._trained_captions(info)
        if not captions:
            return None
        key = (pipe.text_encoder.name, len(captions), hash(tuple(captions)))
        if not self.wait_for_captions:
            with self._captions_lock:
                if key in self._captions or key in self._captions_pending:
                    return self._captions.get(key)
                self._captions_pending.add(key)
            threading.Thread(target=self._encode_captions, args=(key, captions, pipe), daemon=True,
                             name="caption-table").start()
            return None
        with self._captions_lock:
            if key not in self._captions:
                self._captions[key] = (captions, self._encode_pooled(captions, pipe))
            return self._captions[key]

    @staticmethod
    def _encode_pooled(captions: list[str], pipe: TextToImagePipeline):
        """The pooled text embeddings [N, D] of `captions`, on the CPU, in batches of 256."""
        import torch

        return torch.cat([pipe.text_encoder.encode(captions[i:i + 256]).pooled.cpu()
                          for i in range(0, len(captions), 256)])

    def _encode_captions(self, key: tuple, captions: list[str], pipe: TextToImagePipeline) -> None:
        """The background side of `_caption_table`: encode, then publish the table."""
        try:
            table = (captions, self._encode_pooled(captions, pipe))
        except Exception as e:  # the note is a hint: a failed table means no note, as without a list
            log.warning("caption table for the far-prompt note failed: %s", e)
            table = None
        with self._captions_lock:
            self._captions[key] = table
            self._captions_pending.discard(key)

    def far_prompt_notes(self, info: CheckpointInfo, pipe: TextToImagePipeline, prompts: list[str],
                         labels: list[str]) -> list[str]:
        """One note per prompt that is far from every caption the checkpoint was trained on (text-embedding cosine
        to the nearest one below FAR_PROMPT_COSINE), naming that nearest caption; none without a caption list."""
        try:
            table = self._caption_table(info, pipe)
            if table is None:
                return []
            captions, pooled = table
            best, index = (pipe.text_encoder.embed(prompts).float() @ pooled.float().T).max(dim=1)
        except Exception as e:  # the note is a hint: never a reason to fail a request
            log.warning("far-prompt check for %s failed: %s", info.name, e)
            return []
        return [f"{label} ({p[:40]!r}{'…' if len(p) > 40 else ''}) is far from everything {info.name} was trained "
                f"on; the nearest caption it knows is {captions[i]!r} (text cosine {b:.2f}). Expect an image of "
                "that world, not of the prompt."
                for label, p, b, i in zip(labels, prompts, best.tolist(), index.tolist()) if b < FAR_PROMPT_COSINE]

    # ------------------------------------------------------------------ tasks
    # On ZeroGPU these two run in the GPU worker, so they take only a checkpoint name and plain
    # values (which are pickled across) and look the loaded pipeline up themselves.
    def _generate_here(self, name: str, prompts: list[str], seed: int, truncation: float,
                       num_images: int) -> PipelineOutput:
        """`pipe(prompts, ...)` for a listed checkpoint."""
        pipe = self.pipeline(name)[1]
        return pipe(prompts, seed=seed, truncation=truncation, num_images=num_images)

    def _interpolate_here(self, name: str, prompt_a: str, prompt_b: str, seed_a: int, seed_b: int,
                          frames: int, truncation: float) -> PipelineOutput:
        """`pipe.interpolate(...)` for a listed checkpoint."""
        pipe = self.pipeline(name)[1]
        return pipe.interpolate(prompt_a, prompt_b, seed_a, seed_b, frames=frames, truncation=truncation)

    @staticmethod
    def _warn_long(pipe: TextToImagePipeline, prompts: list[str], cut: list[bool],
                   labels: list[str] | None = None) -> list[str]:
        """One warning per prompt that the text encoder cut at its token limit."""
        limit = pipe.text_encoder.max_length
        labels = labels or [f"Prompt {i + 1}" for i in range(len(prompts))]
        return [f"{label} ({p[:40]!r}{'…' if len(p) > 40 else ''}) is longer than the text "
                f"encoder's {limit}-token limit; only its first {limit} tokens were used."
                for label, p, c in zip(labels, prompts, cut) if c]

    @staticmethod
    def _spell_out(pipe: TextToImagePipeline, prompts: list[str], labels: list[str]) -> tuple[list[str], list[str]]:
        """(what the text encoder reads: emoji spelled out, notes on what changed or is unknown to it)."""
        encoded = [spell_out_emoji(p) for p in prompts]
        notes = [f"{label}: emoji spelled out for the text encoder as {e!r}."
                 for label, p, e in zip(labels, prompts, encoded) if e != p]
        notes += [f"{label} ({p[:40]!r}) is mostly text the encoder does not know; the image may ignore it."
                  for label, p, e in zip(labels, prompts, encoded) if pipe.text_encoder.unknown_share(e) > 0.5]
        return encoded, notes

    def check_generate(self, prompts: Any, seed: Any, truncation: Any, num_images: Any, checkpoint: Any,
                       best_of: Any = 0) -> tuple[list[str], int, float, int, str, int]:
        """The arguments of `generate`, checked (InputError on the first bad one); runs no network."""
        return (parse_prompts(prompts), check_int(seed, "Seed", 0, MAX_SEED),
                check_float(truncation, "Truncation ψ", *TRUNCATION_RANGE),
                check_int(num_images, "Images per prompt", 1, MAX_IMAGES), check_checkpoint(checkpoint, self.names),
                check_int(best_of, "Best of N", 0, MAX_BEST_OF))

    def check_compare(self, prompts: Any, seed: Any, truncation: Any, num_images: Any,
                      checkpoints: Any) -> list[str]:
        """The checkpoint names of a `compare` request, after checking all its arguments."""
        names = check_checkpoints(checkpoints, self.names)
        self.check_generate(prompts, seed, truncation, num_images, names[0])
        return names

    def check_interpolate(self, prompt_a: Any, prompt_b: Any, seed_a: Any, seed_b: Any, frames: Any,
                          truncation: Any, checkpoint: Any, mode: Any = "both") -> tuple:
        """(mode, prompt A, prompt B, seed A, seed B, frames, ψ, checkpoint) of an `interpolate` request, checked."""
        mode = check_mode(mode)
        a = parse_prompt(prompt_a, "Prompt A")
        b = a if mode == "seeds" else parse_prompt(prompt_b, "Prompt B")
        sa = check_int(seed_a, "Seed A", 0, MAX_SEED)
        sb = sa if mode == "prompts" else check_int(seed_b, "Seed B", 0, MAX_SEED)
        return (mode, a, b, sa, sb, check_int(frames, "Frames", *FRAMES_RANGE),
                check_float(truncation, "Truncation ψ", *TRUNCATION_RANGE), check_checkpoint(checkpoint, self.names))

    def generate(self, prompts: Any, seed: Any, truncation: Any, num_images: Any, checkpoint: Any,
                 best_of: Any = 0) -> Generation:
        """`num_images` images per prompt from seeds seed, seed+1, ...; with best_of = N > 0,
        N (at least num_images) candidates per prompt are drawn and the top ones are kept, best first, as
        DALL-E reranked its samples, by the score that helped most in the checkpoint's evaluation
        (`rerank_choice`)."""
        prompts, seed, truncation, num_images, name, best_of = self.check_generate(
            prompts, seed, truncation, num_images, checkpoint, best_of)
        info, pipe = self.pipeline(name)
        labels = [f"Prompt {i + 1}" for i in range(len(prompts))]
        encoded, notes = self._spell_out(pipe, prompts, labels)
        notes += self.far_prompt_notes(info, pipe, encoded, labels)
        candidates = max(best_of, num_images)
        with self._run_lock:
            out = self._generate_on_device(info.name, encoded, seed, truncation, candidates)
        seeds = np.tile(np.asarray(out.seeds, dtype=np.int64), (len(prompts), 1))
        score, _ = rerank_choice(info.path)
        cols = rerank(out.realism, out.match, num_images, score) if best_of else np.tile(
            np.arange(num_images), (len(prompts), 1))
        take = np.take_along_axis
        return Generation(
            checkpoint=info.name, step=info.step, images_seen=info.images_seen, prompts=prompts,
            seeds=take(seeds, cols, 1), pixels=take(out.pixels, cols[:, :, None, None, None], 1),
            realism=take(out.realism, cols, 1), match=take(out.match, cols, 1), truncation=truncation,
            seed=seed, best_of=candidates if best_of else 0, rerank_score=score if best_of else "",
            warnings=notes + self._warn_long(pipe, prompts, out.truncated_prompts))

    def compare(self, prompts: Any, seed: Any, truncation: Any, num_images: Any,
                checkpoints: Any) -> list[Generation]:
        """The same prompts, seed and ψ through 2-4 checkpoints."""
        names = self.check_compare(prompts, seed, truncation, num_images, checkpoints)  # before any model runs
        return [self.generate(prompts, seed, truncation, num_images, name) for name in names]

    def common_judge(self, gen: Generation) -> Verdict:
        """The same judge for every checkpoint of a dataset (see `judge.CommonJudge`)."""
        return self.judge(gen, self.info(gen.checkpoint).dataset)

    def interpolate(self, prompt_a: Any, prompt_b: Any, seed_a: Any, seed_b: Any, frames: Any,
                    truncation: Any, checkpoint: Any, mode: Any = "both") -> Interpolation:
        """Walk from (prompt A, seed A) to (prompt B, seed B). mode "prompts" keeps seed A,
        "seeds" keeps prompt A, "both" moves both."""
        mode, a, b, sa, sb, frames, truncation, name = self.check_interpolate(
            prompt_a, prompt_b, seed_a, seed_b, frames, truncation, checkpoint, mode)
        info, pipe = self.pipeline(name)
        walked = [a] if a == b else [a, b]
        (ea, *eb), notes = self._spell_out(pipe, walked, ["Prompt A", "Prompt B"])
        with self._run_lock:
            out = self._interpolate_on_device(info.name, ea, eb[0] if eb else ea, sa, sb, frames, truncation)
        warnings = notes + self._warn_long(pipe, walked, [pipe.text_encoder.is_too_long(p) for p in walked],
                                           ["Prompt A", "Prompt B"])
        return Interpolation(checkpoint=info.name, step=info.step, prompts=(a, b), seeds=(sa, sb),
                             frames=out.pixels[0], realism=out.realism[0], match=out.match[0],
                             truncation=truncation, warnings=warnings)
