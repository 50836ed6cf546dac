"""Benchmark ``lrsched compare``: stacked mode against sequential mode, wall time of the whole comparison.

Each scenario runs :func:`lightning_lrsched.compare` twice on the same grid, into fresh output
folders, with the comparison's defaults (cpu:1, seed 0, 20 epochs of the synthetic classifier,
W&B offline, the report rewritten after every run):

- ``sequential``: one worker process and one Lightning run per schedule (``mode="sequential"``);
- ``stacked``: all schedules in one worker process, as copies of the module in one Lightning run
  (``mode="stacked"``, what the default ``mode="auto"`` picks for this grid).

The ratio ``stacked / sequential`` is what is checked. Scenarios: ``six`` (the six tutorial
schedules: the default comparison; target <= 0.35, goal 0.25) and ``sixteen`` (16 different
schedules; target <= 0.15). With ``--repeats K`` the two modes alternate K times and each reports
its minimum (noise only adds time).

Usage::

    python benchmarks/compare_speed.py            # both scenarios: benchmarks/results/compare_speed.{md,json}
    python benchmarks/compare_speed.py --quick    # six schedules, 3 epochs, no W&B: a smoke run
    python benchmarks/compare_speed.py --logger none  # without W&B
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from environment import describe_environment  # benchmarks/environment.py, beside this script
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from lightning_lrsched.compare import SEED_SCHEDULES, compare  # noqa: E402

SIXTEEN: list[Any] = [
    *SEED_SCHEDULES,
    {"name": "onecycle", "max_lr": 0.2},
    {"name": "warmup_cosine", "warmup": "2ep"},
    {"name": "warmup_linear", "warmup": "2ep"},
    {"name": "warmup_constant", "warmup": "2ep"},
    {"name": "cosine_restarts", "T_0": 5},
    {"name": "polynomial", "power": 2.0},
    {"name": "linear", "start_factor": 0.1, "total_iters": 5},
    {"name": "constant", "factor": 0.5, "total_iters": 5},
    {"name": "inverse_sqrt", "warmup": "1ep"},
    {"name": "wsd", "warmup": "1ep", "decay": "25%"},
]
SCENARIOS: dict[str, tuple[list[Any], float, float]] = {
    # name: (schedules, target ratio, goal ratio)
    "six": (list(SEED_SCHEDULES), 0.35, 0.25),
    "sixteen": (SIXTEEN, 0.15, 0.15),
}


def timed_compare(schedules: list[Any], mode: str, root: Path, max_epochs: int, logger: str) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=root))
    quiet = Console(file=io.StringIO())
    started = time.perf_counter()
    comparison = compare(schedules, max_epochs=max_epochs, output=out, logger=logger, mode=mode, console=quiet)
    wall = time.perf_counter() - started
    records = comparison.records
    if len(records) != len(schedules) or any(r["status"] != "ok" or r["mode"] != mode for r in records):
        raise RuntimeError(f"{mode}: not every run finished ok in {mode} mode: see {out}")
    return {"wall": wall}


def environment() -> dict[str, Any]:
    return describe_environment()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="six schedules, 3 epochs, no W&B")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--logger", choices=("wandb", "csv", "none"), default="wandb")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--strict", action="store_true", help="exit status 1 when a ratio misses its target")
    args = parser.parse_args(argv)
    if args.quick:
        args.scenarios, args.max_epochs, args.logger = ["six"], 3, "none"
    env = environment()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lrsched-compare-speed-") as tmp:
        for name in args.scenarios:
            schedules, target, goal = SCENARIOS[name]
            times: dict[str, list[dict[str, Any]]] = {"sequential": [], "stacked": []}
            for _ in range(args.repeats):
                for mode in ("sequential", "stacked"):
                    times[mode].append(timed_compare(schedules, mode, Path(tmp), args.max_epochs, args.logger))
                    print(f"{name} {mode}: {times[mode][-1]['wall']:.1f} s", flush=True)
            best = {mode: min(t["wall"] for t in runs) for mode, runs in times.items()}
            ratio = best["stacked"] / best["sequential"]
            results[name] = {
                "schedules": len(schedules),
                "sequential_s": best["sequential"],
                "stacked_s": best["stacked"],
                "ratio": ratio,
                "target": target,
                "goal": goal,
                "passed": ratio <= target,
                "runs": times,
            }
            print(f"{name}: stacked / sequential = {ratio:.3f} (target <= {target})", flush=True)
    env["load_average_after"] = list(os.getloadavg())
    suffix = "_quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"max_epochs": args.max_epochs, "logger": args.logger, "repeats": args.repeats, "devices": "cpu:1"}
    payload = {"environment": env, "settings": settings, "results": results}
    (args.out / f"compare_speed{suffix}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / f"compare_speed{suffix}.md").write_text(markdown(results, env, settings))
    print(f"wrote {args.out / f'compare_speed{suffix}.md'}")
    return 1 if args.strict and not all(r["passed"] for r in results.values()) else 0


def markdown(results: dict[str, Any], env: dict[str, Any], settings: dict[str, Any]) -> str:
    lines = [
        "# `lrsched compare`: stacked vs sequential",
        "",
        f"The whole comparison, timed from the caller (worker start-up, W&B, report included): "
        f"{settings['max_epochs']} epochs of the synthetic classifier per schedule on {settings['devices']}, "
        f"logger `{settings['logger']}`, best of {settings['repeats']} alternating repeat(s). "
        f"Environment: {env}.",
        "",
        "| scenario | schedules | sequential (s) | stacked (s) | stacked / sequential | target |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        verdict = "met" if r["passed"] else "**missed**"
        lines.append(
            f"| {name} | {r['schedules']} | {r['sequential_s']:.1f} | {r['stacked_s']:.1f} | "
            f"**{r['ratio']:.3f}** | <= {r['target']} ({verdict}) |"
        )
    lines += [
        "",
        "Sequential mode pays, per schedule, a worker process (Python, torch and Lightning imports), a Trainer "
        "and a W&B run set-up, and a Lightning loop around a model whose own work is a small share of each "
        "step. Stacked mode pays the process and Trainer once and runs the K copies' forward and backward as one "
        "vectorised pass (`torch.func.vmap`), so its time grows slowly with K.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
