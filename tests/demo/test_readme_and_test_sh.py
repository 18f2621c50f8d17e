"""README points a new user trips over (test time, chromium, ψ, --seeded-layouts), and test.sh's
chromium step when chromium cannot be installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_says_how_long_test_sh_takes_and_that_it_installs_chromium_as_root() -> None:
    text = " ".join(README.split())
    assert re.search(r"test\.sh[^.]*about 13 minutes \(pytest alone about 10\)", text)
    assert "installs Debian's `chromium` with `apt-get`" in text and "needs root or sudo" in text
    assert '-m "not browser"' in text and "sudo apt-get install chromium" in text


def test_readme_explains_truncation_toward_the_prompts_own_centre_where_it_first_names_it() -> None:
    first = README.index("truncation toward the prompt's *own* centre")
    near = " ".join(README[first:first + 700].split())
    assert "average w of that prompt over many seeds (`conditional_center`)" in near
    assert "ψ = 1 is the raw sample" in near and "ψ = 0 the prompt's average image" in near
    assert "variety for typicality" in near


def test_readme_seeded_layouts_line_says_what_the_flag_does() -> None:
    line = next(l for l in README.splitlines() if "--seeded-layouts false" in l)
    assert "seeds no longer pick" not in line
    assert "real images, drawn independently of G's noise z" in line
    assert "each caption redrawn with what it leaves open" in line and "read from z" in line


def _bin_without_sudo_and_apt(tmp_path: Path) -> Path:
    """A PATH folder with only the tools the script needs, none of sudo or apt-get, and an `id`
    that answers a non-root user (so the test means the same when run as root)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    (bin_dir / "id").write_text("#!/bin/bash\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    return bin_dir


def test_need_chromium_says_what_to_do_when_it_cannot_install(tmp_path: Path) -> None:
    env = {"PATH": str(_bin_without_sudo_and_apt(tmp_path)), "HOME": str(tmp_path)}
    missing = tmp_path / "no-such-chromium"
    run = subprocess.run([shutil.which("bash"), str(REPO / "scripts" / "need_chromium.sh"), str(missing)],
                         env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert f"{missing} is missing and could not be installed (not root, and no sudo)" in run.stderr
    assert "sudo apt-get install chromium" in run.stderr and '-m "not browser"' in run.stderr


def test_need_chromium_when_apt_get_fails(tmp_path: Path) -> None:
    bin_dir = _bin_without_sudo_and_apt(tmp_path)
    for tool in ("sudo", "apt-get"):  # sudo runs its command; apt-get fails
        (bin_dir / tool).write_text('#!/bin/bash\n"$@"\n' if tool == "sudo" else "#!/bin/bash\nexit 100\n")
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    run = subprocess.run([shutil.which("bash"), str(REPO / "scripts" / "need_chromium.sh"),
                          str(tmp_path / "none")], env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and "(apt-get failed)" in run.stderr and '-m "not browser"' in run.stderr


def test_need_chromium_passes_when_chromium_is_there(tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    run = subprocess.run(["bash", str(REPO / "scripts" / "need_chromium.sh"), str(fake)],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and run.stderr == ""


def test_test_sh_calls_the_chromium_step() -> None:
    script = (REPO / "test.sh").read_text()
    assert "bash scripts/need_chromium.sh /usr/bin/chromium || exit 1" in script
