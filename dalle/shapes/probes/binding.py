"""Can G give each object of a pair its own colour? A probe that takes minutes, with no discriminator.

Trained G's draw "a green circle left of a black square" as two shapes of one blended colour. Is that the
GAN game, or can this generator not bind a colour to one object at all? The probe takes the GAN out:
  * `train_binding` fits a G (fresh, or a trained one to start from), with a fresh `LayoutEncoder`, by
    reconstruction alone on pair scenes. The encoder sees only where the ink is, so z says "two blobs, here
    and there" and G must take the colours from the caption.
  * `colour_binding` then redraws held-out pair scenes from their layout z twice: with the own caption and
    with its colour swap ("a black circle left of a green square"). A G that binds each colour to its
    object reconstructs the scene far better from the own caption; one that paints both objects in a blend
    of the two colours does about as well with either.
"""

from __future__ import annotations

import random
from typing import Callable

import torch

from ...config import ModelConfig
from ...device import cpu_has_bf16
from ...images import uint8_to_tensor
from ...models.generator import Generator, gaussian_kl
from ...models.image_encoder import LayoutEncoder
from ...text_encoder import TextCondition
from ...training.losses import reconstruction_loss
from ..world import ShapesWorld, near_misses

Encode = Callable[[list[str]], TextCondition]  # captions -> their conditions (fp32)
PAIRS = (0.0, 1.0, 0.0)  # scene mix: pair scenes only


def _redraw(G: Generator, E: LayoutEncoder, images: torch.Tensor, text: TextCondition,
            z_text: TextCondition | None = None) -> torch.Tensor:
    """images [B, 3, R, R] redrawn from their layout z (the posterior mean) and `text` -> [B, 3, R, R].
    z_text: the caption the encoder reads (default `text`)."""
    mu, _ = E(images, (z_text or text).pooled)
    w, _ = G.mapping(mu, G.sentence(text), eps=torch.zeros(len(images), G.cfg.cond_dim))
    return G.synthesis(w, text)


def train_binding(cfg: ModelConfig, table: TextCondition, world: ShapesWorld, steps: int, batch_size: int = 32,
                  lr: float = 1e-3, kl_weight: float = 0.01, seed: int = 0, G: Generator | None = None,
                  ) -> tuple[Generator, LayoutEncoder]:
    """A G and a fresh layout encoder trained for `steps` batches of `world`'s scenes by L2 reconstruction from the
    layout posterior (plus its KL toward N(0, I)). table: the conditions of `world.captions`, in order.
    G: start from this (trained) generator, whose word-order code is kept as it is; None: a fresh one."""
    torch.manual_seed(seed)
    fresh = G is None
    G = Generator(cfg) if fresh else G.train()
    E = LayoutEncoder(cfg)
    if fresh and G.word_order is not None:
        G.word_order.fit(table)
    opt = torch.optim.Adam(list(G.parameters()) + list(E.parameters()), lr=lr, betas=(0.0, 0.99))
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    for _ in range(steps):
        images, idx = world.sample(batch_size, rng)
        real, text = uint8_to_tensor(images), table[torch.from_numpy(idx)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16()):
            mu, var = E(real, text.pooled)
            z = mu.float() + var.float().sqrt() * torch.randn(mu.shape, generator=g)
            w, _ = G.mapping(z, G.sentence(text), eps=torch.zeros(batch_size, cfg.cond_dim))
            fake = G.synthesis(w, text).float()
        loss = reconstruction_loss(fake, real, "l2") + kl_weight * gaussian_kl(mu.float(), var.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return G.eval(), E.eval()


@torch.inference_mode()
def colour_binding(G: Generator, E: LayoutEncoder, encode: Encode, num_scenes: int = 400, seed: int = 123,
                   ) -> dict[str, float]:
    """{"own", "swap": mean squared error of the redrawn scenes, "own_wins": share of scenes redrawn better from
    the own caption than from its colour swap (0.5: no binding), "scenes": how many, and two reference errors:
    "mean_image" (every scene drawn as the scenes' average image: a G that has learned nothing yet) and "grey"
    (each scene's own shapes, in grey: a G with the layout right and no colour)}.

    Pair scenes whose two shapes share a colour have nothing to swap and are left out."""
    world = ShapesWorld(G.cfg.resolution, mix=PAIRS)
    images, idx = world.sample(num_scenes, random.Random(seed))
    captions = [world.captions[i] for i in idx]
    keep = [i for i, c in enumerate(captions) if len(near_misses(c)) == 2]
    own = [captions[i] for i in keep]
    swaps = [near_misses(c)[1] for c in own]
    real, own_text = uint8_to_tensor(images[keep]), encode(own)
    error = lambda x: (x.float() - real).pow(2).flatten(1).mean(1)  # noqa: E731  [N]
    own_error = error(_redraw(G, E, real, own_text))
    swap_error = error(_redraw(G, E, real, encode(swaps), z_text=own_text))
    references = {"mean_image": real.mean(0, keepdim=True), "grey": real.mean(1, keepdim=True)}  # broadcast to real
    return {"own": own_error.mean().item(), "swap": swap_error.mean().item(),
            "own_wins": (own_error < swap_error).float().mean().item(), "scenes": len(own),
            **{name: error(image.expand_as(real)).mean().item() for name, image in references.items()}}
