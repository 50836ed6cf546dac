"""Benchmark ``lrsched compare`` against what a user would do by hand: one ``lrsched fit`` per schedule.

The same K runs (the six tutorial schedules, 20 epochs of the synthetic classifier on cpu:1, CSV
logs) are trained three ways in this one run, each timed from the caller:

- ``by hand``: K separate ``lrsched fit --config <schedule>.yaml`` processes, one after the other
  (the baseline: each pays Python, torch and Lightning imports and a Trainer set-up);
- ``sequential``: ``lrsched compare --mode sequential``: one Lightning run per schedule, in one
  reused worker process (per device config and seed), plus results file and report;
- ``stacked``: ``lrsched compare --mode stacked``: the K schedules as copies of one module in one
  Lightning run (``torch.func.vmap``), what the default ``--mode auto`` picks here.

Ratios against the baseline are what is checked: sequential <= 0.5, stacked <= 0.2. With
``--repeats N`` the three alternate N times and each reports its minimum (noise only adds time).

Usage::

    python benchmarks/compare_speed.py              # benchmarks/results/compare_speed.{md,json}
    python benchmarks/compare_speed.py --quick      # 3 epochs: a smoke run (compare_speed_quick.*)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from environment import describe_environment  # benchmarks/environment.py, beside this script
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from lightning_lrsched.compare import SEED_SCHEDULES, compare  # noqa: E402
from lightning_lrsched.schedules.tutorial import resolve_schedule  # noqa: E402

TARGETS = {"sequential": 0.5, "stacked": 0.2}


def by_hand(schedules: list[str], root: Path, max_epochs: int) -> float:
    """K ``lrsched fit`` processes with the runs' settings; their total wall time."""
    out = Path(tempfile.mkdtemp(prefix="by-hand-", dir=root))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    total = 0.0
    for name in schedules:
        config = {
            "seed_everything": 0,
            "trainer": {
                "max_epochs": max_epochs,
                "default_root_dir": str(out / name),
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(out)}},
            },
            "model": {"optimizer": "sgd", "lr": 0.1, "scheduler": resolve_schedule(name).to_dict()},
            "data": {"seed": 0},
        }
        path = out / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "lightning_lrsched", "fit", "--config", str(path)]
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total += time.perf_counter() - started
    return total


def with_compare(schedules: list[str], mode: str, root: Path, max_epochs: int) -> float:
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=root))
    started = time.perf_counter()
    comparison = compare(
        schedules, max_epochs=max_epochs, output=out, logger="csv", mode=mode, console=Console(file=io.StringIO())
    )
    wall = time.perf_counter() - started
    if not comparison.succeeded or any(r.status != "ok" or r.mode != mode for r in comparison.records):
        raise RuntimeError(f"{mode}: not every run finished ok in {mode} mode: see {out}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs: a smoke run")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--strict", action="store_true", help="exit status 1 when a ratio misses its target")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_epochs = 3
    env = describe_environment()
    schedules = list(SEED_SCHEDULES)
    times: dict[str, list[float]] = {"by hand": [], "sequential": [], "stacked": []}
    with tempfile.TemporaryDirectory(prefix="lrsched-compare-speed-") as tmp:
        for _ in range(args.repeats):
            times["by hand"].append(by_hand(schedules, Path(tmp), args.max_epochs))
            print(f"by hand ({len(schedules)} x lrsched fit): {times['by hand'][-1]:.1f} s", flush=True)
            for mode in ("sequential", "stacked"):
                times[mode].append(with_compare(schedules, mode, Path(tmp), args.max_epochs))
                print(f"lrsched compare --mode {mode}: {times[mode][-1]:.1f} s", flush=True)
    best = {way: min(values) for way, values in times.items()}
    ratios = {mode: best[mode] / best["by hand"] for mode in TARGETS}
    for mode, ratio in ratios.items():
        print(f"{mode} / by hand = {ratio:.3f} (target <= {TARGETS[mode]})", flush=True)
    env["load_average_after"] = list(os.getloadavg())
    settings = {"schedules": schedules, "max_epochs": args.max_epochs, "repeats": args.repeats, "devices": "cpu:1"}
    payload = {"environment": env, "settings": settings, "seconds": best, "ratios": ratios, "targets": TARGETS}
    suffix = "_quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"compare_speed{suffix}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / f"compare_speed{suffix}.md").write_text(markdown(best, ratios, env, settings))
    print(f"wrote {args.out / f'compare_speed{suffix}.md'}")
    return 1 if args.strict and any(ratios[m] > TARGETS[m] for m in TARGETS) else 0


def markdown(best: dict[str, float], ratios: dict[str, float], env: dict[str, Any], settings: dict[str, Any]) -> str:
    k = len(settings["schedules"])
    lines = [
        "# `lrsched compare` against K `lrsched fit` invocations",
        "",
        f"The same {k} runs ({', '.join(settings['schedules'])}; {settings['max_epochs']} epochs of the synthetic "
        f"classifier on {settings['devices']}, CSV logs), timed from the caller, best of {settings['repeats']} "
        f"alternating repeat(s). Environment: {env}.",
        "",
        "| how | wall (s) | ratio to by hand | target |",
        "|---|---|---|---|",
        f"| by hand: {k} x `lrsched fit` | {best['by hand']:.1f} | 1 | |",
    ]
    for mode, target in TARGETS.items():
        verdict = "met" if ratios[mode] <= target else "**missed**"
        lines.append(
            f"| `lrsched compare --mode {mode}` | {best[mode]:.1f} | **{ratios[mode]:.3f}** | <= {target} ({verdict}) |"
        )
    lines += [
        "",
        "By hand, every run pays a Python process with torch and Lightning imports (several seconds here) and a "
        "Trainer set-up. Sequential compare pays the imports once per device config and seed (one reused worker "
        "process; each run is still seeded and built afresh) and adds the results file and report. Stacked "
        "compare also pays one Trainer and runs the K copies' forward and backward as one vectorised pass.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
