"""A prompt far from everything a checkpoint was trained on gets a note naming the nearest caption it knows
("a photo of a dog on a beach" on shapes-32 gave faint blobs with no word); prompts of its world get none."""

import json
import shutil
from pathlib import Path

import pytest

from demo.service import FAR_PROMPT_COSINE, ModelService

REPO = Path(__file__).resolve().parents[2]
FAR = "is far from everything"


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> ModelService:
    """shapes-32 as shipped (no captions.json: its captions come from the registry) and a copy of it that carries
    its own captions.json, as a training export does."""
    root = tmp_path_factory.mktemp("checkpoints")
    shutil.copytree(REPO / "checkpoints" / "shapes-32", root / "shapes-32")
    shutil.copytree(REPO / "checkpoints" / "shapes-32", root / "own-list")
    (root / "own-list" / "captions.json").write_text(json.dumps(["a red circle", "a blue square"]))
    (root / "shapes-32" / "captions.json").unlink(missing_ok=True)
    return ModelService(root, capacity=2, device="cpu")


def notes(service: ModelService, checkpoint: str, prompts: list[str]) -> list[str]:
    return service.generate("\n".join(prompts), 0, 0.7, 1, checkpoint).warnings


def test_a_prompt_outside_the_shapes_world_is_named_with_its_nearest_caption(service):
    found = [n for n in notes(service, "shapes-32", ["a photo of a dog on a beach", "a cat"]) if FAR in n]
    assert len(found) == 2
    assert found[0].startswith("Prompt 1 ('a photo of a dog on a beach') is far from everything shapes-32 was "
                               "trained on; the nearest caption it knows is '")
    assert found[1].startswith("Prompt 2 ('a cat')")
    cosine = float(found[0].split("text cosine ")[1].split(")")[0])
    assert cosine < FAR_PROMPT_COSINE


def test_new_phrasings_inside_the_world_get_no_note(service):
    prompts = ["a big red circle at the top left", "two green triangles", "an orange circle",
               "a red circle to the left of a blue square"]
    assert not [n for n in notes(service, "shapes-32", prompts) if FAR in n]


def test_the_checkpoints_own_caption_list_wins(service):
    (note,) = [n for n in notes(service, "own-list", ["a red circle at the top left", "a sunset"]) if FAR in n]
    assert note.startswith("Prompt 2 ('a sunset')")
    assert "the nearest caption it knows is 'a red circle'" in note or "the nearest caption it knows is 'a blue square'" in note


def test_no_caption_list_means_no_note(service, monkeypatch):
    monkeypatch.setattr(ModelService, "_trained_captions", staticmethod(lambda info: None))
    assert not [n for n in notes(service, "shapes-32", ["a photo of a dog on a beach"]) if FAR in n]


def test_captions_that_only_extend_another_are_left_out_of_the_list():
    from demo.service import _core_captions

    captions = ["red heart", "red heart, google style", "red heart, love, valentine", "flag, japan", "pizza"]
    assert _core_captions(captions) == ["red heart", "flag, japan", "pizza"]


def test_the_app_encodes_the_caption_list_in_the_background_and_notes_once_it_is_ready(tmp_path):
    """The app's service (wait_for_captions=False) does not hold the first image for the caption list: the note is
    left out while the list is encoded, and given once it is ready."""
    import time

    root = tmp_path / "checkpoints"
    shutil.copytree(REPO / "checkpoints" / "shapes-32", root / "own-list")
    (root / "own-list" / "captions.json").write_text(json.dumps(["a red circle", "a blue square"]))
    service = ModelService(root, capacity=1, device="cpu", wait_for_captions=False)
    assert not [n for n in notes(service, "own-list", ["a sunset"]) if FAR in n]  # the first: not ready yet
    deadline = time.monotonic() + 60
    while service._captions_pending and time.monotonic() < deadline:
        time.sleep(0.05)
    (note,) = [n for n in notes(service, "own-list", ["a sunset"]) if FAR in n]
    assert note.startswith("Prompt 1 ('a sunset')")
