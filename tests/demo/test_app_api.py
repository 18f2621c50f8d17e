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

from dalle.rerank import SCORES
from demo.card_tab import match_trust
from demo.render import split_grid

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


def tiles(png: str, rows: int, cols: int) -> np.ndarray:
    """The native images [rows, cols, R, R, 3] of a grid PNG that /generate returned."""
    with Image.open(png) as im:
        return split_grid(im, rows, cols)


def test_named_endpoints(client: Client) -> None:
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate", "/compare", "/interpolate"} <= set(named)


def test_generate_returns_one_grid_png_scores_and_notes(client: Client, checkpoints_dir: Path) -> None:
    png, table, notes = generate(client, *GOOD)
    res = resolution(checkpoints_dir, "shapes-32")
    with Image.open(png) as im:
        assert im.size == grid_size(2, 3, res)
        meta = dict(im.text)
    assert json.loads(meta["prompts"]) == ["a large red circle at the top left", "two green triangles"]
    assert json.loads(meta["seed"]) == 123 and json.loads(meta["truncation"]) == pytest.approx(0.7)
    assert json.loads(meta["seeds"]) == [[123, 124, 125]] * 2
    assert meta["checkpoint"] == "shapes-32" and "step" in meta
    assert tiles(png, 2, 3).shape == (2, 3, res, res, 3)
    assert table["headers"] == ["prompt", "seed", "realism", "text match"]
    assert [row[1] for row in table["data"]] == [123, 124, 125] * 2
    scores = np.array([row[2:] for row in table["data"]], dtype=float)
    assert scores.shape == (6, 2) and ((scores >= 0) & (scores <= 1)).all()
    assert "shapes-32" in notes and "seeds 123–125" in notes
    trust = match_trust(checkpoints_dir / "shapes-32")  # how far its text match goes, from its metrics.json
    assert trust.startswith("Text match comes from the judge") and trust in notes  # shapes-32 ships a judge
    assert "separates right from wrong images with AUROC" in trust


def test_generate_sends_one_file_per_call(app_url: str, tmp_path: Path) -> None:
    """A client downloads what a call returns; the gallery is drawn by the UI only."""
    files = tmp_path / "downloads"
    Client(app_url, verbose=False, download_files=str(files)).predict(
        "red heart\nfire\nrocket\nthumbs up", 0, 0.7, 4, "emoji-32", 0, api_name="/generate")
    assert [p.suffix for p in files.rglob("*") if p.is_file()] == [".png"]


def test_generate_is_deterministic(client: Client) -> None:
    a, b = generate(client, *GOOD), generate(client, *GOOD)
    assert Path(a[0]).read_bytes() == Path(b[0]).read_bytes()
    other = generate(client, GOOD[0], 124, *GOOD[2:])
    assert Path(other[0]).read_bytes() != Path(a[0]).read_bytes()
    # a seed is an image: seed 124 leads the new row and was second in the first one
    first, second = tiles(other[0], 2, 3)[0, 0].astype(int), tiles(a[0], 2, 3)[0, 1].astype(int)
    assert np.abs(first - second).max() <= 2


def test_best_of_n_keeps_the_top_scored_candidates(client: Client) -> None:
    prompt = "a small blue square in the center"
    png, table, notes = generate(client, prompt, 7, 0.7, 2, "shapes-32", 6)
    all_png, all_table, _ = generate(client, prompt, 7, 0.7, 6, "shapes-32", 0)  # the 6 candidates, seeds 7..12
    assert "best 2 of 6 candidates by " in notes
    chosen = notes.split("candidates by ")[1].split(" (")[0]  # the score the checkpoint's evaluation chose
    assert chosen in SCORES and f"Best of N keeps the images with the highest {chosen}" in notes
    score = {row[1]: float(SCORES[chosen](np.float64(row[2]), np.float64(row[3]))) for row in all_table["data"]}
    ranked = sorted(score, key=lambda s: (-score[s], s))  # best first, ties to the lower seed
    kept = [row[1] for row in table["data"]]
    assert kept == ranked[:2]
    assert min(score[s] for s in kept) >= max(score[s] for s in ranked[2:])  # each kept beats every discarded
    candidates = tiles(all_png, 1, 6)[0]
    for column, seed in enumerate(kept):  # the kept images are those candidates' images
        assert np.abs(tiles(png, 1, 2)[0, column].astype(int) - candidates[seed - 7].astype(int)).max() <= 2
    with Image.open(png) as im:
        assert json.loads(im.text["best_of"]) == 6 and json.loads(im.text["seeds"]) == [kept]


