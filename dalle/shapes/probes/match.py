"""Can a discriminator's match head tell a pair's caption from its near misses? A probe that takes minutes.

G learns from D only what D's match head can tell apart. On real pair scenes of the shapes world this
measures how often the match logit of an image's own caption beats that of
  * "flip":  the relation flipped ("... right of ..." for "... left of ..."),
  * "swap":  the colours swapped ("a blue circle left of a red square" for "a red circle left of a blue square"),
  * "other": another scene's caption.
0.5 is chance. `near_miss_accuracy` scores a trained checkpoint's D; `train_match_head` first trains a
fresh D's match head on real images alone (own caption: match; another caption and a near miss: no match),
so that a D design can be judged before a full run.
"""

from __future__ import annotations

import random
from typing import Callable

import torch
import torch.nn.functional as F

from ...config import ModelConfig
from ...device import cpu_has_bf16
from ...images import uint8_to_tensor
from ...models.discriminator import Discriminator
from ...text_encoder import TextCondition
from ...training.objective import mismatched
from ..world import ShapesWorld, near_misses

Encode = Callable[[list[str]], TextCondition]  # captions -> their conditions (fp32)


@torch.inference_mode()
def near_miss_accuracy(D: Discriminator, encode: Encode, num_scenes: int = 600, seed: int = 123,
                       ) -> dict[str, float]:
    """{"flip", "swap", "other": share of pair scenes whose own caption scores higher, "scenes": how many}.

    Scenes whose two shapes share a colour have nothing to swap and are left out."""
    world = ShapesWorld(D.cfg.resolution, mix=(0.0, 1.0, 0.0))
    images, idx = world.sample(num_scenes, random.Random(seed))
    captions = [world.captions[i] for i in idx]
    keep = [i for i, c in enumerate(captions) if len(near_misses(c)) == 2]
    own = [captions[i] for i in keep]
    flips, swaps = zip(*(near_misses(c) for c in own))
    r = D.eval().features(uint8_to_tensor(images[keep]))
    score = lambda texts: D.heads(r, encode(list(texts)))[1]  # noqa: E731  match logits [N]
    own_score = score(own)
    rivals = {"flip": flips, "swap": swaps, "other": own[1:] + own[:1]}
    result = {name: (own_score > score(captions)).float().mean().item() for name, captions in rivals.items()}
    return {**result, "scenes": len(own)}


def train_match_head(cfg: ModelConfig, table: TextCondition, world: ShapesWorld, steps: int,
                     batch_size: int = 32, lr: float = 1e-3, seed: int = 0) -> Discriminator:
    """A fresh D trained for `steps` batches of real images on its match logit alone: softplus losses with the
    own caption as a match, and a random other caption and a near miss (`world.near_miss`) as non-matches.
    table: the conditions of `world.captions`, in order."""
    torch.manual_seed(seed)
    D = Discriminator(cfg)
    if D.word_order is not None:
        D.word_order.fit(table)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.0, 0.99))
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    for _ in range(steps):
        images, idx = world.sample(batch_size, rng)
        rivals = (mismatched(torch.from_numpy(idx), g), torch.from_numpy(world.near_miss(idx, rng)))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16()):
            r = D.features(uint8_to_tensor(images))
            own = D.heads(r, table[torch.from_numpy(idx)])[1].float()
            wrong, near = (D.heads(r, table[i])[1].float() for i in rivals)
        loss = F.softplus(-own).mean() + F.softplus(wrong).mean() + F.softplus(near).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return D.eval()
