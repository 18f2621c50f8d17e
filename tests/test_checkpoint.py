import json
import os

import pytest
import torch

from dalle.checkpoint import CheckpointError, load_into, load_tensors, read_config, save_checkpoint, save_tensors
from dalle.config import FORMAT_VERSION, ModelConfig
from dalle.models.discriminator import Discriminator
from dalle.models.generator import Generator

CFG = ModelConfig(resolution=32, channel_base=128, d_channel_base=256, z_dim=8, cond_dim=8, w_dim=32,
                  mapping_layers=2, embed_dim=32)


@pytest.fixture()
def ckpt(tmp_path):
    torch.manual_seed(0)
    g, d = Generator(CFG), Discriminator(CFG)
    path = save_checkpoint(tmp_path / "ck", {"model": CFG.to_dict(), "name": "ck", "step": 7, "images_seen": 56,
                                             "dataset": {"name": "shapes"}}, g, d, {"samples.png": b"x"})
    return path, g, d


def test_round_trip(ckpt):
    path, g, d = ckpt
    cfg = read_config(path)
    assert cfg["format_version"] == FORMAT_VERSION and cfg["step"] == 7
    assert sorted(os.listdir(path)) == ["config.json", "discriminator.safetensors", "generator.safetensors",
                                        "samples.png"]
    g2, d2 = Generator(CFG), Discriminator(CFG)
    load_into(g2, path, "generator")
    load_into(d2, path, "discriminator")
    for a, b in zip(g.state_dict().values(), g2.state_dict().values()):
        assert torch.allclose(a.half().float(), b)  # shipped in fp16
    assert not list(path.parent.glob(".ck.tmp-*"))  # no temp folders left behind


def test_sharding_keeps_files_small(tmp_path):
    tensors = {f"t{i}": torch.randn(1000) for i in range(10)}
    names = save_tensors(tensors, tmp_path, "big", max_bytes=10_000)
    assert len(names) > 1 and all((tmp_path / n).stat().st_size < 12_000 for n in names)
    back = load_tensors(tmp_path, "big")
    assert all(torch.equal(back[k], v) for k, v in tensors.items())


def test_truncated_file_is_refused_with_its_name(ckpt):
    path = ckpt[0] / "generator.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="generator.safetensors: corrupt or truncated"):
        load_into(Generator(CFG), ckpt[0], "generator")


def test_wrong_shapes_are_refused(ckpt):
    other = ModelConfig(**{**CFG.to_dict(), "w_dim": 48})
    with pytest.raises(CheckpointError, match="generator.safetensors: tensor .* has shape"):
        load_into(Generator(other), ckpt[0], "generator")


def test_missing_config(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        read_config(tmp_path / "x")


def test_bad_json_and_newer_format(ckpt):
    path = ckpt[0] / "config.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({**cfg, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(CheckpointError, match="newer than this library"):
        read_config(ckpt[0])
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_config(ckpt[0])


def test_pickle_files_are_refused(ckpt):
    from dalle.pipeline import TextToImagePipeline

    (ckpt[0] / "generator.pt").write_bytes(b"\x80\x04")
    with pytest.raises(CheckpointError, match="generator.pt: pickle-based files are refused"):
        TextToImagePipeline.from_pretrained(ckpt[0], device="cpu")


def test_error_messages_are_one_line(ckpt):
    (ckpt[0] / "discriminator.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as e:
        load_into(Discriminator(CFG), ckpt[0], "discriminator")
    assert "\n" not in str(e.value)


def test_config_without_a_field_reads_the_current_default():
    """Format-1 checkpoints and their legacy defaults are gone (their weights no longer load); a config that
    leaves a field out now gets the dataclass default, and JSON's 1 for 1.0 still reads as a float."""
    old = {k: v for k, v in CFG.to_dict().items() if k not in ("cond_noise", "max_tokens")}
    cfg = ModelConfig.from_dict(old)
    assert cfg.cond_noise == ModelConfig().cond_noise == 0.1 and cfg.max_tokens == ModelConfig().max_tokens
    one = ModelConfig.from_dict({**old, "cond_noise": 1})  # JSON may write 1.0 as 1
    assert one.cond_noise == 1.0 and type(one.cond_noise) is float


def test_format_1_architecture_is_refused_with_its_name(ckpt):
    """A folder whose weights have the old layout (learned 4x4 constant, no word attention) is refused by name."""
    from safetensors.torch import load_file, save_file

    path = ckpt[0] / "generator.safetensors"
    tensors = {k: v for k, v in load_file(str(path)).items() if "attn" not in k and not k.startswith("synthesis.input")}
    tensors["synthesis.const"] = torch.zeros(CFG.channels(4), 4, 4, dtype=torch.float16)
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=r"generator\.safetensors: does not match the config's architecture"):
        load_into(Generator(CFG), ckpt[0], "generator")


def test_cond_noise_scales_the_sampled_part_of_the_text_code():
    torch.manual_seed(0)
    g = Generator(ModelConfig(**{**CFG.to_dict(), "cond_noise": 0.5})).mapping
    text, eps = torch.randn(3, CFG.text_dim), torch.randn(3, CFG.cond_dim)
    mu, _ = g.ca(text, torch.zeros_like(eps))
    c, _ = g.ca(text, eps)
    g.ca.noise = 1.0
    c_full, _ = g.ca(text, eps)
    assert torch.allclose(c - mu, 0.5 * (c_full - mu), atol=1e-6)


def test_boolean_model_fields_are_valid_either_way():
    from dalle.config import ModelConfig

    for flag in (False, True):
        assert ModelConfig.from_dict({**ModelConfig().to_dict(), "normalize_text": flag}).normalize_text is flag
