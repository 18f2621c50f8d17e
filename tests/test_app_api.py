"""The app through its HTTP API (gradio_client): every endpoint, sizes, score ranges,
determinism, and a clear message for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

GOOD = ("a large red circle at the top left\ntwo green triangles", 123, 0.7, 3, "shapes-32", 0)


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def resolution(checkpoints_dir: Path, name: str) -> int:
    return json.loads((checkpoints_dir / name / "config.json").read_text())["model"]["resolution"]


def grid_size(rows: int, cols: int, res: int, pad: int = 2) -> tuple[int, int]:
    """(width, height) of dalle.images.grid_image for rows x cols tiles."""
    return cols * (res + pad) + pad, rows * (res + pad) + pad


def generate(client: Client, *args):
    return client.predict(*args, api_name="/generate")


def test_named_endpoints(client: Client) -> None:
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate", "/compare", "/interpolate"} <= set(named)


def test_generate_returns_images_scores_and_png_metadata(client: Client, checkpoints_dir: Path) -> None:
    grid, gallery, table, png, notes = generate(client, *GOOD)
    res = resolution(checkpoints_dir, "shapes-32")
    native = grid_size(2, 3, res)
    with Image.open(png) as im:
        assert im.size == native
        meta = dict(im.text)
    assert json.loads(meta["prompts"]) == ["a large red circle at the top left", "two green triangles"]
    assert json.loads(meta["seed"]) == 123 and json.loads(meta["truncation"]) == pytest.approx(0.7)
    assert meta["checkpoint"] == "shapes-32" and "step" in meta
    with Image.open(grid) as im:  # the displayed grid is the same grid, enlarged by a whole factor
        k = im.width // native[0]
        assert k >= 1 and im.size == (native[0] * k, native[1] * k)
    assert len(gallery) == 6
    assert all("seed" in item["caption"] and "realism" in item["caption"] for item in gallery)
    with Image.open(gallery[0]["image"]) as im:
        assert im.width == im.height and im.width % res == 0
    assert table["headers"] == ["prompt", "seed", "realism", "text match"]
    assert [row[1] for row in table["data"]] == [123, 124, 125] * 2
    scores = np.array([row[2:] for row in table["data"]], dtype=float)
    assert scores.shape == (6, 2) and ((scores >= 0) & (scores <= 1)).all()
    assert "shapes-32" in notes and "seeds 123–125" in notes


def test_generate_is_deterministic(client: Client) -> None:
    a, b = generate(client, *GOOD), generate(client, *GOOD)
    assert Path(a[3]).read_bytes() == Path(b[3]).read_bytes()
    assert Path(a[0]).read_bytes() == Path(b[0]).read_bytes()
    other = generate(client, GOOD[0], 124, *GOOD[2:])
    assert Path(other[3]).read_bytes() != Path(a[3]).read_bytes()
    # a seed is an image: seed 124 leads the new row and was second in the first one
    first, second = (np.asarray(Image.open(g[1][i]["image"]), dtype=int) for g, i in ((other, 0), (a, 1)))
    assert np.abs(first - second).max() <= 2


def test_best_of_n_keeps_the_top_scored(client: Client) -> None:
    _, gallery, table, png, notes = generate(client, "a small blue square in the center", 7, 0.7, 2, "shapes-32", 6)
    assert len(gallery) == 2 and "best 2 of 6" in notes
    seeds = [row[1] for row in table["data"]]
    scores = [row[2] * row[3] for row in table["data"]]
    assert all(7 <= s <= 12 for s in seeds) and scores[0] >= scores[1] - 1e-3
    with Image.open(png) as im:
        assert json.loads(im.text["best_of"]) == 6


def test_emoji_and_other_scripts(client: Client) -> None:
    prompts = "❤️ red heart\nсердце\n心\nقلب 🙂"
    _, gallery, table, _, _ = generate(client, prompts, 0, 0.7, 1, "emoji-32", 0)
    assert len(gallery) == 4 and [row[0] for row in table["data"]] == prompts.splitlines()


def test_emoji_prompts_are_spelled_out_and_unknown_text_is_flagged(client: Client) -> None:
    _, gallery, table, _, notes = generate(client, "😀\n🍕\nꙮꙮꙮ", 0, 1.0, 1, "emoji-32", 0)
    assert [row[0] for row in table["data"]] == ["😀", "🍕", "ꙮꙮꙮ"]  # rows keep the user's text
    assert "emoji spelled out for the text encoder as 'grinning face'" in notes
    assert "'slice of pizza'" in notes
    assert "Prompt 3 ('ꙮꙮꙮ') is mostly text the encoder does not know" in notes
    first, second = (Image.open(g["image"]) for g in gallery[:2])
    assert list(first.getdata()) != list(second.getdata())  # two emoji, two images


def test_prompt_over_the_token_limit_is_cut_with_a_warning(client: Client) -> None:
    long = " ".join(["a large red circle at the top left"] * 25)  # ~875 characters, > 128 tokens
    *_, notes = generate(client, long, 0, 0.7, 1, "shapes-32", 0)
    assert "token limit" in notes and "first 128 tokens" in notes


def test_compare_two_checkpoints(client: Client, checkpoints_dir: Path) -> None:
    out = client.predict("a large red circle at the top left\nred heart", 3, 0.7, 2, ["shapes-32", "emoji-32"],
                         api_name="/compare")
    grids, heads, feet, summary = out[:4], out[4:8], out[8:12], out[12]
    assert grids[2] is None and grids[3] is None
    for grid, name in zip(grids[:2], ["shapes-32", "emoji-32"]):
        with Image.open(grid) as im:
            native = grid_size(2, 2, resolution(checkpoints_dir, name))
            assert im.width % native[0] == 0 and im.height % native[1] == 0
    assert "shapes-32" in heads[0] and "emoji-32" in heads[1] and "step" in heads[0] and "images seen" in heads[0]
    assert all("mean realism" in f and "mean match" in f for f in feet[:2]) and feet[2] == ""
    assert [row[0] for row in summary["data"]] == ["shapes-32", "emoji-32"]
    assert all(0 <= row[3] <= 1 and 0 <= row[4] <= 1 for row in summary["data"])


def test_interpolate_gif_and_strip(client: Client, checkpoints_dir: Path) -> None:
    gif, strip, notes = client.predict("both", "red heart", "grinning face", 1, 2, 5, 0.7, "emoji-32",
                                       api_name="/interpolate")
    res = resolution(checkpoints_dir, "emoji-32")
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 8  # 5 frames there and 3 back
    with Image.open(strip) as im:
        native = grid_size(1, 5, res)
        assert im.width % native[0] == 0 and im.height == native[1] * (im.width // native[0])
    assert "5 frames" in notes and "seed 1 → 2" in notes


def test_model_card(client: Client) -> None:
    summary, metrics, _samples, losses, _reg, accuracy, config, readme = client.predict(
        "shapes-32", api_name="/model_card")
    assert "shapes-32" in summary and "step" in summary
    assert config["model"]["resolution"] in (32, 64, 128)
    assert losses["data"] and {r[1] for r in losses["data"]} <= {"loss_d", "loss_g", "loss_joint_d", "loss_joint_g", "recon"}
    assert accuracy["data"]
    assert readme


def test_failed_and_skipped_folders_are_reported(client: Client) -> None:
    status, gen_choices, *_ = client.predict("shapes-32", ["shapes-32", "emoji-32"], "shapes-32", "shapes-32",
                                             api_name="/rescan")
    assert "`broken` failed to load" in status and "generator.safetensors" in status
    assert "Skipped (not generators): `evaluator`" in status
    names = [c[0] for c in gen_choices["choices"]]
    assert names == ["emoji-32", "shapes-32"]


BAD_GENERATE = [
    (("", 0, 0.7, 2, "shapes-32", 0), "Enter a prompt"),
    (("   \n\n  ", 0, 0.7, 2, "shapes-32", 0), "Enter a prompt"),
    (("a\n" * 9, 0, 0.7, 2, "shapes-32", 0), r"At most 8 prompts"),
    (("x" * (1 << 20), 0, 0.7, 2, "shapes-32", 0), "characters"),
    (("y" * 1001, 0, 0.7, 2, "shapes-32", 0), "Prompt 1 is 1,001 characters long"),
    ((42, 0, 0.7, 2, "shapes-32", 0), "Prompts must be text"),
    (("a", "abc", 0.7, 2, "shapes-32", 0), "Seed must be a number"),
    (("a", -1, 0.7, 2, "shapes-32", 0), "Seed must be between 0 and 2,147,483,647"),
    (("a", 2**31, 0.7, 2, "shapes-32", 0), "Seed must be between"),
    (("a", 10**30, 0.7, 2, "shapes-32", 0), "Seed must be between"),
    (("a", 1.5, 0.7, 2, "shapes-32", 0), "Seed must be a whole number"),
    (("a", 0, -0.1, 2, "shapes-32", 0), "Truncation ψ must be between 0.0 and 1.5"),
    (("a", 0, 1e308, 2, "shapes-32", 0), "Truncation ψ must be between"),
    (("a", 0, "0.7", 2, "shapes-32", 0), "Truncation ψ must be a number"),
    (("a", 0, 0.7, 0, "shapes-32", 0), "Images per prompt must be between 1 and 8"),
    (("a", 0, 0.7, 9, "shapes-32", 0), "Images per prompt must be between 1 and 8"),
    (("a", 0, 0.7, True, "shapes-32", 0), "Images per prompt must be a number"),
    (("a", 0, 0.7, 2, "shapes-32", 33), "Best of N must be between 0 and 32"),
    (("a", 0, 0.7, 2, "nope", 0), "Unknown checkpoint 'nope'"),
    (("a", 0, 0.7, 2, "broken", 0), "Unknown checkpoint 'broken'"),
    (("a", 0, 0.7, 2, "evaluator", 0), "Unknown checkpoint 'evaluator'"),
    (("a", 0, 0.7, 2, "../../etc/passwd", 0), "Checkpoint paths are not accepted"),
    (("a", 0, 0.7, 2, "/etc", 0), "Checkpoint paths are not accepted"),
    (("a", 0, 0.7, 2, None, 0), "Unknown checkpoint None"),
]


@pytest.mark.parametrize("args,message", BAD_GENERATE, ids=[m[:24] for _, m in BAD_GENERATE])
def test_generate_rejects_bad_input(client: Client, args: tuple, message: str) -> None:
    with pytest.raises(AppError, match=message):
        generate(client, *args)


BAD_OTHER = [
    ("/compare", ("a", 0, 0.7, 2, ["shapes-32"]), "Pick 2 to 4 different checkpoints"),
    ("/compare", ("a", 0, 0.7, 2, ["shapes-32", "shapes-32"]), "Pick 2 to 4 different checkpoints"),
    ("/compare", ("a", 0, 0.7, 2, "shapes-32"), "Checkpoints must be a list"),
    ("/compare", ("a", 0, 0.7, 2, ["shapes-32", "../checkpoints/emoji-32"]), "Checkpoint paths are not accepted"),
    ("/compare", ("", 0, 0.7, 2, ["shapes-32", "emoji-32"]), "Enter a prompt"),
    ("/interpolate", ("sideways", "a", "b", 0, 1, 4, 0.7, "shapes-32"), "Mode must be one of"),
    ("/interpolate", ("prompts", "a", "", 0, 1, 4, 0.7, "shapes-32"), "Prompt B is empty"),
    ("/interpolate", ("seeds", "a", "", 0, -5, 4, 0.7, "shapes-32"), "Seed B must be between"),
    ("/interpolate", ("both", "a", "b", 0, 1, 1, 0.7, "shapes-32"), "Frames must be between 2 and 32"),
    ("/interpolate", ("both", "a", "b", 0, 1, 10**6, 0.7, "shapes-32"), "Frames must be between 2 and 32"),
    ("/interpolate", ("both", "a", "b", 0, 1, 4, 0.7, "../../etc/passwd"), "Checkpoint paths are not accepted"),
    ("/model_card", ("../../etc",), "Checkpoint paths are not accepted"),
]


@pytest.mark.parametrize("endpoint,args,message", BAD_OTHER, ids=[f"{e}:{m[:20]}" for e, _, m in BAD_OTHER])
def test_other_endpoints_reject_bad_input(client: Client, endpoint: str, args: tuple, message: str) -> None:
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=endpoint)


@pytest.mark.parametrize("value,message", [("NaN", "Seed must be a finite number"),
                                           ("Infinity", "Seed must be a finite number"),
                                           ("-Infinity", "Seed must be a finite number")])
def test_non_finite_numbers_over_raw_http(app_url: str, value: str, message: str) -> None:
    """JSON clients such as gradio_client refuse to send NaN; raw HTTP can, and is answered clearly."""
    body = '{"data": ["a red circle", %s, 0.7, 2, "shapes-32", 0]}' % value
    r = httpx.post(f"{app_url}/gradio_api/call/generate", content=body,
                   headers={"content-type": "application/json"}, timeout=30)
    r.raise_for_status()
    events = httpx.get(f"{app_url}/gradio_api/call/generate/{r.json()['event_id']}", timeout=60).text
    assert "event: error" in events and message in events


def test_server_still_serves_after_bad_input(client: Client) -> None:
    with pytest.raises(AppError):
        generate(client, "", 0, 0.7, 2, "shapes-32", 0)
    assert len(generate(client, "red heart", 5, 0.7, 1, "emoji-32", 0)[1]) == 1
