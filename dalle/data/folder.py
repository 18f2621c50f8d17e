"""A captioned image folder in the Hugging Face `imagefolder` layout.

    my_data/
        metadata.jsonl   one JSON object a line: {"file_name": "cat.png", "text": "a cat"}
        cat.png          ("text" may also be a list of captions)
        sub/dog.jpg      (file names may point into subfolders, never outside the folder)

`load_folder` center-crops every image to a square, resizes it to the requested
resolution and composites transparency on white. Entries that cannot be used
are skipped, counted per reason, printed as a warning and kept in
`info["skipped"]`. `write_folder` writes images and captions in the same layout.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
from PIL import Image, ImageOps

from .captioned import CaptionedImages

METADATA = "metadata.jsonl"
_EXAMPLES = 5  # names kept per skip reason


def _unsafe(name: str) -> bool:
    """Absolute paths (POSIX or Windows) and any `..` component would leave the folder."""
    win = PureWindowsPath(name)
    return (PurePosixPath(name).is_absolute() or win.is_absolute() or bool(win.drive)
            or ".." in PurePosixPath(name.replace("\\", "/")).parts)


def _captions(text: object) -> list[str]:
    """A string or list of strings -> stripped, non-empty captions (order kept, duplicates dropped)."""
    items = [text] if isinstance(text, str) else text if isinstance(text, list) else []
    return list(dict.fromkeys(t.strip() for t in items if isinstance(t, str) and t.strip()))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency (RGBA, LA, PA, P/L/RGB with a transparent colour) goes on white."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64)
        if arr.max(initial=0) > 255:  # 16-bit range
            arr = arr / 257.0
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: Path, resolution: int) -> np.ndarray:
    """Read an image file -> uint8 [resolution, resolution, 3]: EXIF-rotated, center-cropped, on white."""
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("RGB", (2 * resolution, 2 * resolution))  # decode large JPEGs at reduced size
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def read_metadata(root: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Parse metadata.jsonl -> ({file_name: captions}, {skip reason: [names]}).

    Lines naming the same file add their captions to it.
    """
    entries: dict[str, list[str]] = {}
    skipped: dict[str, list[str]] = defaultdict(list)
    lines = (root / METADATA).read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            skipped["bad json line"].append(f"line {lineno}")
            continue
        name = row.get("file_name") if isinstance(row, dict) else None
        if not isinstance(name, str) or not name.strip():
            skipped["bad json line"].append(f"line {lineno}")
            continue
        if _unsafe(name):
            skipped["path outside folder"].append(name)
            continue
        caps = _captions(row.get("text"))
        if not caps:
            skipped["missing caption"].append(name)
            continue
        entries.setdefault(name, [])
        entries[name].extend(c for c in caps if c not in entries[name])
    return entries, skipped


def load_folder(path: str | Path, resolution: int) -> CaptionedImages:
    """Load an imagefolder-style directory: images uint8 [N, resolution, resolution, 3]."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder; expected a folder with images and {METADATA}")
    if not (root / METADATA).is_file():
        raise ValueError(f"{root}: no {METADATA}; add lines like "
                         '{"file_name": "cat.png", "text": "a cat"}')
    entries, skipped = read_metadata(root)
    base = root.resolve()
    images: list[np.ndarray] = []
    captions: dict[str, int] = {}
    image_captions: list[list[int]] = []
    for name, caps in entries.items():
        file = (root / name).resolve()
        if not file.is_relative_to(base):  # e.g. a symlink pointing elsewhere
            skipped["path outside folder"].append(name)
            continue
        if not file.is_file():
            skipped["missing file"].append(name)
            continue
        try:
            images.append(load_image(file, resolution))
        except Exception:  # PIL raises many types for corrupt or unsupported files
            skipped["unreadable image"].append(name)
            continue
        image_captions.append([captions.setdefault(c, len(captions)) for c in caps])

    report = {reason: {"count": len(names), "examples": names[:_EXAMPLES]} for reason, names in skipped.items()}
    if report:
        detail = "; ".join(f"{r}: {v['count']} (e.g. {', '.join(v['examples'])})" for r, v in report.items())
        print(f"warning: {root}: skipped {sum(len(v) for v in skipped.values())} entries: {detail}",
              file=sys.stderr)
    if not images:
        counts = ", ".join(f"{r} {v['count']}" for r, v in report.items())
        raise ValueError(f"{root}: no usable images in {METADATA}" + (f" (skipped: {counts})" if report else ""))
    info = {"source": str(root), "skipped": report}
    return CaptionedImages(f"folder:{path}", np.stack(images), list(captions), image_captions, info)


def write_folder(out: str | Path, images: np.ndarray, captions: list[list[str]], names: list[str]) -> Path:
    """Write images uint8 [N, R, R, 3] as `<out>/<names[i]>.png` with `<out>/metadata.jsonl` listing each one's
    captions: a folder `load_folder` reads back. Refuses a folder that already has a metadata.jsonl."""
    out = Path(out)
    if len(images) != len(captions) or len(images) != len(names):
        raise ValueError(f"{len(images)} images, {len(captions)} caption lists and {len(names)} names differ")
    if (out / METADATA).exists():
        raise ValueError(f"{out / METADATA} exists; remove the folder or pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for image, caps, name in zip(images, captions, names):
        file = f"{name}.png"
        Image.fromarray(image).save(out / file)
        lines.append(json.dumps({"file_name": file, "text": caps}, ensure_ascii=False))
    (out / METADATA).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
