"""A small contrastive image/text evaluator for the emoji dataset.

The image tower is a small CNN (~0.6M parameters) that reads 64px images at full resolution
(a stride-1 stem; smaller images are upsampled to 64px first, so a 32px checkpoint is judged
against the crisp 64px data); the text side is the FROZEN text encoder's pooled embedding (the
same one the GAN is conditioned on) followed by a learned two-layer projection. Both map into
one L2-normalised space of `embed_dim` dimensions and are trained with a symmetric InfoNCE loss
on the real emoji data only (see `train_evaluator.py`).

That shared space is used for every learned emoji metric: R-precision (cosine
between an image and candidate captions), FID/KID (image embeddings as the feature
space), memorisation (nearest training image) and diversity (pairwise distances).

A shipped evaluator is a folder with `config.json` (`"kind": "evaluator"`) and
`evaluator.safetensors`. Loading reads only those two files (no pickle).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EVALUATOR_KIND = "evaluator"
EVALUATOR_VERSION = 2  # 2: architecture.stem / stage_convs / last_stage_convs (absent in 1: LEGACY_ARCH)
WEIGHTS_FILE = "evaluator.safetensors"
CONFIG_FILE = "config.json"
MAX_WEIGHTS_BYTES = 16 * 1024 * 1024


class EvaluatorError(FileNotFoundError):
    """The evaluator folder is missing or unusable; the message is one line."""


# What a version-1 config.json (no such keys) meant: the 4x4 stride-2 stem, one extra conv per stage but the last.
LEGACY_ARCH = {"stem": "conv4x4/2", "stage_convs": 1, "last_stage_convs": 0}
STEMS = ("conv3x3/1", "conv4x4/2")


@dataclass
class EvaluatorArch:
    resolution: int = 64  # input side; other sizes are resized to this (bilinear, antialiased when shrinking)
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)  # stem width, then one stride-2 stage per entry after it
    embed_dim: int = 128  # width of the shared image/text space
    text_dim: int = 384  # pooled text-encoder width
    text_hidden: int = 256  # hidden width of the text projection MLP
    stem: str = "conv3x3/1"  # "conv3x3/1": the stem keeps the full input resolution; "conv4x4/2": halves it
    stage_convs: int = 1  # stride-1 3x3 convs after each stage's stride-2 conv ...
    last_stage_convs: int = 0  # ... except the last stage, which has this many

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)
        if self.stem not in STEMS:
            raise ValueError(f"unknown evaluator stem {self.stem!r} (one of {', '.join(STEMS)})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EvaluatorArch":
        d = {**LEGACY_ARCH, **{k: v for k, v in d.items() if k in cls.__dataclass_fields__}}
        d["widths"] = tuple(d["widths"])
        return cls(**d)

    def describe(self) -> str:
        """The image tower in words (config.json's architecture.image_tower)."""
        stem = ("conv3x3/1 stem at the full input resolution" if self.stem == "conv3x3/1"
                else "conv4x4/2 stem (halves the input)")
        return (f"{stem}, then {len(self.widths) - 1} stages of conv3x3/2 + {self.stage_convs} conv3x3/1 "
                f"({self.last_stage_convs} in the last), BatchNorm, SiLU, global average pool, linear")


def _conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU()]


