"""Conversions between uint8 arrays, tensors in [-1, 1] and PIL images, and grid PNGs with metadata."""

from __future__ import annotations

import io
import json

import numpy as np
import torch
from PIL import Image, PngImagePlugin


def uint8_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3] (clamped, rounded)."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(a) for a in tensor_to_uint8(images)]


def grid_array(images: np.ndarray, rows: int, cols: int, pad: int = 2, fill: int = 200) -> np.ndarray:
    """uint8 [rows*cols, H, W, 3] (row-major) -> one uint8 [rows*(H+pad)+pad, cols*(W+pad)+pad, 3] image."""
    n, h, w, c = images.shape
    if n != rows * cols:
        raise ValueError(f"grid needs {rows * cols} images, got {n}")
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[y:y + h, x:x + w] = images[i]
    return out


def grid_image(images: np.ndarray, rows: int, cols: int, pad: int = 2) -> Image.Image:
    return Image.fromarray(grid_array(images, rows, cols, pad))


def png_bytes(image: Image.Image, metadata: dict | None = None) -> bytes:
    """Encode a PNG whose text chunks hold `metadata` (strings as-is, other values as JSON)."""
    info = PngImagePlugin.PngInfo()
    for k, v in (metadata or {}).items():
        info.add_itxt(k, v if isinstance(v, str) else json.dumps(v))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_png(image: Image.Image, path: str, metadata: dict | None = None) -> None:
    with open(path, "wb") as f:
        f.write(png_bytes(image, metadata))


def read_png_metadata(path: str) -> dict[str, str]:
    with Image.open(path) as im:
        return dict(im.text)
