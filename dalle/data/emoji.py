"""The `emoji` dataset: Google (Noto), Twitter (Twemoji) and Microsoft (Fluent, flat) emoji with English captions.

`prepare_emoji` builds it once from four npm packages fetched with the ordinary
`npm pack` client and checked against pinned sha512 integrity strings:

* emoji-datasource-google / emoji-datasource-twitter: 64px PNGs
  (`package/img/<style>/64/<image>`) listed in `package/emoji.json`;
* @iconify-json/fluent-emoji-flat: Fluent Emoji (flat) SVG bodies in Iconify JSON
  (`package/icons.json`), mapped to code points by `package/chars.json` and, for icons it leaves
  out, by name; rasterised with resvg (`resvg-py`) at the requested resolution;
* emojibase-data: English labels, CLDR keywords (`package/en/data.json`) and the shortcodes
  of several chat services (`package/en/shortcodes/<source>.json`).

Images are read straight from the tarballs, composited on white and stored as
`<out_dir>/emoji-<R>.npz` (uint8 [N, R, R, 3]) next to `<out_dir>/emoji-<R>.json`
(per-image hexcode, style, label, training captions, held-out caption; package pins; attribution).
`load_emoji` turns the pair into a `CaptionedImages`.

Captions of one image (`image_captions`): the bare label, "label, <style> style", "label, tag1, tag2",
each shortcode in words ("slightly smiling face", "thumbsup") and "<keyword> emoji" for each CLDR keyword
that names few emoji; skin-tone variants take their base's phrases with the tone after a comma. One
shortcode or keyword phrase per label, chosen by `HELDOUT_CAPTION_RULE`, is kept out of the training
captions and recorded as the entry's "heldout_caption".

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
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    "@iconify-json/fluent-emoji-flat@1.2.6":
        "sha512-RY47RgPb47fYUiyrA64sIOL0+UU02s29sXpNBbIQRBUlPlfNFTKUmZDERGuxDs/7yNGWqQYvuaSYM1M4fRXlUw==",
    "emojibase-data@17.0.0":
        "sha512-Yvgb5AWoHViHV/gq1qr5ZAarcBip+B27/ZLRsUJkbgAEaLlZ/fof9g882LTpmEpyhBNEC0m2SEmItljHsTygjA==",
}
DATASOURCE_STYLES: dict[str, str] = {  # image style -> emoji-datasource package holding its 64px PNGs
    "google": "emoji-datasource-google@16.0.0",
    "twitter": "emoji-datasource-twitter@16.0.0",
}
ICONIFY_STYLES: dict[str, str] = {  # image style -> Iconify JSON package holding its SVGs
    "fluent": "@iconify-json/fluent-emoji-flat@1.2.6",
}
STYLES: dict[str, str] = {**DATASOURCE_STYLES, **ICONIFY_STYLES}  # in the order images are stored
LABELS_PACKAGE = "emojibase-data@17.0.0"
SHORTCODE_SOURCES = ("cldr", "github", "iamcal", "emojibase", "joypixels")  # package/en/shortcodes/<name>.json
NATIVE_SIZE = 64
MAX_NPZ_BYTES = 60 * 1000 * 1000
MAX_PHRASE_LABELS = 5  # a shortcode or keyword phrase naming more base emoji than this is no caption
_TAG_STOPWORDS = {"not", "you", "the", "and", "for", "with", "ily", "i'm", "let's"}
_KEYWORD = re.compile(r"[a-z][a-z' -]*[a-z]")  # letters, inner spaces, hyphens, apostrophes
HELDOUT_CAPTION_RULE = (
    "per label, the candidates are its shortcode and keyword phrases that are among no other label's captions "
    "(of any style); sorted, the one at int(sha256(label as UTF-8).hexdigest()[:8], 16) % len(candidates) is "
    "held out of every image's training captions and recorded as the entry's heldout_caption "
    "(emoji.choose_heldout_captions)")

ATTRIBUTION: list[dict[str, str]] = [
    {"what": "google style images", "source": "Google Noto Emoji, via emoji-datasource-google 16.0.0",
     "license": "Apache License 2.0",
     "note": "per the emoji-datasource README; Noto's flag images come from region-flags, which the "
             "Noto Emoji project lists as public domain or otherwise exempt from copyright"},
    {"what": "twitter style images", "source": "Twemoji (jdecked fork, v16.0.1), via emoji-datasource-twitter 16.0.0",
     "license": "CC-BY 4.0", "copyright": "© Twitter, Inc and other contributors"},
    {"what": "fluent style images",
     "source": "Microsoft Fluent Emoji (flat), via @iconify-json/fluent-emoji-flat 1.2.6 (Iconify JSON)",
     "license": "MIT", "copyright": "Copyright (c) Microsoft Corporation.",
     "note": "the package ships no licence file: its info.json names the MIT licence of microsoft/fluentui-emoji, "
             "whose LICENSE carries this copyright line"},
    {"what": "image list and metadata", "source": "emoji-datasource 16.0.0 by Cal Henderson (iamcal)",
     "license": "MIT", "copyright": "Copyright (c) 2013 Cal Henderson"},
    {"what": "labels, keywords and shortcodes", "source": "emojibase-data 17.0.0 by Miles Johnson",
     "license": "MIT", "copyright": "Copyright (c) 2017-2019 Miles Johnson"},
]


def sri_sha512(path: str | Path) -> str:
    """Subresource-integrity string ("sha512-<base64>") of a file."""
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def split_spec(spec: str) -> tuple[str, str]:
    """"name@version" or "@scope/name@version" -> (name, version)."""
    name, sep, version = spec.rpartition("@")
    if not sep or not name or not version:
        raise ValueError(f"not an exact npm spec name@version: {spec!r}")
    return name, version


def tarball_name(spec: str) -> str:
    """File name `npm pack` gives "name@version": "name-version.tgz"; a scope loses its "@" and its "/"
    becomes "-" ("@scope/name@1.0.0" -> "scope-name-1.0.0.tgz")."""
    name, version = split_spec(spec)
    return f"{name.removeprefix('@').replace('/', '-')}-{version}.tgz"


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


def hex_key(code: str) -> str:
    """A code point sequence in one spelling: "0030-fe0f-20e3" and "30-20E3" -> "0030-20E3" (upper case, at
    least four digits a code point, FE0F left out)."""
    return "-".join(f"{int(p, 16):04X}" for p in code.split("-") if int(p, 16) != 0xFE0F)


def read_labels(data: list[dict]) -> dict[str, tuple[str, list[str]]]:
    """emojibase `en/data.json` -> {hexcode: (label, tags)}; skins inherit their parent's tags.

    Keys are stored as given (upper case), without FE0F and as `hex_key`, so any of those forms matches.
    """
    out: dict[str, tuple[str, list[str]]] = {}
    for entry in data:
        tags = list(entry.get("tags") or [])
        for e in (entry, *(entry.get("skins") or [])):
            if e.get("label"):
                value = (e["label"], list(e.get("tags") or tags))
                out.setdefault(e["hexcode"].upper(), value)
                out.setdefault(_norm_hex(e["hexcode"]), value)
                out.setdefault(hex_key(e["hexcode"]), value)
    return out


def lookup_label(labels: Mapping[str, tuple[str, list[str]]], unified: str) -> tuple[str, list[str]] | None:
    return labels.get(unified.upper()) or labels.get(_norm_hex(unified)) or labels.get(hex_key(unified))


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


def make_captions(label: str, style: str, tags: list[str], phrases: Sequence[str] = ()) -> list[str]:
    """[label, "label, <style> style", "label, tag1, tag2", *phrases] (the tag caption only when there are
    tags; `phrases`: the label's shortcode and keyword captions, `label_phrases`), each caption once."""
    text = caption_label(label)
    caps = [text, f"{text}, {style} style"]
    if tags:
        caps.append(", ".join([text, *tags]))
    return list(dict.fromkeys([*caps, *phrases]))


def shortcode_words(code: str) -> str:
    """A shortcode in words: "slightly_smiling_face" -> "slightly smiling face", "flag-jp" -> "flag jp";
    "thumbsup", "+1" and "-1" stay as they are (lower case)."""
    return " ".join(re.sub(r"(?<=[0-9a-z])[_-](?=[0-9a-z])", " ", code.strip().lower()).split())


def keyword_phrase(tag: str, label: str = "") -> str | None:
    """A CLDR keyword (emojibase tag) as a caption: "grin" -> "grin emoji"; None for numbers, symbols,
    stopwords, words under three letters, and keywords whose words are all words of `label` ("bus" of
    "oncoming bus": the label says it already)."""
    word = " ".join(tag.lower().replace("\u2019", "'").split())
    if len(word) < 3 or word in _TAG_STOPWORDS or not _KEYWORD.fullmatch(word):
        return None
    if set(name_key(word).split("-")) <= set(name_key(label).split("-")):
        return None
    return f"{word} emoji"


def _as_list(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def label_phrases(data: list[dict], shortcodes: Mapping[str, Mapping[str, str | list[str]]],
                  max_labels: int = MAX_PHRASE_LABELS) -> dict[str, list[str]]:
    """The shortcode and keyword captions of every emojibase label: {caption label: [phrase, ...]}.

    `data`: emojibase `en/data.json`; `shortcodes`: {source: that source's `en/shortcodes/<source>.json`
    ({hexcode: shortcode or [shortcodes]})}, read in the order given. A base entry's phrases are its
    shortcodes in words (`shortcode_words`), then "<keyword> emoji" for each of its keywords (`keyword_phrase`).
    A phrase is dropped when it is shorter than two characters, when it spells the label of any emoji but for
    punctuation ("flag japan"; the shortcode "sunglasses" of 😎 is the label of 🕶), or when more than
    `max_labels` base emoji carry it (the keyword "face" names 162). A skin-tone variant whose label extends its
    base's ("thumbs up, medium skin tone") takes each of its base's phrases followed by ", <tone>"; any other
    skin variant has none.
    """
    by_key = {src: {hex_key(h): _as_list(v) for h, v in table.items()} for src, table in shortcodes.items()}
    entries = [e for e in data if e.get("label")]
    label_keys = {name_key(e["label"]) for entry in entries for e in (entry, *(entry.get("skins") or []))
                  if e.get("label")}
    base: dict[str, list[str]] = {}
    owners: dict[str, set[str]] = collections.defaultdict(set)
    for entry in entries:
        label = caption_label(entry["label"])
        key = hex_key(entry["hexcode"])
        found = [shortcode_words(c) for table in by_key.values() for c in table.get(key, [])]
        found += [keyword_phrase(t, label) for t in entry.get("tags") or []]
        found = [p for p in found if p and len(p) >= 2 and name_key(p) not in label_keys]
        base[label] = list(dict.fromkeys([*base.get(label, []), *found]))
        for phrase in found:
            owners[phrase].add(label)
    out: dict[str, list[str]] = {}
    for entry in entries:
        label = caption_label(entry["label"])
        kept = [p for p in base[label] if len(owners[p]) <= max_labels]
        out.setdefault(label, kept)
        for skin in entry.get("skins") or []:
            if not skin.get("label"):
                continue
            skin_label = caption_label(skin["label"])
            tone = skin_label[len(label) + 2:] if skin_label.startswith(label + ", ") else ""
            out.setdefault(skin_label, [f"{p}, {tone}" for p in kept] if tone else [])
    return out


def _label_hash(label: str) -> int:
    return int(hashlib.sha256(label.encode("utf-8")).hexdigest()[:8], 16)


def choose_heldout_captions(captions: Mapping[str, Iterable[str]],
                            candidates: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """`HELDOUT_CAPTION_RULE`: {label: its held-out caption}, for the labels that have a candidate.

    `captions`: every caption of each label's images, all styles together, candidates included;
    `candidates`: each label's shortcode and keyword phrases (`label_phrases`). A candidate qualifies
    when no other label has it among its captions, so leaving it out of its own label's images leaves it out
    of every image's.
    """
    owners: dict[str, set[str]] = collections.defaultdict(set)
    for label, caps in captions.items():
        for c in caps:
            owners[c].add(label)
    out: dict[str, str] = {}
    for label, phrases in candidates.items():
        unique = sorted({p for p in phrases if owners.get(p, set()) <= {label}})
        if unique:
            out[label] = unique[_label_hash(label) % len(unique)]
    return out


def name_key(text: str) -> str:
    """A label or an icon name as a comparable key: "Japanese “here” button" -> "japanese-here-button"
    (lower case, apostrophes dropped, any other run of non-alphanumerics as one "-")."""
    text = text.lower().replace("\u2019", "").replace("'", "")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def iconify_hexcodes(icon_set: Mapping, chars: Mapping[str, str],
                     label_keys: Mapping[str, str]) -> tuple[dict[str, str], dict[str, int]]:
    """Which emoji each icon of an Iconify emoji set draws: ({icon name: hex_key}, counts).

    `icon_set`: the set's icons.json (`icons`, `aliases`); `chars`: its chars.json ({code points in hex: icon
    name}); `label_keys`: {name_key(emojibase label): hex_key}. chars.json comes first; icons and aliases it
    leaves out are matched by name, a skin-tone suffix read as the label's ("thumbs-up-medium-dark" is
    "thumbs up: medium-dark skin tone"). Hidden icons (kept by Iconify only for old names) are left out, and
    each emoji is drawn once. counts: "chars.json", "by name", "hidden", "no label", "duplicate".
    """
    icons, aliases = icon_set.get("icons") or {}, icon_set.get("aliases") or {}
    out: dict[str, str] = {}
    taken: set[str] = set()
    counts: collections.Counter[str] = collections.Counter()
    for code, name in sorted(chars.items()):
        key = hex_key(code)
        if name not in icons and name not in aliases:
            counts["no icon"] += 1
        elif name in out or key in taken:
            counts["duplicate"] += 1
        else:
            out[name] = key
            taken.add(key)
            counts["chars.json"] += 1
    for name in [*icons, *aliases]:
        if name in out:
            continue
        if (icons.get(name) or aliases.get(name) or {}).get("hidden"):
            counts["hidden"] += 1
            continue
        key = label_keys.get(name_key(name)) or label_keys.get(name_key(name) + "-skin-tone")
        if key is None:
            counts["no label"] += 1
        elif key in taken:
            counts["duplicate"] += 1
        else:
            out[name] = key
            taken.add(key)
            counts["by name"] += 1
    return out, dict(counts)


def _num(x: float) -> str:
    return f"{x:g}"


def iconify_svg(icon_set: Mapping, name: str) -> str | None:
    """One icon of an Iconify JSON set as an SVG document with a square viewBox centred on the icon's box;
    None when `name` is neither an icon nor an alias that resolves to one.

    Aliases resolve through their parents: flips (hFlip, vFlip) toggle, quarter turns (rotate) add up, and an
    alias's own left/top/width/height win over its parent's, whose win over the set's (0, 0, 16, 16 when
    the set names none).
    """
    icons, aliases = icon_set.get("icons") or {}, icon_set.get("aliases") or {}
    box: dict[str, float] = {}
    h_flip = v_flip = False
    turns = 0
    seen: set[str] = set()
    chain = []
    while name not in icons:
        alias = aliases.get(name)
        if alias is None or name in seen or "parent" not in alias:
            return None
        seen.add(name)
        chain.append(alias)
        name = alias["parent"]
    chain.append(icons[name])
    for item in chain:
        h_flip ^= bool(item.get("hFlip"))
        v_flip ^= bool(item.get("vFlip"))
        turns += int(item.get("rotate") or 0)
        for k in ("left", "top", "width", "height"):
            if k in item:
                box.setdefault(k, float(item[k]))
    left = box.get("left", float(icon_set.get("left", 0)))
    top = box.get("top", float(icon_set.get("top", 0)))
    width = box.get("width", float(icon_set.get("width", 16)))
    height = box.get("height", float(icon_set.get("height", 16)))
    cx, cy, side = left + width / 2, top + height / 2, max(width, height)
    body = icons[name]["body"]
    if turns % 4:
        body = f'<g transform="rotate({90 * (turns % 4)} {_num(cx)} {_num(cy)})">{body}</g>'
    flips = ([f"translate({_num(2 * cx)} 0) scale(-1 1)"] if h_flip else []) + \
            ([f"translate(0 {_num(2 * cy)}) scale(1 -1)"] if v_flip else [])
    if flips:
        body = f'<g transform="{" ".join(flips)}">{body}</g>'
    view = " ".join(_num(v) for v in (cx - side / 2, cy - side / 2, side, side))
    return ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{view}">{body}</svg>')


def svg_to_rgb(svg: str, resolution: int) -> np.ndarray:
    """SVG text -> uint8 [resolution, resolution, 3]: rendered by resvg (antialiased) straight at that size on a
    transparent canvas, then composited on white as the PNG styles are."""
    import resvg_py

    png = resvg_py.svg_to_bytes(svg_string=svg, width=resolution, height=resolution, skip_system_fonts=True)
    return to_rgb(bytes(png), resolution)


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


def _datasource_images(tarball: Path, style: str, labels: Mapping[str, tuple[str, list[str]]], resolution: int,
                       skipped: collections.Counter[str]) -> Iterator[tuple[str, str, list[str], np.ndarray]]:
    """(unified hexcode, label, tags, uint8 [R, R, 3]) for each labelled `style` PNG of an emoji-datasource
    tarball, in the tarball's order; what is left out is counted in `skipped`."""
    listed = list_images(json.loads(_read_member(tarball, "package/emoji.json")), style)
    wanted: dict[str, tuple[str, str, list[str]]] = {}
    for unified, image in listed:
        found = lookup_label(labels, unified)
        if found is None:
            skipped[f"{style}: no label"] += 1
            continue
        wanted[f"package/img/{style}/{NATIVE_SIZE}/{image}"] = (unified, *found)
    seen = set()
    for name, png in _iter_members(tarball, set(wanted)):
        unified, label, tags = wanted[name]
        seen.add(name)
        yield unified, label, tags, to_rgb(png, resolution)
    skipped[f"{style}: image missing from tarball"] += len(wanted) - len(seen)


def _iconify_images(tarball: Path, style: str, labels: Mapping[str, tuple[str, list[str]]],
                    label_keys: Mapping[str, str], resolution: int, skipped: collections.Counter[str],
                    matched: dict[str, dict[str, int]]) -> Iterator[tuple[str, str, list[str], np.ndarray]]:
    """(hex_key, label, tags, uint8 [R, R, 3]) for each icon of an Iconify emoji tarball that `iconify_hexcodes`
    maps to a labelled emoji, in code point order; its match counts go to matched[style]."""
    icon_set = json.loads(_read_member(tarball, "package/icons.json"))
    chars = json.loads(_read_member(tarball, "package/chars.json"))
    names, counts = iconify_hexcodes(icon_set, chars, label_keys)
    matched[style] = counts
    for name, key in sorted(names.items(), key=lambda kv: [int(p, 16) for p in kv[1].split("-")]):
        found = lookup_label(labels, key)
        svg = iconify_svg(icon_set, name)
        if found is None or svg is None:
            skipped[f"{style}: {'no label' if found is None else 'no icon body'}"] += 1
            continue
        yield key, *found, svg_to_rgb(svg, resolution)


def prepare_emoji(out_dir: str | Path = "data/emoji", resolution: int = NATIVE_SIZE,
                  work_dir: str | Path | None = None, integrity: Mapping[str, str] | None = None) -> Path:
    """Build emoji-<resolution>.npz/.json in `out_dir`; returns the .npz path.

    Tarballs are fetched with `npm pack` into `work_dir` (a temporary folder when None);
    tarballs already in `work_dir` under npm's file names are reused. Every tarball is
    checked against `integrity` (default: the pinned `PACKAGES`) before it is read.
    Images are stored style by style (`STYLES` order); each entry's "captions" are its training captions
    and its "heldout_caption" (or null) the caption `HELDOUT_CAPTION_RULE` keeps out of them.
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

        labels_tgz = tarballs[LABELS_PACKAGE]
        base = json.loads(_read_member(labels_tgz, "package/en/data.json"))
        labels = read_labels(base)
        tag_counts = collections.Counter(t.lower() for e in base for t in (e.get("tags") or []))
        shortcodes = {src: json.loads(_read_member(labels_tgz, f"package/en/shortcodes/{src}.json"))
                      for src in SHORTCODE_SOURCES}
        phrases = label_phrases(base, shortcodes)
        label_keys: dict[str, str] = {}
        for entry in base:
            for e in (entry, *(entry.get("skins") or [])):
                if e.get("label"):
                    label_keys.setdefault(name_key(e["label"]), hex_key(e["hexcode"]))

        images: list[np.ndarray] = []
        found: list[tuple[str, str, str, list[str]]] = []  # per image: hexcode, style, label, tags
        skipped: collections.Counter[str] = collections.Counter()
        matched: dict[str, dict[str, int]] = {}
        unified_of: dict[str, str] = {}  # hex_key -> emoji-datasource's spelling, shared by every style
        for style, spec in STYLES.items():
            if style in DATASOURCE_STYLES:
                drawn = _datasource_images(tarballs[spec], style, labels, resolution, skipped)
            else:
                drawn = _iconify_images(tarballs[spec], style, labels, label_keys, resolution, skipped, matched)
            for code, label, tags, rgb in drawn:
                if style in DATASOURCE_STYLES:
                    unified_of.setdefault(hex_key(code), code)
                images.append(rgb)
                found.append((unified_of.get(hex_key(code), code), style, label, tags))
        skipped = collections.Counter({k: v for k, v in skipped.items() if v})
        if not images:
            raise ValueError("no emoji images could be prepared")

        captions = [make_captions(label, style, pick_tags(label, tags, tag_counts),
                                  phrases.get(caption_label(label), []))
                    for _, style, label, tags in found]
        by_label: dict[str, set[str]] = collections.defaultdict(set)
        for (_, _, label, _), caps in zip(found, captions):
            by_label[caption_label(label)].update(caps)
        heldout = choose_heldout_captions(by_label, {lab: phrases.get(lab, []) for lab in by_label})
        entries: list[dict] = []
        for (code, style, label, _), caps in zip(found, captions):
            text = caption_label(label)
            held = heldout.get(text)
            entries.append({"hexcode": code, "style": style, "label": text,
                            "captions": [c for c in caps if c != held], "heldout_caption": held})
        leaked = set(heldout.values()) & {c for e in entries for c in e["captions"]}
        if leaked:
            raise ValueError(f"held-out captions among the training captions: {sorted(leaked)[:5]}")

        array = np.stack(images)
        npz_path = out_dir / f"emoji-{resolution}.npz"
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=array)
        if buffer.tell() >= MAX_NPZ_BYTES:
            raise ValueError(f"emoji npz would be {buffer.tell() / 1e6:.1f} MB (limit {MAX_NPZ_BYTES / 1e6:.0f} MB)")
        _atomic_write(npz_path, lambda f: f.write(buffer.getvalue()))
        png_size = "at their 64px" if resolution == NATIVE_SIZE else f"resized to {resolution}px (Lanczos)"
        meta = {
            "resolution": resolution,
            "packages": [dict(zip(("name", "version"), split_spec(s)), integrity=pins[s]) for s in tarballs],
            "attribution": ATTRIBUTION,
            "changes": f"alpha composited on white, converted to RGB; PNG styles {png_size}; "
                       f"SVG styles ({', '.join(ICONIFY_STYLES)}) rendered with resvg at {resolution}px",
            "skipped": dict(skipped),
            "iconify_matched": matched,
            "caption_sources": {"shortcodes": list(SHORTCODE_SOURCES), "keywords": "emojibase tags",
                                "max_phrase_labels": MAX_PHRASE_LABELS},
            "heldout_caption_rule": HELDOUT_CAPTION_RULE,
            "images": entries,
        }
        text = json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8")
        _atomic_write(out_dir / f"emoji-{resolution}.json", lambda f: f.write(text))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    per_style = collections.Counter(e["style"] for e in entries)
    n_caps = len({c for e in entries for c in e["captions"]})
    per_image = sum(len(e["captions"]) for e in entries) / len(entries)
    print(f"emoji: {len(entries)} images ({', '.join(f'{k} {v}' for k, v in per_style.items())}), "
          f"{per_image:.1f} training captions an image, {n_caps} unique, {len(heldout)} held-out captions "
          f"(one a label), {npz_path.stat().st_size / 1e6:.1f} MB, "
          f"skipped {sum(skipped.values())}{f' {dict(skipped)}' if skipped else ''}, "
          + "".join(f"{k} icons matched {v}, " for k, v in matched.items())
          + f"{time.time() - start:.0f}s -> {npz_path}")
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


def write_emoji_folder(out: str | Path, style: str = "fluent", root: str | Path = "data/emoji",
                       resolution: int = NATIVE_SIZE) -> Path:
    """Write one style of the prepared emoji data as a captioned image folder (`dalle/data/folder.py` layout):
    a folder like the ones people bring, for trying `python -m dalle train --data FOLDER`. Each image keeps
    its training captions except the one naming its style (a folder of one style has no style to name);
    held-out captions stay out."""
    from .folder import write_folder

    if style not in STYLES:
        raise ValueError(f"unknown emoji style {style!r}; one of {', '.join(STYLES)}")
    data = load_emoji(root, resolution)
    entries = json.loads((Path(root) / f"emoji-{resolution}.json").read_text(encoding="utf-8"))["images"]
    rows = [i for i, e in enumerate(entries) if e["style"] == style]
    if not rows:
        raise ValueError(f"{root}: the prepared emoji data has no {style} images; prepare it again")
    named = f", {style} style"
    captions = [[c for c in entries[i]["captions"] if not c.endswith(named)] for i in rows]
    names = [f"{entries[i]['hexcode'].lower()}-{n}" for n, i in enumerate(rows)]
    out = write_folder(out, data.images[rows], captions, names)
    print(f"emoji folder: {len(rows)} {style} images at {resolution}px with "
          f"{sum(map(len, captions)) / len(rows):.1f} captions each -> {out}")
    return out


def load_emoji(root: str | Path = "data/emoji", resolution: int = NATIVE_SIZE) -> CaptionedImages:
    """Load the prepared dataset: images uint8 [N, R, R, 3], each with its training captions (held-out
    captions are not among them)."""
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
    if meta.get("heldout_caption_rule"):
        info["heldout_caption_rule"] = meta["heldout_caption_rule"]
    return CaptionedImages("emoji", images, list(index), image_captions, info)
