"""The prompt's words in order: a sentence code in which "which word stands where" is plain.

The frozen encoder's pooled vector of "a red circle left of a blue square" and of its colour swap
"a blue circle left of a red square" have cosine 0.98, and the state of "circle" in the two 0.995: each
token state is mostly the word itself. A discriminator given the pooled vector never learned to tell a
pair from its colour swap or its relation flip (`python -m dalle probe`: 0.5, chance); given this code
it did within 2,000 batches (docs/recipe.md, "What D's match head can tell apart").

The code: each of the first `positions` token states is standardised per dimension, projected on the
`dim` main directions of the training captions' token states, scaled to unit variance along each, and the
positions are laid side by side (padding reads as 0). The statistics are fitted once, from the training
captions (`fit`), and saved with the weights as buffers; nothing here is learned by gradient.
Whitening is what makes it trainable: the same code with the raw standardised states (12 x 384 inputs)
stayed at chance.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..text_encoder import TextCondition


class WordOrder(nn.Module):
    """TextCondition -> code [B, positions * dim]: the whitened states of the first `positions` tokens, in order."""

    def __init__(self, text_dim: int,  # width of the encoder's token states
                 positions: int,  # tokens read, from the first ([CLS] included); later ones are left out
                 dim: int):  # main directions kept per token
        super().__init__()
        self.positions, self.dim = positions, dim
        self.register_buffer("mean", torch.zeros(text_dim))  # per-dimension statistics of real token states
        self.register_buffer("std", torch.ones(text_dim))
        self.register_buffer("basis", torch.eye(text_dim, dim))  # [text_dim, dim] main directions
        self.register_buffer("scale", torch.ones(dim))  # spread along each

    @property
    def out_dim(self) -> int:
        return self.positions * self.dim

    @torch.no_grad()
    def fit(self, text: TextCondition) -> None:
        """Fit the statistics to the real tokens among the first `positions` of a caption table."""
        states = text.tokens[:, :self.positions].float()[text.mask[:, :self.positions]]  # [N, text_dim]
        if states.shape[0] <= self.dim:
            raise ValueError(f"fitting the word-order code needs more than {self.dim} token states, got {states.shape[0]}")
        self.mean.copy_(states.mean(0))
        self.std.copy_(states.std(0) + 1e-4)
        x = (states - self.mean) / self.std
        values, vectors = torch.linalg.eigh(x.T @ x / x.shape[0])  # ascending, deterministic
        self.basis.copy_(vectors[:, -self.dim:].flip(-1))
        self.scale.copy_(values[-self.dim:].flip(-1).clamp(min=1e-6).sqrt())

    def forward(self, text: TextCondition) -> torch.Tensor:
        """text with tokens [B, L, text_dim] and mask [B, L] -> [B, positions * dim] (fp32)."""
        tokens, mask = text.tokens[:, :self.positions].float(), text.mask[:, :self.positions]
        code = ((tokens - self.mean) / self.std) @ self.basis / self.scale * mask[..., None]  # [B, <=P, dim]
        code = torch.nn.functional.pad(code, (0, 0, 0, self.positions - code.shape[1]))  # fewer tokens than P
        return code.flatten(1)
