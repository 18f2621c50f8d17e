"""The `emoji` dataset: Google (Noto) and Twitter (Twemoji) emoji with English captions.

`prepare_emoji` builds it once from three npm packages fetched with the ordinary
`npm pack` client and checked against pinned sha512 integrity strings:

* emoji-datasource-google / emoji-datasource-twitter: 64px PNGs
  (`package/img/<style>/64/<image>`) listed in `package/emoji.json`;
* emojibase-data: English labels and tags (`package/en/data.json`).

Images are read straight from the tarballs, composited on white and stored as
`<out_dir>/emoji-<R>.npz` (uint8 [N, R, R, 3]) next to `<out_dir>/emoji-<R>.json`
(per-image hexcode, style, label, captions; package pins; attribution).
`load_emoji` turns the pair into a `CaptionedImages`.

`prepare_emoji_names` writes the package's own `emoji_names.json` ({emoji sequence without FE0F:
caption label}) from emojibase-data's labels, so prompts spell emoji the way captions do even
where no dataset was prepared (`dalle/prompts.py`); `python -m dalle prepare emoji-names`.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from .captioned import CaptionedImages

# npm spec -> sha512 SRI of its tarball, as `npm pack --json` reported it when pinned.
PACKAGES: dict[str, str] = {
    "emoji-datasource-google@16.0.0":
        "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
    "emoji-datasource-twitter@16.0.0":
        "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
    "emojibase-data@17.0.0":
        "sha512-Yvgb5AWoHViHV/gq1qr5ZAarcBip+B27/ZLRsUJkbgAEaLlZ/fof9g882LTpmEpyhBNEC0m2SEmItljHsTygjA==",
}
STYLES: dict[str, str] = {  # image style -> package holding its PNGs (only these two sets are used)
    "google": "emoji-datasource-google@16.0.0",
    "twitter": "emoji-datasource-twitter@16.0.0",
}
LABELS_PACKAGE = "emojibase-data@17.0.0"
NATIVE_SIZE = 64
MAX_NPZ_BYTES = 60 * 1000 * 1000
_TAG_STOPWORDS = {"not", "you", "the", "and", "for", "with", "ily"}

ATTRIBUTION: list[dict[str, str]] = [
    {"what": "google style images", "source": "Google Noto Emoji, via emoji-datasource-google 16.0.0",
     "license": "Apache License 2.0",
     "note": "per the emoji-datasource README; Noto's flag images come from region-flags, which the "
             "Noto Emoji project lists as public domain or otherwise exempt from copyright"},
    {"what": "twitter style images", "source": "Twemoji (jdecked fork, v16.0.1), via emoji-datasource-twitter 16.0.0",
     "license": "CC-BY 4.0", "copyright": "© Twitter, Inc and other contributors"},
    {"what": "image list and metadata", "source": "emoji-datasource 16.0.0 by Cal Henderson (iamcal)",
     "license": "MIT", "copyright": "Copyright (c) 2013 Cal Henderson"},
    {"what": "labels and tags", "source": "emojibase-data 17.0.0 by Miles Johnson",
     "license": "MIT", "copyright": "Copyright (c) 2017-2019 Miles Johnson"},
]


def sri_sha512(path: str | Path) -> str:
    """Subresource-integrity string ("sha512-<base64>") of a file."""
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def tarball_name(spec: str) -> str:
    """File name `npm pack` gives an unscoped "name@version": "name-version.tgz"."""
    name, version = spec.rsplit("@", 1)
    return f"{name}-{version}.tgz"


def fetch_tarballs(specs: list[str], dest: Path) -> dict[str, Path]:
    """Tarballs for `specs` in `dest`; those not already there are fetched with `npm pack`."""
    missing = [s for s in specs if not (dest / tarball_name(s)).is_file()]
    if missing:
        cmd = ["npm", "pack", *missing, "--json", "--pack-destination", str(dest)]
        try:
            done = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=900)
        except FileNotFoundError as e:
            raise RuntimeError("`npm` not found: install Node.js/npm to prepare the emoji dataset") from e
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    paths = {s: dest / tarball_name(s) for s in specs}
    for spec, path in paths.items():
        if not path.is_file():
            raise RuntimeError(f"npm pack did not produce {path.name} for {spec}")
    return paths


def verify_integrity(path: Path, expected: str) -> None:
    """Raise ValueError unless the file's sha512 SRI equals `expected`."""
    actual = sri_sha512(path)
    if actual != expected:
        raise ValueError(f"integrity mismatch for {path.name}: expected {expected}, got {actual}; "
                         "delete the file and fetch it again, or check the pinned version")


