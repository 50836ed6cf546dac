"""`lrsched --help` against `python -c "import lightning.pytorch"`: the overview must not pay for Lightning.

Both are fresh interpreter processes, timed interleaved; each time is the minimum over repeats.
Target: ratio = lrsched --help / import lightning.pytorch <= 0.25.

Run: .venv/bin/python benchmarks/bench_cli_help.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

TARGET = 0.25
COMMANDS = {
    "lrsched --help": [sys.executable, "-m", "lightning_lrsched", "--help"],
    "import lightning.pytorch": [sys.executable, "-c", "import lightning.pytorch"],
}


def wall_time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            times[name].append(wall_time(command))
    best = {name: min(values) for name, values in times.items()}
    ratio = best["lrsched --help"] / best["import lightning.pytorch"]
    for name, value in best.items():
        print(f"{name:<26} {value * 1000:8.0f} ms (min of {args.repeats})")
    print(f"ratio {ratio:.3f} (target <= {TARGET}): {'met' if ratio <= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
