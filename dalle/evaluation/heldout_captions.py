"""Prompts as people write them: images of captions that no training image carried, found again by the evaluator.

The emoji data holds out one phrase per label (a shortcode or a keyword phrase no other label uses, chosen by a
hash: `HELDOUT_CAPTION_RULE`). Training never sees it. For each held-out phrase of a label the evaluator never
trained on either, the checkpoint draws one image; the evaluator then ranks the label's own name against the
names of 99 other held-out labels, and the image counts when the right name is among the first 5. The same
ranking of a real image of the label is the ceiling.
"""

from __future__ import annotations

import numpy as np
import torch

from .emoji_data import HELDOUT_CAPTION_RULE, EmojiEvalData
from .sampling import Generated, sample_seeds
from .stats import draw_distractors, mean_and_ci

TOP_K = 5  # the name must be among the evaluator's first TOP_K
DISTRACTORS = 99  # other held-out labels' names it competes with


def top_k_hits(image_emb: torch.Tensor, true_text: torch.Tensor, pool_text: torch.Tensor, distractors: np.ndarray,
               k: int = TOP_K) -> np.ndarray:
    """Per item: do fewer than k distractors score at least the true name's cosine? bool [N]. image_emb [N, D],
    true_text [N, D], pool_text [M, D] L2-normalised; distractors int [N, n] into pool_text (a tie counts
    against the true name)."""
    true_sim = (image_emb * true_text).sum(-1, keepdim=True)  # [N, 1]
    other = torch.einsum("nd,nkd->nk", image_emb, pool_text[torch.as_tensor(distractors)])
    return ((other >= true_sim).sum(1) < k).cpu().numpy()


def heldout_caption_block(gen: Generated, evaluator, data: EmojiEvalData, text_emb: torch.Tensor,
                          real_emb: torch.Tensor, heldout_images: np.ndarray, psi: float, seed: int,
                          max_prompts: int = 400) -> dict | None:
    """metrics.json's "heldout_captions" block, or None when the data records no held-out captions.

    text_emb [C, E]: the evaluator's embedding of every caption of `data`; real_emb [N, E]: of every image;
    heldout_images: indices of the images of the evaluator's held-out labels."""
    labels = data.labels
    evaluator_labels = {labels[i] for i in heldout_images}
    pairs = [(c, lab) for c, lab in data.heldout_captions if lab in evaluator_labels]
    if not pairs:
        return None
    rng = np.random.default_rng(seed)
    if len(pairs) > max_prompts:
        pairs = [pairs[i] for i in np.sort(rng.choice(len(pairs), size=max_prompts, replace=False))]
    first_image = {}
    for i in heldout_images:
        first_image.setdefault(labels[i], int(i))
    names = sorted(evaluator_labels)  # the candidates: each held-out label's bare name
    name_caption = {labels[i]: data.plain[i] for i in heldout_images}
    pool_text = text_emb[[name_caption[n] for n in names]]
    true_text = text_emb[[name_caption[lab] for _, lab in pairs]]
    distractors = draw_distractors([lab for _, lab in pairs], names, DISTRACTORS, seed)
    pixels, _, _ = gen([c for c, _ in pairs], sample_seeds(seed * 1_000_000 + 900_000, len(pairs)), psi)
    hits = top_k_hits(evaluator.embed_uint8(pixels), true_text, pool_text, distractors)
    real = top_k_hits(real_emb[[first_image[lab] for _, lab in pairs]], true_text, pool_text, distractors)
    return {"generated": mean_and_ci(hits), "real_ceiling": mean_and_ci(real), "top_k": TOP_K,
            "distractors": DISTRACTORS, "psi": psi, "rule": HELDOUT_CAPTION_RULE,
            "examples": [c for c, _ in pairs[:8]],
            "definition": f"one image per held-out caption (a phrase no training image carried) of a label the "
                          f"evaluator never trained on; a hit when the evaluator ranks the label's name among its "
                          f"first {TOP_K} against {DISTRACTORS} other held-out labels' names; real_ceiling: the "
                          f"label's first real image, ranked the same way"}
