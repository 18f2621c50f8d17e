"""Configuration dataclasses. Each field says why it exists.

`ModelConfig` is everything needed to rebuild the networks (it is written to
a checkpoint's config.json). `TrainConfig` is everything a training run needs
on top of that.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def opt(default, why: str):
    """A config field with its one-line reason, which is also its `--help` text."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": why})
    return field(default=default, metadata={"help": why})


def field_help(cls: type) -> dict[str, str]:
    """{field name: its reason} of a config dataclass."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


FORMAT_VERSION = 2  # bump when the checkpoint layout changes incompatibly (2: word attention, projection input)
# Model fields that change no tensor shape, so a resumed run may change them
RESUMABLE_MODEL_FIELDS = ("cond_noise",)


@dataclass
class ModelConfig:
    resolution: int = opt(32, "output side in pixels: 32, 64 or 128")
    text_encoder: str = opt("all-MiniLM-L6-v2", "name/path of the frozen text encoder")
    text_dim: int = opt(384, "width of the encoder's pooled embedding")
    z_dim: int = opt(64, "noise width; small is enough for single-object scenes")
    cond_dim: int = opt(128, "width of the conditioning-augmentation code c")
    w_dim: int = opt(256, "intermediate latent width (mapping output)")
    mapping_layers: int = opt(2, "depth of the (z, c) -> w MLP; the text also reaches G through word attention")
    max_tokens: int = opt(24, "token states kept per prompt for word attention (longer prompts are cut here)")
    attn_dim: int = opt(128, "width of G's learned word states and of its attention layers")
    attn_max_res: int = opt(16, "G attends to the words at every block up to this resolution")
    channel_base: int = opt(2048, "G/D channels at resolution r are channel_base / r ...")
    channel_max: int = opt(256, "... capped here; keeps low-res layers from dominating FLOPs")
    d_channel_base: int = opt(1024, "same rule for the discriminator (thin at high resolution: fast on a CPU)")
    d_channel_max: int = opt(256, "... and cap for the discriminator")
    embed_dim: int = opt(256, "width of the discriminator's image/text projection space")
    cond_noise: float = opt(0.1, "scale of the conditioning-augmentation noise: at 1.0 it drowned the text code")
    normalize_text: bool = opt(False, (
        "standardise the sentence embedding before mapping: near-identical captions stay apart"))
    word_mixing: bool = opt(False, (
        "a learned self-attention layer over G's word states: binds each colour word to its noun"))
    g_word_positions: bool = opt(False, (
        "G's word states carry a learned vector per position: its attention can tell the first colour word "
        "from the second"))
    d_word_attention: bool = opt(False, (
        "D's match adds a word-region term: where each word is drawn, not just which words"))
    d_word_order: bool = opt(False, (
        "D's match reads the words in order (`WordOrder`), not the pooled sentence: swaps and flips differ"))
    g_word_order: bool = opt(False, "G's mapping reads the same word-order code instead of the pooled sentence")
    d_group_spread: bool = opt(False, (
        "D also judges groups of images of one prompt by how much they vary (training only): seeds must vary "
        "as the data does"))
    word_order_tokens: int = opt(12, (
        "tokens the word-order code reads ([CLS] included); the shapes captions have at most 12"))
    word_order_dim: int = opt(32, "main directions kept per token: whitened, they train where the raw 384 did not")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**d).validated()

    def validated(self) -> "ModelConfig":
        """Check types and ranges, so a bad config.json is refused by name, not by a crash later."""
        for f in dataclasses.fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, float) and type(value) is int:  # JSON may write 1.0 as 1
                value = float(value)
                setattr(self, f.name, value)
            # bool is an int subclass; JSON gives no other way to confuse the two
            if type(value) is not type(default):
                raise ValueError(f"{f.name} must be {type(default).__name__}, got {value!r}")
            if type(value) is int and value < 1:
                raise ValueError(f"{f.name} must be at least 1, got {value}")
            if isinstance(value, float) and not 0.0 <= value < float("inf"):
                raise ValueError(f"{f.name} must be a finite number >= 0, got {value}")
        if self.resolution not in (32, 64, 128):
            raise ValueError(f"resolution must be 32, 64 or 128, got {self.resolution}")
        return self

    def channels(self, res: int, discriminator: bool = False) -> int:
        base, cap = (self.d_channel_base, self.d_channel_max) if discriminator else (self.channel_base, self.channel_max)
        return int(min(base // res, cap))


@dataclass
class TrainConfig:
    data: str = opt("shapes", "'shapes', 'emoji', or a folder with metadata.jsonl")
    out: str = opt("runs/shapes64", "run directory: checkpoints, samples, log")
    batch_size: int = opt(32, "small batches: many updates per CPU-hour")
    total_kimg: float = opt(10_000.0, "stop after this many thousand real images")
    lr_g: float = opt(2e-4, "Adam step sizes; equal rates keep G and D balanced")
    lr_d: float = opt(2e-4, "the discriminator's Adam step size")
    lr_decay: float = opt(0.0, (
        "last share of the run over which both learning rates fall linearly to 0 (as pix2pix); 0 = constant"))
    betas: tuple[float, float] = opt((0.0, 0.99), "beta1=0 as in StyleGAN2: less momentum, fewer oscillations")
    r1_gamma: float = opt(1.0, (
        "R1 weight on real images: stabilises D without a Lipschitz constraint (0.1 let D win)"))
    r1_every: int = opt(8, "lazy R1: the penalty is costly, every 8th D step is enough")
    joint_weight: float = opt(1.0, "projection (image, text) loss on reals, fakes and mismatched reals (D and G)")
    contrastive_weight: float = opt(1.0, "batch-contrastive match loss (D and G): rank the own caption first")
    recon: str = opt("prior", "reconstruction of real images: 'prior' (z ~ N(0, I), pix2pix-style), 'posterior' (VAE-GAN, half the batch), 'layout' (z from where the ink is, not its colours), 'none'")
    recon_loss: str = opt("l1", "'l1' (median: sharp) or 'l2' (mean: leaves the blank background sooner)")
    recon_weight: float = opt(10.0, (
        "reconstruction weight (L1 or L2, --recon-loss): a supervised gradient for every pixel"))
    recon_candidates: int = opt(1, (
        "with recon='prior', reconstruct from the nearest of this many z draws: seeds keep distinct layouts"))
    vae_kl_weight: float = opt(0.01, (
        "KL of the encoder's q(z | x, t) toward the prior (recon='posterior' or 'layout')"))
    warmup_kimg: float = opt(0.0, (
        "first thousands of images by reconstruction alone, no D: the layout, ~3x cheaper per image"))
    hard_negatives: float = opt(0.0, (
        "share of D's mismatched captions that are near misses (flipped relation, swapped colours, moved "
        "shape), from datasets that supply them (shapes)"))
    d_near_miss_weight: float = opt(0.0, (
        "D's match logit alone ranks a real image's own caption above its near miss (datasets that supply "
        "them): word order learned early"))
    near_miss_weight: float = opt(0.0, (
        "G ranks its image's own caption above that caption's near miss in D's match head (datasets that "
        "supply them): the G side of hard_negatives"))
    d_wrong_images: float = opt(0.0, (
        "weight of D's joint loss on a wrong image of each of half the batch's captions (shapes: the caption's "
        "scene with a faint ghost, a missing or extra object; captioned images: one that shares a word): D learns "
        "what almost shows a caption, so G pays for it"))
    group_size: int = opt(1, (
        "images of one caption in a row in each batch (real: fresh draws of what it leaves open; fake: other "
        "seeds); >1 feeds D's group-spread head"))
    spread_weight: float = opt(0.0, (
        "weight of the group-spread game (D and G; needs d_group_spread and group_size > 1)"))
    diversity_weight: float = opt(0.0, (
        "DSGAN term after the warm-up: images of an open caption must differ when z differs (0 = off)"))
    diversity_cap: float = opt(0.3, "...up to this image/noise distance ratio, so it cannot trade away realism")
    style_mixing: float = opt(0.0, "share of G's images whose later layers take w from a second z (per-layer styles)")
    kl_weight: float = opt(0.001, (
        "conditioning-augmentation KL: keeps the text manifold smooth (not so strong that mu -> 0)"))
    ema_kimg: float = opt(10.0, "EMA half-life in thousands of images; the EMA G is what ships")
    ema_rampup: float = opt(0.05, "shorter half-life early so the EMA tracks the fast-moving start")
    augment: str = opt("", "DiffAugment policy, e.g. 'translation,cutout' ('' for none; shifts would falsify 'top left')")
    seed: int = opt(0, "one seed: same seed, same run")
    sample_every: int = opt(500, "steps between sample grids / metric rows")
    checkpoint_every: int = opt(1000, "steps between resumable checkpoints")
    snapshot_kimg: list[float] = opt(list(), "keep frozen exports at these kimg")
    device: str = opt("auto", "'auto' picks CUDA when present")
    mixed_precision: bool = opt(True, (
        "bf16 autocast (CUDA, and CPUs with AMX/AVX512-bf16); weights and losses stay fp32"))
    threads: int = opt(0, "torch CPU threads; 0 = leave torch's default")
    max_minutes: float = opt(0.0, "stop cleanly (with a checkpoint) after this long; 0 = no limit")
    snapshot_minutes: list[float] = opt(list(), "also keep frozen exports at these wall-clock minutes")
    init_from: str = opt("", "start from a checkpoint folder's weights (G, EMA G and D) with fresh optimizer moments")
    cache_dir: str = opt("data/cache", "on-disk cache of caption embeddings, shared across runs")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    def check(self, model: ModelConfig) -> None:
        """Refuse settings that are out of range or contradict each other, naming the flag."""
        if self.recon not in ("prior", "posterior", "layout", "none"):
            raise ValueError(f"recon must be 'prior', 'posterior', 'layout' or 'none', got {self.recon!r}")
        if self.recon_loss not in ("l1", "l2"):
            raise ValueError(f"recon_loss must be 'l1' or 'l2', got {self.recon_loss!r}")
        if self.recon_candidates > 1 and self.recon != "prior":
            raise ValueError("--recon-candidates picks among prior draws, so it needs --recon prior")
        if not 0.0 <= self.hard_negatives <= 1.0:
            raise ValueError(f"hard_negatives is a share of the batch, 0 to 1; got {self.hard_negatives}")
        for name in ("near_miss_weight", "d_near_miss_weight", "spread_weight", "d_wrong_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is a weight, at least 0; got {getattr(self, name)}")
        if self.group_size < 1 or self.batch_size % self.group_size:
            raise ValueError(f"group_size must be at least 1 and divide the batch ({self.batch_size}); "
                             f"got {self.group_size}")
        if self.spread_weight > 0 and (self.group_size < 2 or not model.d_group_spread):
            raise ValueError("--spread-weight needs groups (--group-size 2 or more) and D's head "
                             "(--d-group-spread true)")
        if self.spread_weight > 0 and self.diversity_weight > 0:
            raise ValueError("--spread-weight and --diversity-weight both regroup G's batch; use one")
        if not 0.0 <= self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay is a share of the run, 0 to 1; got {self.lr_decay}")
        if self.warmup_kimg > 0 and self.recon == "none":
            raise ValueError("--warmup-kimg trains by reconstruction alone, so it needs --recon prior, posterior "
                             "or layout")

    def uses_near_misses(self) -> bool:
        """Whether the run asks its data for near-miss captions (hard negatives or a near-miss ranking)."""
        return self.hard_negatives > 0 or self.near_miss_weight > 0 or self.d_near_miss_weight > 0
