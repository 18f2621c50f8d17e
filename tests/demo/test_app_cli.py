"""`python app.py` flags: --host, --port and --checkpoints are taken; an unknown flag is an error."""

import subprocess
import sys
from pathlib import Path

import app

REPO = Path(__file__).resolve().parents[2]


def test_flags_are_parsed():
    args = app.parse_args(["--host", "0.0.0.0", "--port", "7861", "--checkpoints", "some/dir"])
    assert (args.host, args.port, args.checkpoints) == ("0.0.0.0", 7861, "some/dir")
    assert app.parse_args([]).port is None  # then the environment or the default decides


def test_unknown_flag_is_an_error_before_anything_loads():
    proc = subprocess.run([sys.executable, "app.py", "--prot", "7861"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2
    assert "unrecognized arguments: --prot" in proc.stderr


def test_help_lists_the_flags():
    proc = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0
    for flag in ("--host", "--port", "--checkpoints"):
        assert flag in proc.stdout


def test_every_train_flag_has_its_config_reason_as_help():
    import dataclasses

    from dalle.cli import build_parser
    from dalle.config import ModelConfig, TrainConfig, field_help
    from dalle.shapes.training import ShapesOptions

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    for cls in (TrainConfig, ModelConfig, ShapesOptions):
        reasons = field_help(cls)
        for f in dataclasses.fields(cls):
            if f.name not in ("data", "out", "resolution"):
                assert f.name in helps, f"{cls.__name__}.{f.name} is no flag"
                assert reasons.get(f.name), f"{cls.__name__}.{f.name} has no reason"
                assert helps[f.name].startswith(reasons[f.name].replace("%", "%%")), f.name
    assert "noise width" in helps["z_dim"]
