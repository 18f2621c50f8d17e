"""Post-processing for display: nearest-neighbour upscaling, captions, score tables,
animations, and a bounded folder for the files users download."""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from .judge import Verdict
from .results import Generation, Interpolation

DISPLAY_TILE = 256  # gallery / animation images are upscaled to about this many pixels
GRID_TILE = 128  # grid cells are upscaled to about this many pixels
LABEL_PX = 15  # font size of the row labels drawn above each grid row
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)  # wide script coverage when installed
PAD, GUTTER = 2, 200  # grid gutter width and grey, as dalle.images.grid_array draws them


def scale_factor(resolution: int, target: int) -> int:
    return max(1, round(target / max(resolution, 1)))


def upscale(image: Image.Image, factor: int) -> Image.Image:
    """Nearest-neighbour enlargement: a 64px sample stays crisp instead of being blurred."""
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def display_grid(gen: Generation) -> Image.Image:
    """The grid with each row's prompt written above it, tiles enlarged to about GRID_TILE px."""
    p, _ = gen.shape
    return labelled_grid(gen.pixels, [f"{i + 1}. {gen.prompts[i]}" for i in range(p)])


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONTS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """`text`, cut with an ellipsis so that it fits in `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if draw.textlength(text[:mid] + "…", font=font) <= width else (lo, mid - 1)
    return text[:lo] + "…"


def labelled_grid(tiles: np.ndarray, labels: list[str], tile: int = GRID_TILE) -> Image.Image:
    """uint8 tiles [P, N, R, R, 3] -> one image: per row, a white band with its label, then
    the row's N tiles enlarged by a whole factor (to about `tile` px) with grey gutters."""
    p, n, r = tiles.shape[:3]
    k = scale_factor(r, tile)
    side, band = r * k, LABEL_PX + 8
    width = n * (side + PAD) + PAD
    out = Image.new("RGB", (width, p * (band + side + PAD) + PAD), (GUTTER,) * 3)
    draw, font = ImageDraw.Draw(out), _font(LABEL_PX)
    for i in range(p):
        top = i * (band + side + PAD) + PAD
        draw.rectangle((0, top, width - 1, top + band - 1), fill=(255, 255, 255))
        draw.text((PAD + 2, top + 3), _fit(draw, labels[i], font, width - 2 * PAD - 4), fill=(40, 40, 40), font=font)
        for j in range(n):
            out.paste(upscale(Image.fromarray(tiles[i, j]), k), (PAD + j * (side + PAD), top + band))
    return out


def split_grid(image: Image.Image, rows: int, cols: int) -> np.ndarray:
    """A grid drawn by dalle.images.grid_array (PAD px gutters) -> its tiles, uint8 [rows, cols, R, R, 3]."""
    a = np.asarray(image.convert("RGB"))
    r = (a.shape[0] - PAD) // rows - PAD
    if r < 1 or a.shape[1] != cols * (r + PAD) + PAD or a.shape[0] != rows * (r + PAD) + PAD:
        raise ValueError(f"a {a.shape[1]}x{a.shape[0]} image is not a {rows}x{cols} grid")
    return np.stack([np.stack([a[PAD + i * (r + PAD):PAD + i * (r + PAD) + r, PAD + j * (r + PAD):PAD + j * (r + PAD) + r]
                               for j in range(cols)]) for i in range(rows)])


