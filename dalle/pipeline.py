"""TextToImagePipeline: prompt -> text encoder -> mapping -> truncation -> synthesis -> image -> scores.

    pipe = TextToImagePipeline.from_pretrained("checkpoints/emoji-32")
    out = pipe(["red heart", "grinning face"], seed=0, truncation=0.7, num_images=4)
    out.images[0][3]   # PIL image of prompt 0 with seed 3
    out.realism, out.match  # [P, N] probabilities: realism from the discriminator, match from the judge
                            # (`dalle/judge.py`; the discriminator's own match head where a checkpoint has none)

Image j of every prompt uses seed `(seed + j) mod 2**31`: its noise is drawn from a generator
seeded with that number alone, so the same seed gives the same pixels whatever else is in the
batch, and every seed shown can be typed back in (seed 2**31 - 1 with 3 images: 2147483647, 0, 1).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import load_networks, save_checkpoint
from .config import ModelConfig
from .device import pick_device
from .images import grid_image, png_bytes, tensor_to_uint8, uint8_to_tensor
from .judge import HeadOnDiscriminator, Judge, load_judge, save_judge
from .models.discriminator import Discriminator
from .models.generator import Generator, truncate
from .prompts import spell_out_emoji
from .text_encoder import TextCondition, TextEncoder

MAX_SEED = 2**31 - 1  # seeds are 0 .. MAX_SEED; image j uses (seed + j) mod (MAX_SEED + 1)


def seed_latents(seeds: list[int], z_dim: int, cond_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One (z, eps) pair per seed, each from its own CPU generator: [N, z_dim], [N, cond_dim]."""
    zs, eps = [], []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        zs.append(torch.randn(z_dim, generator=g))
        eps.append(torch.randn(cond_dim, generator=g))
    return torch.stack(zs), torch.stack(eps)


@dataclass
class PipelineOutput:
    prompts: list[str]
    seeds: list[int]  # column j used seeds[j]
    pixels: np.ndarray  # uint8 [P, N, R, R, 3]
    realism: np.ndarray  # [P, N] in [0, 1]
    match: np.ndarray  # [P, N] in [0, 1]
    truncation: float
    truncated_prompts: list[bool] = field(default_factory=list)  # cut at the encoder's limit?
    checkpoint: str = ""
    step: int = 0

    @property
    def images(self) -> list[list[Image.Image]]:
        return [[Image.fromarray(a) for a in row] for row in self.pixels]

    def grid(self) -> Image.Image:
        p, n = self.pixels.shape[:2]
        return grid_image(self.pixels.reshape(p * n, *self.pixels.shape[2:]), p, n)

    def metadata(self) -> dict:
        """What the grid PNG records; "seeds" has one list per prompt row (the app's format too, where
        best-of-N gives each row its own seeds): [[s0, s1, ...], [s0, s1, ...], ...]."""
        return {"prompts": self.prompts, "seed": self.seeds[0] if self.seeds else 0,
                "seeds": [list(self.seeds) for _ in self.prompts],
                "truncation": self.truncation, "checkpoint": self.checkpoint, "step": self.step}

    def grid_png(self) -> bytes:
        """The grid as PNG bytes whose text chunks record how to reproduce it."""
        return png_bytes(self.grid(), self.metadata())


