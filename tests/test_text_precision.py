"""Training reads caption encodings stored in fp16 and computed in padded batches; the app encodes each
prompt alone in fp32. These tests measure how far apart the two are, at the text, at the generator's
conditioning code and in the checker's verdict on the images (docs/design.md, "Text encodings")."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dalle.images import tensor_to_uint8
from dalle.pipeline import TextToImagePipeline, seed_latents
from dalle.shapes import checker as sc
from dalle.shapes.world import sample_scene
from dalle.text_encoder import TextCondition, encode_captions_cached

N_CAPTIONS = 120
SHAPES_32 = Path(__file__).resolve().parents[1] / "checkpoints" / "shapes-32"


@pytest.fixture(scope="module")
def both_encodings(tmp_path_factory):
    """(pipeline, captions, training-path TextCondition, inference-path TextCondition)."""
    pipe = TextToImagePipeline.from_pretrained(SHAPES_32, device="cpu")
    rng = random.Random(5)
    captions = list(dict.fromkeys(sample_scene(rng).caption for _ in range(N_CAPTIONS)))
    length = pipe.model_config.max_tokens
    table = encode_captions_cached(pipe.text_encoder.name, captions, tmp_path_factory.mktemp("cache"),
                                   encoder=pipe.text_encoder, max_tokens=length)  # what training reads
    alone = pipe.text_encoder.condition(captions, length)  # what the app and evaluate read
    return pipe, captions, TextCondition(table.pooled, table.tokens.float(), table.mask), alone


def test_stored_encodings_are_within_fp16_rounding_of_the_app_encodings(both_encodings):
    _, _, train, app = both_encodings
    assert torch.equal(train.mask, app.mask)
    # fp16 keeps 11 significant bits: 2**-11 relative, plus the batch's padding changing the float sums
    assert (train.pooled - app.pooled).abs().max() <= 2**-11 * app.pooled.abs().max() * 2
    assert (train.tokens - app.tokens).abs().max() <= 2**-11 * app.tokens.abs().max() * 2


def test_the_difference_is_far_below_the_conditioning_noise(both_encodings):
    """Training samples c = mu + s * sigma * eps; the rounding moves mu by under 2% of that noise's scale."""
    pipe, _, train, app = both_encodings
    ca = pipe.generator.mapping.ca
    with torch.no_grad():
        (mu_train, _), (mu_app, logvar) = (ca.proj(ca_input(ca, t.pooled)).chunk(2, -1) for t in (train, app))
    noise_scale = (ca.noise * torch.exp(0.5 * logvar.clamp(-10, 4))).mean()
    assert (mu_train - mu_app).abs().max() < 0.02 * noise_scale


def ca_input(ca, pooled: torch.Tensor) -> torch.Tensor:
    """What the conditioning-augmentation layer projects: the pooled embedding, standardised if configured."""
    return torch.nn.functional.layer_norm(pooled, pooled.shape[-1:]) if ca.normalize else pooled


def test_images_from_either_encoding_get_the_same_verdicts(both_encodings):
    pipe, captions, train, app = both_encodings
    cfg = pipe.model_config
    z, eps = seed_latents(list(range(len(captions))), cfg.z_dim, cfg.cond_dim)
    a = tensor_to_uint8(pipe.synthesize(app, z, eps, 1.0, None))
    b = tensor_to_uint8(pipe.synthesize(train, z, eps, 1.0, None))
    per_image = np.abs(a.astype(int) - b.astype(int)).reshape(len(captions), -1).max(1)
    assert np.median(per_image) <= 1  # most images differ by at most one 8-bit level anywhere
    assert all(sc.check(x, c) == sc.check(y, c) for x, y, c in zip(a, b, captions))