def fast_png(image: Image.Image) -> bytes:
    """PNG for display only: zlib level 1 (several times faster than the default 6 on large
    upscaled grids; the files are a few percent bigger)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def caption(gen: Generation, p: int, n: int) -> str:
    prompt = gen.prompts[p]
    short = prompt if len(prompt) <= 40 else prompt[:39] + "…"
    return (f"{short} · seed {int(gen.seeds[p, n])} · "
            f"realism {gen.realism[p, n]:.2f} · match {gen.match[p, n]:.2f}")


def gallery_items(gen: Generation) -> list[tuple[np.ndarray, str]]:
    """(image, caption) pairs, row-major: prompt by prompt, then column by column.

    Images stay at their native size: the gallery stretches them to its cells in the browser
    (`image-rendering: pixelated` keeps them crisp), so the server encodes 16x fewer pixels.
    """
    p, n = gen.shape
    return [(gen.pixels[i, j], caption(gen, i, j)) for i in range(p) for j in range(n)]


SCORE_COLUMNS = ["prompt", "seed", "realism", "text match"]


def score_table(gen: Generation) -> pd.DataFrame:
    """One row per image, in gallery order: prompt, seed, realism, text match (3 decimals)."""
    p, n = gen.shape
    rows = [(gen.prompts[i], int(gen.seeds[i, j]), round(float(gen.realism[i, j]), 3),
             round(float(gen.match[i, j]), 3)) for i in range(p) for j in range(n)]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def compare_header(gen: Generation) -> str:
    return f"### {gen.checkpoint}\nstep {gen.step:,} · {gen.images_seen / 1000:,.1f} k images seen"


def judge_interval(verdict: Verdict) -> str:
    """The verdict's 95% interval as "0.64–0.97", or "" without one."""
    return "" if verdict.interval is None else f"{verdict.interval[0]:.2f}–{verdict.interval[1]:.2f}"


def compare_footer(gen: Generation, verdict: Verdict) -> str:
    judged = "no common judge" if verdict.score is None else (
        f"{verdict.judge} **{verdict.score:.3f}** (95% interval {judge_interval(verdict)}, n = {verdict.judged})")
    return (f"{judged}  \nown D: mean realism {float(np.mean(gen.realism)):.3f} · "
            f"mean match {float(np.mean(gen.match)):.3f}")


OWN_D = "own D, not comparable across checkpoints"
COMPARE_COLUMNS = ["checkpoint", "step", "images seen", "common judge", "common judge score", "n (images judged)",
                   "95% interval", f"mean realism ({OWN_D})", f"mean match ({OWN_D})"]


def compare_table(gens: list[Generation], verdicts: list[Verdict]) -> pd.DataFrame:
    """One row per checkpoint: the common judge (same for every checkpoint of a dataset) with n and
    its 95% interval, then the means of each checkpoint's own discriminator scores."""
    rows = [(g.checkpoint, g.step, g.images_seen, v.judge, None if v.score is None else round(v.score, 3), v.judged,
             judge_interval(v), round(float(np.mean(g.realism)), 3), round(float(np.mean(g.match)), 3))
            for g, v in zip(gens, verdicts)]
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def animation_gif(walk: Interpolation, frame_ms: int = 120) -> bytes:
    """An endlessly looping GIF that walks A -> B -> A (ping-pong, so the loop has no jump)."""
    factor = scale_factor(walk.frames.shape[1], DISPLAY_TILE)
    frames = [upscale(Image.fromarray(f), factor) for f in walk.frames]
    loop = frames + frames[-2:0:-1]
    buf = io.BytesIO()
    loop[0].save(buf, format="GIF", save_all=True, append_images=loop[1:], duration=frame_ms,
                 loop=0, disposal=1, optimize=False)
    return buf.getvalue()


def display_strip(walk: Interpolation) -> Image.Image:
    return upscale(walk.strip(), scale_factor(walk.frames.shape[1], GRID_TILE))


class OutputFolder:
    """A private temporary folder for download files, keeping only the newest `keep` files.

    Gradio copies returned files into its own cache, so older ones can go.
    """

    def __init__(self, keep: int = 64):
        self._dir = tempfile.TemporaryDirectory(prefix="dalle-demo-")
        self.path = Path(self._dir.name)
        self.keep = keep

    def write(self, stem: str, suffix: str, data: bytes) -> str:
        """Write `data` as `<stem>-<hash>.<suffix>` and return the path (same bytes, same name)."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80]
        path = self.path / f"{safe}-{hashlib.sha256(data).hexdigest()[:10]}.{suffix}"
        path.write_bytes(data)
        files = sorted(self.path.iterdir(), key=_mtime)
        for old in files[:-self.keep]:
            old.unlink(missing_ok=True)
        return str(path)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # removed meanwhile
        return 0
