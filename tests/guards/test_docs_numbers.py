"""Numbers in the README come from a command: the results block is what `python -m dalle results` writes,
and the prose around it quotes no metric."""

import re
from pathlib import Path

from dalle.checkpoint import read_config
from dalle.evaluation.metrics_io import read_metrics
from dalle.evaluation.report import results_table

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_results_block_is_what_the_results_command_writes():
    text = _readme()
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    names = re.findall(r"^\| `([^`]+)` \|", block, flags=re.M)
    assert names, "no checkpoint rows in the README's results block"
    folders = [REPO / "checkpoints" / n for n in names]
    expected = results_table([read_metrics(f / "metrics.json") for f in folders], [read_config(f) for f in folders])
    assert block == expected.strip(), "README results block is stale: run python -m dalle results (or regenerate.sh)"


def test_readme_prose_quotes_no_metric():
    """Outside the generated block, code blocks and the front matter: no accuracy-like decimals (0.932), ratios
    (1.8 ×), percentages or timings, which would go stale when the checkpoints are measured again."""
    text = _readme().split("---", 2)[2]
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    pattern = r"\b0\.\d{2,}|\b\d+(\.\d+)? ?(×(?!\d)|x\b|%|ms\b|img/s|images/s)"  # 3×3 is a size, not a ratio
    found = [m.group(0) for m in re.finditer(pattern, text)]
    assert not found, found


def test_regenerate_script_covers_every_shipped_checkpoint_in_readme_order():
    script = (REPO / "scripts" / "regenerate.sh").read_text(encoding="utf-8")
    listed = re.search(r"^checkpoints=\(([^)]*)\)", script, flags=re.M).group(1).split()
    shipped = sorted(p.parent.name for p in (REPO / "checkpoints").glob("*/generator.safetensors"))
    assert sorted(listed) == shipped
    block = _readme().split(START, 1)[1].split(END, 1)[0]
    assert re.findall(r"^\| `([^`]+)` \|", block, flags=re.M) == listed