def test_emoji_and_other_scripts(client: Client) -> None:
    prompts = "❤️ red heart\nсердце\n心\nقلب 🙂"
    png, table, _ = generate(client, prompts, 0, 0.7, 1, "emoji-32", 0)
    assert tiles(png, 4, 1).shape[:2] == (4, 1) and [row[0] for row in table["data"]] == prompts.splitlines()


def test_emoji_prompts_are_spelled_out_and_unknown_text_is_flagged(client: Client) -> None:
    png, table, notes = generate(client, "😀\n🍕\nꙮꙮꙮ", 0, 1.0, 1, "emoji-32", 0)
    assert [row[0] for row in table["data"]] == ["😀", "🍕", "ꙮꙮꙮ"]  # rows keep the user's text
    assert "emoji spelled out for the text encoder as 'grinning face'" in notes
    assert "'pizza'" in notes
    assert "Prompt 3 ('ꙮꙮꙮ') is mostly text the encoder does not know" in notes
    images = tiles(png, 3, 1)
    assert not np.array_equal(images[0, 0], images[1, 0])  # two emoji, two images


def test_prompt_over_the_token_limit_is_cut_with_a_warning(client: Client) -> None:
    long = " ".join(["a large red circle at the top left"] * 25)  # ~875 characters, > 128 tokens
    *_, notes = generate(client, long, 0, 0.7, 1, "shapes-32", 0)
    assert "token limit" in notes and "first 128 tokens" in notes


def labelled_rows(grid: str, rows: int, cols: int, res: int) -> list[np.ndarray]:
    """Check a labelled display grid's geometry; return each row's label band (uint8 [band, W, 3])."""
    with Image.open(grid) as im:
        a = np.asarray(im.convert("RGB"))
    side = (a.shape[1] - 2) // cols - 2
    assert a.shape[1] == cols * (side + 2) + 2 and side % res == 0  # tiles enlarged by a whole factor
    band = (a.shape[0] - 2) // rows - side - 2
    assert band > 10 and a.shape[0] == rows * (band + side + 2) + 2
    return [a[2 + i * (band + side + 2):2 + i * (band + side + 2) + band] for i in range(rows)]


def test_compare_two_checkpoints_with_row_labels(client: Client, checkpoints_dir: Path) -> None:
    out = client.predict("a large red circle at the top left\nred heart", 3, 0.7, 2, ["shapes-32", "emoji-32"],
                         api_name="/compare")
    grids, heads, feet, summary = out[:4], out[4:8], out[8:12], out[12]
    assert grids[2] is None and grids[3] is None
    for grid, name in zip(grids[:2], ["shapes-32", "emoji-32"]):
        for band in labelled_rows(grid, 2, 2, resolution(checkpoints_dir, name)):
            assert (band > 240).all(axis=2).mean() > 0.5 and (band < 120).all(axis=2).sum() > 20  # text on white
    assert "shapes-32" in heads[0] and "emoji-32" in heads[1] and "step" in heads[0] and "images seen" in heads[0]
    assert all("own D: mean realism" in f for f in feet[:2]) and feet[2] == ""
    assert [row[0] for row in summary["data"]] == ["shapes-32", "emoji-32"]
    assert summary["headers"][5:] == ["n (images judged)", "95% interval",
                                      "mean realism (own D, not comparable across checkpoints)",
                                      "mean match (own D, not comparable across checkpoints)"]
    assert all(0 <= row[7] <= 1 and 0 <= row[8] <= 1 for row in summary["data"])


