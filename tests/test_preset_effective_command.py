"""A recorded training command whose flags after `--preset NAME` only repeat the preset's values reads as the plain
preset command, in `python -m dalle info` and in the model card (issue: "the preset reproduces the shipped model")."""

from pathlib import Path

from dalle.cli import main
from dalle.evaluation.model_card import render_model_card
from dalle.presets import effective_command

REPO = Path(__file__).resolve().parent.parent
SHIPPED = "python -m dalle train --preset shapes --seeded-pairs true --pair-layout center"


def test_flags_equal_to_the_preset_are_left_out_and_named():
    assert effective_command(SHIPPED) == ("python -m dalle train --preset shapes",
                                          ["--seeded-pairs true", "--pair-layout center"])


def test_values_are_compared_with_the_fields_types():
    shown, left = effective_command("python -m dalle train --preset shapes --lr-g 0.0010 --seeded-pairs yes "
                                    "--warmup-kimg 100 --snapshot-minutes 15 --pair-layout=center")
    assert shown == "python -m dalle train --preset shapes"
    assert left == ["--lr-g 0.0010", "--seeded-pairs yes", "--warmup-kimg 100", "--snapshot-minutes 15",
                    "--pair-layout center"]


def test_flags_that_differ_from_the_preset_stay():
    shown, left = effective_command("python -m dalle train --preset shapes --seeded-pairs false --lr-g 0.002 "
                                    "--pair-layout center --out runs/mine --max-steps 5")
    assert shown == ("python -m dalle train --preset shapes --seeded-pairs false --lr-g 0.002 --out runs/mine "
                     "--max-steps 5")
    assert left == ["--pair-layout center"]


def test_a_command_without_a_preset_or_without_redundant_flags_is_unchanged():
    for command in ("python -m dalle train --preset emoji", "python -m dalle train --data shapes --seeded-pairs true",
                    "python -m dalle train --preset nosuch --lr-g 0.001"):
        assert effective_command(command) == (command, [])


def test_info_shows_the_plain_preset_command(capsys):
    assert main(["info", str(REPO / "checkpoints" / "shapes-32")]) == 0
    out = capsys.readouterr().out
    assert "command: python -m dalle train --preset shapes\n" in out
    assert "`--seeded-pairs true --pair-layout center` equal the preset's current values" in out


def test_the_model_card_shows_the_plain_preset_command():
    card = render_model_card(REPO / "checkpoints" / "shapes-32", [])
    (line,) = [l for l in card.splitlines() if l.startswith("- trained from scratch with")]
    assert line.startswith("- trained from scratch with `python -m dalle train --preset shapes` (")
    assert "`--seeded-pairs true --pair-layout center` equal the preset's current values" in line


def test_a_renamed_preset_reads_by_todays_name_at_the_old_resolution():
    from dalle.presets import PRESETS, command_note

    shown, note = command_note("python -m dalle train --preset emoji", 32)
    assert shown == "python -m dalle train --preset emoji-32"
    assert "recorded as `python -m dalle train --preset emoji`" in note
    assert PRESETS["emoji-32"]["resolution"] == 32 and PRESETS["emoji"]["resolution"] == 64
    assert command_note("python -m dalle train --preset emoji", 64) == ("python -m dalle train --preset emoji", "")


def test_the_emoji_32_card_names_the_preset_that_rebuilds_it():
    card = render_model_card(REPO / "checkpoints" / "emoji-32", [])
    (line,) = [l for l in card.splitlines() if l.startswith("- trained from scratch with")]
    assert "`python -m dalle train --preset emoji-32`" in line


def test_a_folder_uses_the_real_data_recipe_unless_flags_say_otherwise(tmp_path, monkeypatch):
    """`train --data FOLDER` takes the `folder` preset (64 px); a flag given wins; `--preset folder` needs --data."""
    import pytest

    import dalle.cli as cli
    from dalle.presets import PRESETS

    seen = {}

    class Stop(Exception):
        pass

    def fake_open(spec, resolution, options=None, data_root="data"):
        seen.update(spec=spec, resolution=resolution)
        raise Stop

    monkeypatch.setattr("dalle.datasets.open_training_data", fake_open)
    folder = tmp_path / "pics"
    folder.mkdir()
    parser = cli.build_parser()
    with pytest.raises(Stop):
        cli.cmd_train(parser.parse_args(["train", "--data", str(folder), "--out", str(tmp_path / "r")]))
    assert seen["resolution"] == PRESETS["folder"]["resolution"] == 64
    with pytest.raises(Stop):
        cli.cmd_train(parser.parse_args(["train", "--data", str(folder), "--resolution", "32", "--out",
                                         str(tmp_path / "r")]))
    assert seen["resolution"] == 32
    with pytest.raises(SystemExit, match="needs --data"):
        cli.cmd_train(parser.parse_args(["train", "--preset", "folder"]))
