"""The text-match judge: how well an image shows its prompt, scored by a network the generator never trains against.

G learns from the discriminator's match head whatever pleases that head, right or wrong, so the head cannot
also be an honest judge of G's images. A judge is trained on the dataset's real images alone
(`dalle/training/judge.py`): the own caption is a match; another caption, a near miss, and an image the dataset
draws to come close to the caption without showing it (emoji: another label that shares a word; the shapes world: a
faint extra shape, a missing or an extra object) are not. It never sees a generated image and no gradient of it
reaches G. It comes in two kinds, with one interface (`features`, `match`, `match_matrix`, `score`):

- `Judge`, a small image/text network of its own: a convolutional image tower and a projection of the prompt meet
  in one L2-normalised space, and the match logit is their scaled cosine plus a bias;
- `HeadOnDiscriminator`, a fresh match head on the checkpoint's discriminator trunk, kept frozen: that trunk has seen
  G's images, so it can see what G gets wrong, while the head on it was never something G could please.

Which kind a dataset gets is measured (docs/recipe.md, "The text-match judge"). The checkpoint folder keeps it as
`judge.safetensors` (fp16; a head-on-discriminator judge keeps only its head) with `judge.json` (how it was
trained, and an own judge's architecture under "config").

    python -m dalle train-judge checkpoints/shapes-32
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import CheckpointError, half_state, load_checked, load_tensors, refuse_pickles, save_tensors
from .config import ModelConfig
from .models.discriminator import Discriminator
from .models.word_order import WordOrder
from .text_encoder import TextCondition

JUDGE_FILE, JUDGE_RECORD = "judge", "judge.json"  # <folder>/judge.safetensors and its record
DISCRIMINATOR_TRUNK = "the checkpoint's discriminator, frozen"  # judge.json's "trunk" of a HeadOnDiscriminator


def tower_widths(resolution: int) -> tuple[int, ...]:
    """Stem width, then one stride-2 stage per entry down to 4x4, doubling to 256: 64 px -> (16, 32, 64, 128, 256)."""
    stages = int(math.log2(resolution // 4))
    return tuple(max(16, 256 >> (stages - i)) for i in range(stages + 1))


@dataclass
class JudgeConfig:
    resolution: int  # input side: the checkpoint's images
    text_dim: int = 384  # width of the text encoder's states
    widths: tuple[int, ...] = ()  # image tower: stem width, then one stride-2 stage each; () = tower_widths
    embed_dim: int = 128  # width of the shared image/text space
    text_hidden: int = 256  # hidden width of the text projection
    word_order_tokens: int = 0  # > 0: read the prompt as the word-order code of this many tokens (relations,
    # colours bound to shapes); 0: the pooled sentence, which cannot tell "a left of b" from "b left of a"
    word_order_dim: int = 16  # main directions kept per token of that code

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths) or tower_widths(self.resolution)
        if self.resolution >> (len(self.widths) - 1) < 1:
            raise ValueError(f"judge: {len(self.widths) - 1} stride-2 stages do not fit {self.resolution} px")

    @classmethod
    def for_model(cls, cfg: ModelConfig) -> "JudgeConfig":
        """The judge for a checkpoint's model: its resolution and text encoder, word order where its D reads it."""
        return cls(resolution=cfg.resolution, text_dim=cfg.text_dim,
                   word_order_tokens=cfg.word_order_tokens if cfg.d_word_order else 0,
                   word_order_dim=cfg.word_order_dim)

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}


def _conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU()]