def _read_member(tgz: Path, name: str) -> bytes:
    with tarfile.open(tgz, "r:gz") as tar:
        f = tar.extractfile(name)
        if f is None:
            raise ValueError(f"{tgz.name}: {name} is not a regular file")
        return f.read()


def _iter_members(tgz: Path, names: set[str]) -> Iterator[tuple[str, bytes]]:
    """Stream the tarball once, yielding (name, bytes) for members in `names`."""
    with tarfile.open(tgz, "r|gz") as tar:
        for member in tar:
            if member.isfile() and member.name in names:
                yield member.name, tar.extractfile(member).read()


def _norm_hex(code: str) -> str:
    return code.upper().replace("-FE0F", "")


def read_labels(data: list[dict]) -> dict[str, tuple[str, list[str]]]:
    """emojibase `en/data.json` -> {hexcode: (label, tags)}; skins inherit their parent's tags.

    Keys are stored both as given (upper case) and without FE0F, so either form matches.
    """
    out: dict[str, tuple[str, list[str]]] = {}
    for entry in data:
        tags = list(entry.get("tags") or [])
        for e in (entry, *(entry.get("skins") or [])):
            if e.get("label"):
                value = (e["label"], list(e.get("tags") or tags))
                out.setdefault(e["hexcode"].upper(), value)
                out.setdefault(_norm_hex(e["hexcode"]), value)
    return out


def lookup_label(labels: Mapping[str, tuple[str, list[str]]], unified: str) -> tuple[str, list[str]] | None:
    return labels.get(unified.upper()) or labels.get(_norm_hex(unified))


def list_images(emoji_json: list[dict], style: str) -> list[tuple[str, str]]:
    """emoji-datasource `emoji.json` -> [(unified hexcode, image file)] that have a `style` image."""
    out = []
    for entry in emoji_json:
        for e in (entry, *(entry.get("skin_variations") or {}).values()):
            if e.get(f"has_img_{style}"):
                out.append((e["unified"], e["image"]))
    return out


def caption_label(label: str) -> str:
    """"thumbs up: medium skin tone" -> "thumbs up, medium skin tone" (lower case)."""
    return label.replace(": ", ", ").strip().lower()


NAMES_FILE = Path(__file__).with_name("emoji_names.json")
VARIATION_SELECTOR_16 = "\ufe0f"  # emoji presentation: optional in a prompt, so keys leave it out
SKIN_TONES = frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))
REGIONAL_INDICATORS = frozenset(chr(c) for c in range(0x1F1E6, 0x1F200))


def names_key(sequence: str) -> str:
    """An emoji sequence as `emoji_names.json` keys it: without FE0F."""
    return sequence.replace(VARIATION_SELECTOR_16, "")


def skin_tone_label(key: str, names: Mapping[str, str]) -> str | None:
    """The caption label of a skin-tone sequence made from its base's: "👍🏽" -> names["👍"] + ", medium skin tone".

    Several modifiers are named in order, once when they are all the same ("people holding hands, light skin
    tone"), as emojibase names most variants. None when `key` has no modifier, starts with one, has two in a
    row, or its base (the key without modifiers) is not in `names`.
    """
    tones = [c for c in key if c in SKIN_TONES]
    if not tones or key[0] in SKIN_TONES or any(a in SKIN_TONES and b in SKIN_TONES for a, b in zip(key, key[1:])):
        return None
    base = names.get("".join(c for c in key if c not in SKIN_TONES))
    if base is None or any(t not in names for t in tones):
        return None
    if len(set(tones)) == 1:
        tones = tones[:1]
    return ", ".join([base, *(names[t] for t in tones)])


def emoji_names(data: list[dict]) -> dict[str, str]:
    """emojibase `en/data.json` -> {sequence without FE0F: caption_label(label)}, keys sorted.

    Skin variants whose label `skin_tone_label` rebuilds from their base are left out (about half the
    entries), and so are lone regional-indicator letters (a prompt spells an unknown pair "flag XX").
    """
    full: dict[str, str] = {}
    for entry in data:
        for e in (entry, *(entry.get("skins") or [])):
            if e.get("emoji") and e.get("label"):
                full.setdefault(names_key(e["emoji"]), caption_label(e["label"]))
    return {k: v for k, v in sorted(full.items())
            if k not in REGIONAL_INDICATORS and skin_tone_label(k, full) != v}