class ImageTower(nn.Module):
    """uint8-derived images [B, 3, R, R] in [-1, 1] -> unnormalised embeddings [B, embed_dim]."""

    def __init__(self, arch: EvaluatorArch):
        super().__init__()
        w = arch.widths
        if arch.stem == "conv4x4/2":
            layers: list[nn.Module] = [nn.Conv2d(3, w[0], 4, stride=2, padding=1, bias=False),
                                       nn.BatchNorm2d(w[0]), nn.SiLU()]  # 64 -> 32
        else:
            layers = _conv_bn(3, w[0], 1)  # 64 -> 64
        for i, (cin, cout) in enumerate(zip(w[:-1], w[1:])):
            layers += _conv_bn(cin, cout, 2)  # halve the resolution
            for _ in range(arch.stage_convs if i < len(w) - 2 else arch.last_stage_convs):
                layers += _conv_bn(cout, cout, 1)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(w[-1], arch.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


class TextProjection(nn.Module):
    """Frozen pooled text embedding [B, text_dim] -> unnormalised embeddings [B, embed_dim]."""

    def __init__(self, arch: EvaluatorArch):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(arch.text_dim, arch.text_hidden), nn.GELU(),
                                 nn.Linear(arch.text_hidden, arch.embed_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.net(t)


class Evaluator(nn.Module):
    def __init__(self, arch: EvaluatorArch, text_encoder: str = "all-MiniLM-L6-v2"):
        super().__init__()
        self.arch = arch
        self.text_encoder_name = text_encoder
        self.image = ImageTower(arch)
        self.text = TextProjection(arch)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
        self.info: dict = {}  # config.json contents once loaded

    # ------------------------------------------------------------------ embeddings
    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] of any size -> [B, 3, R, R] at the evaluator's resolution R: bilinear, antialiased
        when shrinking (so a 32 px image is judged upsampled to 64 px, a 128 px one downsampled)."""
        if tuple(x.shape[-2:]) != (self.arch.resolution,) * 2:
            x = F.interpolate(x, size=(self.arch.resolution,) * 2, mode="bilinear", antialias=True,
                              align_corners=False)
        return x

    def image_embed(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 3, H, W] float in [-1, 1] (any size, see `to_input`) -> L2-normalised [B, embed_dim]."""
        return F.normalize(self.image(self.to_input(x)), dim=-1)

    def text_embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled text-encoder output [B, text_dim] -> L2-normalised [B, embed_dim]."""
        return F.normalize(self.text(pooled.float()), dim=-1)

    @torch.no_grad()
    def embed_uint8(self, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """uint8 images [N, R, R, 3] (numpy, HWC) or [N, 3, R, R] (tensor) -> [N, embed_dim] float32."""
        was_training = self.training
        self.eval()
        out = []
        for i in range(0, len(images), batch_size):
            chunk = images[i:i + batch_size]
            t = torch.as_tensor(np.ascontiguousarray(chunk)) if isinstance(chunk, np.ndarray) else chunk
            if t.shape[-1] == 3 and t.shape[1] != 3:
                t = t.permute(0, 3, 1, 2)
            out.append(self.image_embed(t.float().div(127.5).sub(1.0)))
        self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, self.arch.embed_dim)

    @torch.no_grad()
    def embed_text(self, pooled: torch.Tensor) -> torch.Tensor:
        was_training = self.training
        self.eval()
        out = self.text_embed(pooled)
        self.train(was_training)
        return out

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class EvaluatorFeatures(nn.Module):
    """Feature extractor for torchmetrics FID/KID (`feature=EvaluatorFeatures(ev)`).

    Input: uint8 images [B, 3, H, W] (what torchmetrics passes with normalize=False), or a
    float tensor [B, embed_dim] of embeddings already computed with the same evaluator,
    which is passed through unchanged (so the real set is embedded only once per run).
    Output: L2-normalised evaluator image embeddings [B, embed_dim].
    """

    def __init__(self, evaluator: Evaluator):
        super().__init__()
        self.evaluator = evaluator.eval().requires_grad_(False)
        self.num_features = evaluator.arch.embed_dim  # read by torchmetrics instead of a dummy forward

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.shape[1] == self.num_features and x.is_floating_point():
            return x
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"EvaluatorFeatures expects uint8 [B, 3, H, W] or [B, {self.num_features}] "
                             f"features, got {tuple(x.shape)}")
        return self.evaluator.embed_uint8(x)


# ---------------------------------------------------------------------- saving and loading
def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_evaluator(model: Evaluator, folder: str | Path, training: dict) -> Path:
    """Write config.json + evaluator.safetensors (fp16 weights, fp32 BN statistics) into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        # BatchNorm statistics stay fp32 (tiny, and variance in fp16 loses precision).
        if v.is_floating_point() and "running_" not in k:
            v = v.half()
        tensors[k] = v
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"kind": EVALUATOR_KIND, "version": str(EVALUATOR_VERSION)})
    tmp.chmod(0o644)
    tmp.replace(folder / WEIGHTS_FILE)
    size = (folder / WEIGHTS_FILE).stat().st_size
    if size >= MAX_WEIGHTS_BYTES:
        raise ValueError(f"{folder / WEIGHTS_FILE}: {size} bytes, over the 16 MiB limit")
    config = {
        "kind": EVALUATOR_KIND,
        "version": EVALUATOR_VERSION,
        "text_encoder": model.text_encoder_name,
        "architecture": {"name": "cnn-contrastive", **model.arch.to_dict(),
                         "num_params": model.num_params,
                         "image_tower": model.arch.describe(),
                         "text_tower": "frozen text encoder pooled embedding -> Linear-GELU-Linear",
                         "similarity": "cosine of L2-normalised embeddings"},
        "weights": {"file": WEIGHTS_FILE, "sha256": file_sha256(folder / WEIGHTS_FILE), "bytes": size,
                    "dtype": "float16 (BatchNorm statistics float32)"},
        "training": training,
    }
    tmp = folder / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / CONFIG_FILE)
    return folder


def load_evaluator(folder: str | Path, device: str | torch.device = "cpu") -> Evaluator:
    """Load a shipped evaluator (JSON + safetensors only). Raises EvaluatorError with one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    hint = "train one with `python -m dalle.evaluation.train_evaluator`"
    if not cfg_path.is_file() or not w_path.is_file():
        raise EvaluatorError(f"{folder}: no evaluator found (needs {CONFIG_FILE} and {WEIGHTS_FILE}); {hint}")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvaluatorError(f"{cfg_path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("kind") != EVALUATOR_KIND:
        raise EvaluatorError(f"{cfg_path}: not an evaluator config (kind != {EVALUATOR_KIND!r})")
    if int(cfg.get("version", 0)) > EVALUATOR_VERSION:
        raise EvaluatorError(f"{cfg_path}: evaluator version {cfg.get('version')} is newer than this code reads")
    try:
        arch = EvaluatorArch.from_dict(cfg["architecture"])
    except (KeyError, TypeError, ValueError) as e:
        raise EvaluatorError(f"{cfg_path}: unusable architecture ({e})") from None
    model = Evaluator(arch, cfg.get("text_encoder", "all-MiniLM-L6-v2"))
    try:
        tensors = load_file(str(w_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise EvaluatorError(f"{w_path}: corrupt safetensors file ({str(e).splitlines()[0] if str(e) else e})") \
            from None
    expected = model.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != v.shape for k, v in expected.items()):
        raise EvaluatorError(f"{w_path}: weights do not match the architecture in {CONFIG_FILE}")
    model.load_state_dict({k: tensors[k].to(v.dtype) for k, v in expected.items()})
    model.info = cfg
    model.info["weights_sha256_actual"] = file_sha256(w_path)
    return model.eval().requires_grad_(False).to(device)


def evaluator_id(model: Evaluator) -> dict:
    """What metrics.json records about the evaluator used."""
    info = model.info or {}
    training = info.get("training") or {}
    return {"version": info.get("version"), "sha256": info.get("weights_sha256_actual"),
            "text_encoder": info.get("text_encoder"),
            "val_r_precision": training.get("val", {}).get("r_precision"),
            "heldout_labels_sha256": (training.get("heldout_labels") or {}).get("sha256")}