class Judge(nn.Module):
    """(images [B, 3, R, R] in [-1, 1], prompts) -> match logits [B]."""

    def __init__(self, cfg: JudgeConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        layers = _conv(3, w[0], 1)  # full resolution: small details (a ghost, a face) stay visible
        for i, (cin, cout) in enumerate(zip(w[:-1], w[1:])):
            layers += _conv(cin, cout, 2)
            if i < len(w) - 2:
                layers += _conv(cout, cout, 1)
        self.image_tower = nn.Sequential(*layers)
        self.image_proj = nn.Linear(w[-1], cfg.embed_dim)
        self.word_order = (WordOrder(cfg.text_dim, cfg.word_order_tokens, cfg.word_order_dim)
                           if cfg.word_order_tokens else None)
        sentence_dim = self.word_order.out_dim if self.word_order is not None else cfg.text_dim
        self.text_proj = nn.Sequential(nn.Linear(sentence_dim, cfg.text_hidden), nn.GELU(),
                                       nn.Linear(cfg.text_hidden, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))  # cosine -> logit, learned
        self.bias = nn.Parameter(torch.tensor(-3.0))  # most pairs of a batch are not matches

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, R, R] in [-1, 1] -> L2-normalised [B, embed_dim]."""
        if images.shape[-1] != self.cfg.resolution:
            raise ValueError(f"the judge reads {self.cfg.resolution} px images, got {images.shape[-1]} px")
        return F.normalize(self.image_proj(self.image_tower(images).mean(dim=(2, 3))), dim=-1)

    def embed_text(self, text: TextCondition) -> torch.Tensor:
        """text (B prompts) -> L2-normalised [B, embed_dim]."""
        sentence = self.word_order(text) if self.word_order is not None else text.pooled.float()
        return F.normalize(self.text_proj(sentence), dim=-1)

    def match(self, features: torch.Tensor, text: TextCondition) -> torch.Tensor:
        """Image embeddings [B, E] and B prompts -> match logits [B]."""
        return (features * self.embed_text(text)).sum(-1) * self.logit_scale.exp() + self.bias

    def match_matrix(self, features: torch.Tensor, text: TextCondition) -> torch.Tensor:
        """Image embeddings [Bi, E] and Bt prompts -> logits of every image with every prompt [Bi, Bt], bias left
        out."""
        return features @ self.embed_text(text).T * self.logit_scale.exp()

    def forward(self, images: torch.Tensor, text: TextCondition) -> torch.Tensor:
        return self.match(self.features(images), text)

    @torch.inference_mode()
    def score(self, images: torch.Tensor, text: TextCondition) -> torch.Tensor:
        """Match probabilities [B] of images [B, 3, R, R] in [-1, 1] with their prompts."""
        return torch.sigmoid(self(images.clamp(-1, 1), text))


class HeadOnDiscriminator(nn.Module):
    """A fresh match head on the checkpoint's discriminator trunk (frozen): (images, prompts) -> match logits [B].
    Only the match logit of its `Discriminator` is used."""

    TRUNK = ("from_rgb.", "blocks.")  # the parameters of D's trunk (images -> 4x4 region map)

    def __init__(self, model_cfg: ModelConfig,  # the checkpoint's model: the trunk's shape and the match head's
                 discriminator: Discriminator | None = None):  # whose trunk to keep; None: loaded later
        super().__init__()
        self.net = Discriminator(model_cfg)
        if discriminator is not None:
            self.net.load_state_dict(self.trunk_of(discriminator.state_dict()), strict=False)
        for name, p in self.net.named_parameters():
            p.requires_grad_(not name.startswith(self.TRUNK))

    @classmethod
    def trunk_of(cls, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in tensors.items() if k.startswith(cls.TRUNK)}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, R, R] in [-1, 1] -> D's 4x4 region map [B, C, 4, 4]."""
        return self.net.features(images)

    def match(self, features: torch.Tensor, text: TextCondition) -> torch.Tensor:
        return self.net.heads(features, text)[1]

    def match_matrix(self, features: torch.Tensor, text: TextCondition) -> torch.Tensor:
        return self.net.match_matrix(features, text)

    def forward(self, images: torch.Tensor, text: TextCondition) -> torch.Tensor:
        return self.match(self.features(images), text)

    score = Judge.score


def save_judge(judge: Judge | HeadOnDiscriminator, folder: str | Path, record: dict) -> None:
    """Write `judge.safetensors` (fp16) and `judge.json`: the record, with an own judge's architecture under
    "config"; a head-on-discriminator judge keeps only its head (the trunk is the folder's discriminator's)."""
    folder = Path(folder)
    if isinstance(judge, Judge):
        tensors, record = half_state(judge), {**record, "config": judge.cfg.to_dict()}
    else:
        tensors = {k: v for k, v in half_state(judge.net).items() if not k.startswith(judge.TRUNK)}
        record = {**record, "trunk": DISCRIMINATOR_TRUNK}
    save_tensors(tensors, folder, JUDGE_FILE)
    (folder / JUDGE_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def load_judge(folder: str | Path, model_cfg: ModelConfig) -> tuple[Judge | HeadOnDiscriminator, dict] | None:
    """(the folder's judge, its record), or None when the folder has none. Safetensors and JSON only.
    `model_cfg`: the folder's model (a head-on-discriminator judge is built on its discriminator)."""
    folder = Path(folder)
    if not (folder / f"{JUDGE_FILE}.safetensors").exists():
        return None
    refuse_pickles(folder)
    try:
        record = json.loads((folder / JUDGE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder / JUDGE_RECORD}: missing or not JSON ({e})") from None
    tensors = load_tensors(folder, JUDGE_FILE)
    if "config" in record:
        try:
            judge = Judge(JudgeConfig(**record["config"]))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{folder / JUDGE_RECORD}: not a judge architecture ({e})") from None
    elif record.get("trunk") == DISCRIMINATOR_TRUNK:
        judge = HeadOnDiscriminator(model_cfg)
        trunk = HeadOnDiscriminator.trunk_of(load_tensors(folder, "discriminator"))
        tensors = {"net." + k: v for k, v in {**trunk, **tensors}.items()}
    else:
        raise CheckpointError(f"{folder / JUDGE_RECORD}: neither an own judge (\"config\") nor a head on the "
                              f"discriminator (\"trunk\": \"{DISCRIMINATOR_TRUNK}\")")
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    load_checked(judge, tensors, folder / f"{JUDGE_FILE}.safetensors")
    return judge.eval().requires_grad_(False), record