class TextToImagePipeline:
    def __init__(self, generator: Generator, discriminator: Discriminator, text_encoder: TextEncoder,
                 config: dict, device: str | torch.device = "cpu", name: str = "",
                 center_cache_size: int = 1024,
                 judge: Judge | HeadOnDiscriminator | None = None,  # the text-match judge G never trained against, if any
                 judge_record: dict | None = None):  # its judge.json
        self.device = pick_device(device)
        self.generator = generator.eval().requires_grad_(False).to(self.device)
        self.discriminator = discriminator.eval().requires_grad_(False).to(self.device)
        self.judge = None if judge is None else judge.eval().requires_grad_(False).to(self.device)
        self.judge_record = judge_record
        if self.device.type == "cpu":  # NHWC: oneDNN convolutions and bilinear upsampling skip layout copies
            for module in (self.generator, self.discriminator, self.judge):
                if module is not None:
                    module.to(memory_format=torch.channels_last)
        self.text_encoder = text_encoder
        self.config = config
        self.model_config: ModelConfig = generator.cfg
        self.name = name
        self._centers: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._center_cache_size = center_cache_size

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "auto",
                        text_encoder: TextEncoder | None = None) -> "TextToImagePipeline":
        """Load a checkpoint folder (config.json + safetensors). Raises CheckpointError with one line."""
        path = Path(path)
        config, g, d = load_networks(path)
        judge, record = load_judge(path, g.cfg) or (None, None)
        dev = pick_device(device)
        if text_encoder is None or text_encoder.name != g.cfg.text_encoder:
            text_encoder = TextEncoder(g.cfg.text_encoder, device=dev)
        return cls(g, d, text_encoder, config, dev, name=path.name, judge=judge, judge_record=record)

    def save_pretrained(self, path: str | Path) -> Path:
        out = save_checkpoint(path, {k: v for k, v in self.config.items() if k != "format_version"},
                              self.generator, self.discriminator)
        if self.judge is not None:
            save_judge(self.judge, out, self.judge_record or {})
        return out

    @property
    def match_source(self) -> str:
        """Which network gives the match score: "judge" or "discriminator" (its own match head)."""
        return "judge" if self.judge is not None else "discriminator"

    @property
    def step(self) -> int:
        return int(self.config.get("step", 0))

    # ------------------------------------------------------------------ building blocks
    def encode(self, prompts: list[str]) -> TextCondition:
        """Sentence embeddings and word states of P prompts on the pipeline's device (LRU-cached). Emoji are
        spelled out first, as the captions spell them (`spell_out_emoji`: "❤️" reads as "red heart")."""
        spelled = [spell_out_emoji(p) for p in prompts]
        return self.text_encoder.condition(spelled, self.model_config.max_tokens).to(self.device)

    def conditional_centers(self, prompts: list[str], text: TextCondition) -> torch.Tensor:
        """w_avg per prompt [P, w_dim], cached by prompt; missing ones are computed in one call."""
        missing = [i for i, p in enumerate(prompts) if p not in self._centers]
        if missing:
            new = self.generator.mapping.conditional_center(self.generator.sentence(text[missing]))
            for i, c in zip(missing, new):
                self._centers[prompts[i]] = c
        out = torch.stack([self._centers[p] for p in prompts])
        for p in prompts:
            self._centers.move_to_end(p)
        while len(self._centers) > self._center_cache_size:
            self._centers.popitem(last=False)
        return out

    @torch.inference_mode()
    def synthesize(self, text: TextCondition, z: torch.Tensor, eps: torch.Tensor, truncation: float,
                   centers: torch.Tensor | None) -> torch.Tensor:
        """text (B prompts), z [B, z_dim], eps [B, cond_dim], centers [B, w_dim] -> images [B, 3, R, R] in [-1, 1]."""
        w, _ = self.generator.mapping(z.to(self.device), self.generator.sentence(text), eps.to(self.device))
        if truncation != 1.0 and centers is not None:
            w = truncate(w, centers, truncation)
        return self.generator.synthesis(w, text).clamp(-1, 1)

    @torch.inference_mode()
    def score_tensor(self, images: torch.Tensor, text: TextCondition) -> tuple[np.ndarray, np.ndarray]:
        """images [B, 3, R, R] in [-1, 1], text (B prompts) -> (realism [B] from the discriminator, match [B] from
        the judge where there is one, else from the discriminator's own match head), probabilities."""
        images = images.clamp(-1, 1)
        regions = self.discriminator.features(images)
        realism, match = self.discriminator.heads(regions, text)
        if isinstance(self.judge, HeadOnDiscriminator):  # its trunk is D's: one pass serves both
            match = self.judge.match(regions, text)
        elif self.judge is not None:
            match = self.judge(images, text)
        return torch.sigmoid(realism).float().cpu().numpy(), torch.sigmoid(match).float().cpu().numpy()

    @torch.inference_mode()
    def discriminator_match(self, images: torch.Tensor, text: TextCondition) -> np.ndarray:
        """The discriminator's own (adversarial) match head, [B] probabilities: G trained against it."""
        return self.discriminator.score(images, text)["match"].float().cpu().numpy()

    def score(self, images: list[Image.Image] | torch.Tensor, prompts: list[str]) -> dict[str, np.ndarray]:
        """Probabilities for (image, prompt) pairs: {"realism": [B], "match": [B]} (`score_tensor`)."""
        if not isinstance(images, torch.Tensor):
            r = self.model_config.resolution
            arr = np.stack([np.asarray(im.convert("RGB").resize((r, r), Image.Resampling.LANCZOS)) for im in images])
            images = uint8_to_tensor(arr)
        realism, match = self.score_tensor(images.to(self.device), self.encode(prompts))
        return {"realism": realism, "match": match}

    # ------------------------------------------------------------------ the call
    @torch.inference_mode()
    def __call__(self, prompts: str | list[str], seed: int = 0, truncation: float = 0.7, num_images: int = 4,
                 batch_size: int = 64) -> PipelineOutput:
        """Generate `num_images` per prompt. Returns pixels [P, N, R, R, 3] and scores [P, N]."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("no prompts given")
        blank = [i + 1 for i, p in enumerate(prompts) if not p.strip()]
        if blank:
            raise ValueError(f"prompt {blank[0]} of {len(prompts)} is empty: write what the image should show")
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED}")
        if num_images < 1:
            raise ValueError(f"num_images must be at least 1, got {num_images}")
        if not math.isfinite(truncation):
            raise ValueError(f"truncation must be a number (0 = the prompt's centre, 1 = no truncation), got {truncation}")
        seeds = [(seed + j) % (MAX_SEED + 1) for j in range(num_images)]
        text = self.encode(prompts)
        centers = self.conditional_centers(prompts, text) if truncation != 1.0 else None
        z, eps = seed_latents(seeds, self.model_config.z_dim, self.model_config.cond_dim)
        # Row-major (prompt, seed) pairs, processed in fixed-size batches.
        pi = torch.arange(len(prompts)).repeat_interleave(num_images)
        si = torch.arange(num_images).repeat(len(prompts))
        pixels, realism, match = [], [], []
        for k in range(0, len(pi), batch_size):
            p, s = pi[k:k + batch_size], si[k:k + batch_size]
            t = text[p.to(self.device)]
            imgs = self.synthesize(t, z[s], eps[s], truncation, None if centers is None else centers[p.to(self.device)])
            r, m = self.score_tensor(imgs, t)
            pixels.append(tensor_to_uint8(imgs))
            realism.append(r)
            match.append(m)
        res = self.model_config.resolution
        shape = (len(prompts), num_images)
        return PipelineOutput(
            prompts=prompts, seeds=seeds, truncation=float(truncation),
            pixels=np.concatenate(pixels).reshape(*shape, res, res, 3),
            realism=np.concatenate(realism).reshape(shape), match=np.concatenate(match).reshape(shape),
            truncated_prompts=[self.text_encoder.is_too_long(spell_out_emoji(p)) for p in prompts],
            checkpoint=self.name, step=self.step)

    @torch.inference_mode()
    def interpolate(self, prompt_a: str, prompt_b: str, seed_a: int, seed_b: int, frames: int = 8,
                    truncation: float = 0.7) -> PipelineOutput:
        """A walk from (prompt_a, seed_a) to (prompt_b, seed_b): text embeddings and centres are
        lerped, noise is slerped. Returns one row of `frames` images."""
        t = torch.linspace(0, 1, frames, device=self.device)[:, None]
        text2 = self.encode([prompt_a, prompt_b])
        centers2 = self.conditional_centers([prompt_a, prompt_b], text2)
        text = text2[:1].lerp(text2[1:], t)
        centers = centers2[0].lerp(centers2[1], t)
        (za, zb), (ea, eb) = seed_latents([seed_a, seed_b], self.model_config.z_dim, self.model_config.cond_dim)
        z = slerp(za, zb, t.cpu())
        eps = slerp(ea, eb, t.cpu())
        imgs = self.synthesize(text, z, eps, truncation, centers)
        r, m = self.score_tensor(imgs, text)
        label = prompt_a if prompt_a == prompt_b else f"{prompt_a} -> {prompt_b}"
        return PipelineOutput(prompts=[label], seeds=[seed_a, seed_b], truncation=float(truncation),
                              pixels=tensor_to_uint8(imgs)[None], realism=r[None], match=m[None],
                              checkpoint=self.name, step=self.step)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between vectors a, b [D] at t [F, 1] -> [F, D]."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos((an * bn).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
