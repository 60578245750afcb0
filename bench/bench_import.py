"""Start-up cost: ``import onnxpipe`` and ``onnxpipe --help`` vs importing what onnxpipe stands on.

* plain: ``python -c "import onnxruntime, pyarrow, numpy"``, the libraries onnxpipe cannot do
  without;
* onnxpipe: ``python -c "import onnxpipe"``, and the ``onnxpipe --help`` command (the console
  script; ``python -c "from onnxpipe.cli import main; main()" --help`` without it).

Each figure is the wall time of a fresh interpreter running the command (start-up included, as a
user sees it), median over rounds; the commands alternate within a round and their order turns
each round. The children keep compiled bytecode under ``bench/results/pycache`` (one untimed run
of each command writes it first), as an installed package has its ``.pyc`` files: in the
development environment ``PYTHONDONTWRITEBYTECODE=1`` would otherwise make every run recompile
onnxpipe (~0.2 s more). Targets: ``import onnxpipe`` <= 2x plain; ``onnxpipe --help`` < 500 ms.

``--profile`` prints where ``import onnxpipe`` spends its time (``python -X importtime``, median of
5 runs): the largest modules, each with the onnxpipe module that first imported it.

    .venv/bin/python bench/bench_import.py [--quick] [--rounds R] [--profile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import RESULTS_DIR, Row, console, median, print_table, write_results

TARGET = 2.0
HELP_LIMIT_MS = 500.0
PLAIN = "import onnxruntime, pyarrow, numpy"


def _help_command() -> list[str]:
    script = Path(sys.executable).with_name("onnxpipe")
    if script.is_file():
        return [str(script), "--help"]
    return [sys.executable, "-c", "from onnxpipe.cli import main; main()", "--help"]


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(RESULTS_DIR / "pycache")
    return env


def _seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _import_profile(env: dict[str, str], top: int = 25) -> None:
    """The modules ``import onnxpipe`` spends most time in (own time, median over runs), each with
    the onnxpipe module that imported it (the nearest one up the import tree)."""
    runs: list[dict[tuple[str, str], int]] = []
    for _ in range(5):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import onnxpipe"], env=env, capture_output=True, text=True
        ).stderr
        rows: list[tuple[int, int, str]] = []  # (own us, depth, module), children listed before their parent
        for line in err.splitlines():
            if line.startswith("import time:") and "self [us]" not in line:
                own_text, _, tree = line.removeprefix("import time:").split("|")
                rows.append((int(own_text), (len(tree) - len(tree.lstrip())) // 2, tree.strip()))
        per: dict[tuple[str, str], int] = {}
        for i, (own, depth, name) in enumerate(rows):
            if name.startswith("onnxpipe"):  # onnxpipe's own modules: each by itself
                key = (name, "")
            else:  # other packages: per package and the onnxpipe module whose import brought them
                by, level = "(Python's start-up)", depth
                for _, d, parent in rows[i + 1 :]:
                    if d < level:
                        level = d
                        if parent.startswith("onnxpipe"):
                            by = parent
                            break
                key = (name.split(".")[0], by)
            per[key] = per.get(key, 0) + own
        runs.append(per)
    keys = set().union(*runs)
    times = {k: statistics.median(r.get(k, 0) for r in runs) for k in keys}
    console.rule(f"import onnxpipe: own import time by package, median of {len(runs)} runs (-X importtime)")
    console.print(f"total {sum(times.values()) / 1e3:,.0f} ms (importtime's own overhead included)")
    for (package, by), us in sorted(times.items(), key=lambda kv: -kv[1])[:top]:
        source = f"  imported by {by}" if by else ""
        console.print(f"{us / 1e3:8.1f} ms  {package:<32}{source}", markup=False, highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 11")
    parser.add_argument("--rounds", type=int, default=None, help="rounds, each command once (default 11, quick 5)")
    parser.add_argument("--profile", action="store_true", help="also show where import onnxpipe spends its time")
    args = parser.parse_args()
    rounds: int = args.rounds or (5 if args.quick else 11)

    env = _environment()
    commands = {
        "plain": [sys.executable, "-c", PLAIN],
        "import": [sys.executable, "-c", "import onnxpipe"],
        "help": _help_command(),
    }
    for command in commands.values():  # writes the bytecode cache; not timed
        _seconds(command, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    with console.status(f"{rounds} rounds of {len(commands)} fresh interpreters"):
        for r in range(rounds):
            names = list(commands)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(_seconds(commands[name], env) * 1e3)

    plain = median(times["plain"])
    rows = [
        Row(
            "import onnxpipe",
            "ms",
            plain,
            median(times["import"]),
            False,
            TARGET,
            tuple(times["plain"]),
            tuple(times["import"]),
            note=f"plain: python -c {PLAIN!r}",
        ),
        Row(
            "onnxpipe --help",
            "ms",
            plain,
            median(times["help"]),
            False,
            None,
            tuple(times["plain"]),
            tuple(times["help"]),
            note="the console script; the target is on its own time",
            limit=HELP_LIMIT_MS,
        ),
    ]
    print_table(f"Start-up, fresh interpreters, median of {rounds} rounds (bytecode cached)", rows)
    if args.profile:
        _import_profile(env)
    params = {"rounds": rounds, "quick": args.quick, "plain_command": PLAIN, "help_command": commands["help"]}
    write_results("bench_import" + ("-quick" if args.quick else ""), params, rows)


if __name__ == "__main__":
    main()
