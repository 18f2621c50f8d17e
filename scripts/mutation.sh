#!/usr/bin/env bash
# Mutation testing with mutmut: how many small changes to a module its own fast tests catch.
# Kept out of CI (minutes per module). Usage: scripts/mutation.sh {losses|stats|generator|checker} ...
# Each module runs in a scratch copy of dalle/ and tests/ (mutmut writes mutants/ next to its config),
# and ends with a line "MODULE: K killed of N (P%)" and the surviving mutants' names;
# `mutmut show NAME` in the printed folder shows one.
set -euo pipefail
# One thread per test process: mutmut forks its workers from a process that already ran torch, and a forked
# OpenMP pool can hang (equivalent mutants then show up as timeouts).
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
root="$(cd "$(dirname "$0")/.." && pwd)"
mutmut="$root/.venv/bin/mutmut"
[ -x "$mutmut" ] || { echo "error: $mutmut is missing: .venv/bin/pip install -r requirements-dev.txt" >&2; exit 2; }
[ $# -gt 0 ] || set -- losses stats generator checker

for module in "$@"; do
  case "$module" in
    losses) file=dalle/training/losses.py; tests=tests/training/test_losses.py; names=("dalle.training.losses.*") ;;
    stats) file=dalle/evaluation/stats.py; tests=tests/evaluation/test_stats.py; names=("dalle.evaluation.stats.*") ;;
    generator) file=dalle/models/generator.py; tests=tests/models/test_generator.py
               names=("dalle.models.generator.x_truncate__mutmut_*" "dalle.models.generator.*conditional_center__mutmut_*") ;;
    checker) file=dalle/shapes/checker.py; tests=tests/shapes/test_checker.py
             names=("dalle.shapes.checker.*") ;;
    *) echo "usage: scripts/mutation.sh {losses|stats|generator|checker} ..." >&2; exit 2 ;;
  esac
  work="$(mktemp -d "${TMPDIR:-/tmp}/mutation-$module.XXXX")"
  cp -r "$root/dalle" "$root/tests" "$root/pytest.ini" "$work/"
  find "$work" -name __pycache__ -prune -exec rm -rf {} +
  if [ "$module" = generator ]; then
    # mutmut does not mutate decorated functions: drop @torch.no_grad() above conditional_center in the copy
    # (it turns off gradient tracking and changes no value the tests compare)
    "$root/.venv/bin/python" - "$work/dalle/models/generator.py" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
text, n = re.subn(r"\n(\s*)@torch\.no_grad\(\)\n(\s*def conditional_center\()", r"\n\2", text)
assert n == 1, "conditional_center is no longer decorated as expected"
open(path, "w", encoding="utf-8").write(text)
PY
  fi
  # timeout_constant: a mutant counts as timed out only after 30 s more than its tests took unmutated
  printf '[mutmut]\nsource_paths = dalle\nonly_mutate = %s\nalso_copy = pytest.ini\n%s\ntimeout_constant = 30\n' \
    "$file" "pytest_add_cli_args_test_selection = $tests" > "$work/setup.cfg"
  (cd "$work" && "$mutmut" run "${names[@]}" >"$work/run.log" 2>&1 || true)
  (cd "$work" && "$mutmut" results --all true) >"$work/results.txt"
  "$root/.venv/bin/python" - "$module" "$work" "${names[@]}" <<'PY'
import fnmatch, sys
from pathlib import Path
module, work, patterns = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
rows = [line.strip().rsplit(": ", 1) for line in (work / "results.txt").read_text().splitlines() if ": " in line]
rows = [(name, status) for name, status in rows if any(fnmatch.fnmatch(name, p) for p in patterns)]
killed = sum(status in ("killed", "timeout") for _, status in rows)  # a mutant that hangs the tests is caught
print(f"{module}: {killed} killed of {len(rows)} ({100 * killed / max(len(rows), 1):.1f}%)  [{work}]")
for name, status in rows:
    if status not in ("killed", "timeout"):
        print(f"  {status}: {name}")
PY
done
