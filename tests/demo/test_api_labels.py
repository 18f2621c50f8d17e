"""Every output of every endpoint has a name in the API listing (no `value_NN`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo import build_demo


@pytest.fixture(scope="module")
def blocks(checkpoints_dir: Path):
    return build_demo(checkpoints_dir, capacity=2)


def test_the_api_listing_names_every_output(blocks) -> None:
    info = blocks.get_api_info()  # what Client.view_api() shows
    assert {"/generate", "/compare", "/interpolate"} <= set(info["named_endpoints"])
    assert "value_" not in json.dumps(info, ensure_ascii=False)
    returns = {name: [r["label"] for r in ep["returns"]] for name, ep in info["named_endpoints"].items()}
    assert returns["/interpolate"] == ["animation (GIF)", "frame strip", "notes"]


def test_every_output_of_every_api_endpoint_has_a_label(blocks) -> None:
    config = blocks.get_config_file()
    components = {c["id"]: c for c in config["components"]}
    unnamed = [(dep["api_name"], components[o]["type"]) for dep in config["dependencies"]
               if dep.get("api_visibility") != "private" for o in dep["outputs"]
               if components[o]["type"] != "state" and not components[o]["props"].get("label")]
    assert not unnamed, unnamed