def names_json(names: Mapping[str, str]) -> str:
    """The text of `emoji_names.json`: one entry a line, keys sorted, UTF-8 (not escaped)."""
    return json.dumps(dict(names), ensure_ascii=False, sort_keys=True, indent=0, separators=(",", ":")) + "\n"


def build_emoji_names(labels_tarball: Path) -> dict[str, str]:
    """`emoji_names` of the emojibase-data tarball's `package/en/data.json`."""
    return emoji_names(json.loads(_read_member(labels_tarball, "package/en/data.json")))


def pick_tags(label: str, tags: list[str], tag_counts: Mapping[str, int], k: int = 2) -> list[str]:
    """Up to k tags not already in the label (as a substring), the most common across the dataset first."""
    text = caption_label(label)
    keep = dict.fromkeys(t.lower() for t in tags)  # dedupe, keep order
    keep = [t for t in keep if t.isalpha() and len(t) >= 3 and t not in text and t not in _TAG_STOPWORDS]
    return sorted(keep, key=lambda t: (-tag_counts.get(t, 0), t))[:k]


def make_captions(label: str, style: str, tags: list[str]) -> list[str]:
    """[label, "label, <style> style", "label, tag1, tag2"] (the last only when there are tags)."""
    text = caption_label(label)
    caps = [text, f"{text}, {style} style"]
    if tags:
        caps.append(", ".join([text, *tags]))
    return caps


def canonical_caption(entry: Mapping) -> str:
    """The caption evaluation uses for one image entry of emoji-<R>.json: "label, style style"."""
    return f"{entry['label']}, {entry['style']} style"


def to_rgb(png: bytes, resolution: int) -> np.ndarray:
    """PNG bytes -> uint8 [resolution, resolution, 3], alpha composited on white."""
    img = Image.open(io.BytesIO(png)).convert("RGBA")
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, img).convert("RGB")
    if rgb.size != (resolution, resolution):
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8)