def test_compare_has_a_common_judge_with_known_answers(client: Client, checkpoints_dir: Path) -> None:
    """Emoji: the shipped evaluator's cosine of each image with its prompt; shapes: the shapes
    checker's share of images exactly right. Recomputed here from the same images."""
    if not (checkpoints_dir / "evaluator" / "evaluator.safetensors").is_file():
        pytest.skip("no shipped evaluator in checkpoints/evaluator")
    from dalle.evaluation.evaluator import load_evaluator
    from dalle.shapes.checker import check
    from dalle.text_encoder import TextEncoder

    shape_prompts, emoji_prompts = ["a large red circle at the top left", "two green triangles"], ["red heart", "fire"]
    for prompts, name in ((shape_prompts, "shapes-32"), (emoji_prompts, "emoji-32")):
        summary = client.predict("\n".join(prompts), 5, 0.7, 3, ["shapes-32", "emoji-32"], api_name="/compare")[12]
        row = next(r for r in summary["data"] if r[0] == name)
        images = tiles(generate(client, "\n".join(prompts), 5, 0.7, 3, name, 0)[0], 2, 3)
        if name == "shapes-32":
            expected = np.mean([check(img, p)["exact"] for p, r in zip(prompts, images) for img in r])
            assert row[3] == "shapes checker (share of images exactly right)"
            other = next(r for r in summary["data"] if r[0] == "emoji-32")
            assert other[3] == "evaluator cosine (image vs prompt)" and other[4] is not None
        else:
            ev = load_evaluator(checkpoints_dir / "evaluator")
            text = ev.embed_text(TextEncoder(ev.text_encoder_name).embed(prompts))  # [2, E]
            emb = ev.embed_uint8(images.reshape(6, *images.shape[2:])).reshape(2, 3, -1)  # [2, 3, E]
            expected = float((emb * text[:, None]).sum(-1).mean())
            assert row[3] == "evaluator cosine (image vs prompt)"
            other = next(r for r in summary["data"] if r[0] == "shapes-32")
            assert other[3] == "none: no prompt is a caption of the shapes world" and other[4] is None
        assert row[4] == pytest.approx(expected, abs=2e-3)


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


def test_model_card_headline_first_then_curves_samples_and_folded_metrics(client: Client,
                                                                          checkpoints_dir: Path) -> None:
    from demo.card_tab import strip_front_matter

    headline, losses, _reg, accuracy, samples, facts, metrics, config, readme = client.predict(
        "shapes-32", api_name="/model_card")
    folder = checkpoints_dir / "shapes-32"
    assert headline.startswith("## shapes-32")
    if (folder / "metrics.json").is_file():  # the README results table (same command, same columns), this row
        from dalle.evaluation.report import results_table

        row = results_table([json.loads((folder / "metrics.json").read_text())], [config])
        assert headline == f"## shapes-32\n\n{row}" and "| `shapes-32` | shapes |" in row
    assert "| step |" in facts and "images seen" in facts
    assert config == json.loads((folder / "config.json").read_text())
    assert losses["data"] and {r[1] for r in losses["data"]} <= {"loss_d", "loss_g", "loss_joint_d", "loss_joint_g", "recon"}
    assert accuracy["data"]
    assert readme.strip() == strip_front_matter((folder / "README.md").read_text()).strip()
    with Image.open(folder / "samples.png") as im:
        prompts = json.loads(im.text["prompts"]) if "prompts" in im.text else []
    if prompts:  # one captioned row per prompt of samples.png
        labelled_rows(samples, len(prompts), 8, resolution(checkpoints_dir, "shapes-32"))


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
    png, table, _ = generate(client, "red heart", 5, 0.7, 1, "emoji-32", 0)
    assert [row[:2] for row in table["data"]] == [["red heart", 5]] and Path(png).is_file()