def _atomic_write(path: Path, write) -> None:
    """Call write(binary file) on a temporary file next to `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_emoji(out_dir: str | Path = "data/emoji", resolution: int = NATIVE_SIZE,
                  work_dir: str | Path | None = None, integrity: Mapping[str, str] | None = None) -> Path:
    """Build emoji-<resolution>.npz/.json in `out_dir`; returns the .npz path.

    Tarballs are fetched with `npm pack` into `work_dir` (a temporary folder when None);
    tarballs already in `work_dir` under npm's file names are reused. Every tarball is
    checked against `integrity` (default: the pinned `PACKAGES`) before it is read.
    """
    start = time.time()
    pins = dict(PACKAGES if integrity is None else integrity)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = None if work_dir is not None else tempfile.mkdtemp(prefix="emoji-npm-")
    try:
        work = Path(work_dir if work_dir is not None else tmp)
        work.mkdir(parents=True, exist_ok=True)
        tarballs = fetch_tarballs([*STYLES.values(), LABELS_PACKAGE], work)
        for spec, path in tarballs.items():
            if spec not in pins:
                raise ValueError(f"no pinned integrity for {spec}")
            verify_integrity(path, pins[spec])

        base = json.loads(_read_member(tarballs[LABELS_PACKAGE], "package/en/data.json"))
        labels = read_labels(base)
        tag_counts = collections.Counter(t.lower() for e in base for t in (e.get("tags") or []))

        images: list[np.ndarray] = []
        entries: list[dict] = []
        skipped: collections.Counter[str] = collections.Counter()
        for style, spec in STYLES.items():
            listed = list_images(json.loads(_read_member(tarballs[spec], "package/emoji.json")), style)
            wanted: dict[str, tuple[str, str, list[str]]] = {}
            for unified, image in listed:
                found = lookup_label(labels, unified)
                if found is None:
                    skipped[f"{style}: no label"] += 1
                    continue
                wanted[f"package/img/{style}/{NATIVE_SIZE}/{image}"] = (unified, *found)
            seen = set()
            for name, png in _iter_members(tarballs[spec], set(wanted)):
                unified, label, tags = wanted[name]
                seen.add(name)
                images.append(to_rgb(png, resolution))
                entries.append({"hexcode": unified, "style": style, "label": caption_label(label),
                                "captions": make_captions(label, style, pick_tags(label, tags, tag_counts))})
            skipped[f"{style}: image missing from tarball"] += len(wanted) - len(seen)
        skipped = collections.Counter({k: v for k, v in skipped.items() if v})
        if not images:
            raise ValueError("no emoji images could be prepared")

        array = np.stack(images)
        npz_path = out_dir / f"emoji-{resolution}.npz"
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=array)
        if buffer.tell() >= MAX_NPZ_BYTES:
            raise ValueError(f"emoji npz would be {buffer.tell() / 1e6:.1f} MB (limit {MAX_NPZ_BYTES / 1e6:.0f} MB)")
        _atomic_write(npz_path, lambda f: f.write(buffer.getvalue()))
        meta = {
            "resolution": resolution,
            "packages": [{"name": s.rsplit("@", 1)[0], "version": s.rsplit("@", 1)[1], "integrity": pins[s]}
                         for s in tarballs],
            "attribution": ATTRIBUTION,
            "changes": "alpha composited on white, converted to RGB"
                       + ("" if resolution == NATIVE_SIZE else f", resized to {resolution}px (Lanczos)"),
            "skipped": dict(skipped),
            "images": entries,
        }
        text = json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8")
        _atomic_write(out_dir / f"emoji-{resolution}.json", lambda f: f.write(text))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    per_style = collections.Counter(e["style"] for e in entries)
    n_caps = len({c for e in entries for c in e["captions"]})
    print(f"emoji: {len(entries)} images ({', '.join(f'{k} {v}' for k, v in per_style.items())}), "
          f"{n_caps} unique captions, {npz_path.stat().st_size / 1e6:.1f} MB, "
          f"skipped {sum(skipped.values())}{f' {dict(skipped)}' if skipped else ''}, "
          f"{time.time() - start:.0f}s -> {npz_path}")
    return npz_path


def prepare_emoji_names(out: str | Path = NAMES_FILE, work_dir: str | Path | None = None,
                        integrity: Mapping[str, str] | None = None) -> Path:
    """Write `emoji_names.json` (default: the package's own) from the pinned, sha512-checked emojibase-data
    tarball, fetched with `npm pack` into `work_dir` (a temporary folder when None) unless already there."""
    pins = dict(PACKAGES if integrity is None else integrity)
    out = Path(out)
    tmp = None if work_dir is not None else tempfile.mkdtemp(prefix="emoji-npm-")
    try:
        work = Path(work_dir if work_dir is not None else tmp)
        work.mkdir(parents=True, exist_ok=True)
        tarball = fetch_tarballs([LABELS_PACKAGE], work)[LABELS_PACKAGE]
        if LABELS_PACKAGE not in pins:
            raise ValueError(f"no pinned integrity for {LABELS_PACKAGE}")
        verify_integrity(tarball, pins[LABELS_PACKAGE])
        names = build_emoji_names(tarball)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    text = names_json(names).encode("utf-8")
    _atomic_write(out, lambda f: f.write(text))
    print(f"emoji names: {len(names)} entries from {LABELS_PACKAGE}, {len(text)} bytes -> {out}")
    return out


def load_emoji(root: str | Path = "data/emoji", resolution: int = NATIVE_SIZE) -> CaptionedImages:
    """Load the prepared dataset: images uint8 [N, R, R, 3] with 2-3 captions each."""
    root = Path(root)
    npz_path, json_path = root / f"emoji-{resolution}.npz", root / f"emoji-{resolution}.json"
    for path in (npz_path, json_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run `python -m dalle prepare emoji` first")
    with np.load(npz_path, allow_pickle=False) as npz:
        images = npz["images"]
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    if images.ndim != 4 or images.shape[1:] != (resolution, resolution, 3) or images.dtype != np.uint8:
        raise ValueError(f"{npz_path}: expected uint8 [N, {resolution}, {resolution}, 3], "
                         f"got {images.dtype} {list(images.shape)}")
    entries = meta["images"]
    if len(entries) != len(images):
        raise ValueError(f"{json_path} lists {len(entries)} images but {npz_path} holds {len(images)}; prepare again")
    index: dict[str, int] = {}
    image_captions = [[index.setdefault(c, len(index)) for c in e["captions"]] for e in entries]
    info = {"source": "npm: " + ", ".join(f"{p['name']}@{p['version']}" for p in meta["packages"]),
            "packages": meta["packages"], "attribution": meta["attribution"], "changes": meta.get("changes"),
            "styles": dict(collections.Counter(e["style"] for e in entries))}
    return CaptionedImages("emoji", images, list(index), image_captions, info)
