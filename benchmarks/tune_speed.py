"""Benchmark ``lrsched tune`` on the digits task against ``lrsched compare`` of the six tutorial schedules.

Measured in this one run (cpu:1, logger none):

- ``compare``: the six tutorial schedules x seeds 0, 1, 2 in stacked mode (DigitsClassifier
  ``hidden=[128], lr=0.3``, the model/data of ``examples/configs/compare/digits.yaml``): the baseline;
- ``tune``: ``examples/configs/tune/digits.yaml``'s space (6 schedules x peak LR x warmup), ``--budget``
  configurations, the confirmation of the top 3 on seeds 0, 1, 2 included.

Issue 21's targets: tune <= 3x compare's wall time, and tune's best configuration's mean best val
loss over 3 seeds lower than, or indistinguishable from (paired 95 % interval over the seeds), the
best tutorial schedule's. Also a scaling table: wall time per epoch of one stacked run of K copies
(no rungs) against one solo run's (K = 1).

Usage::

    python benchmarks/tune_speed.py                       # 30 epochs, budget 48: tune_speed.{md,json}
    python benchmarks/tune_speed.py --epochs 9 --budget 18 --copies 6,18 --tag reduced
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path

import yaml
from environment import describe_environment  # benchmarks/environment.py, beside this script
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lightning_lrsched.compare import compare  # noqa: E402
from lightning_lrsched.compare.statistics import paired, seed_statistics  # noqa: E402
from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES  # noqa: E402

EXAMPLE = REPO / "examples" / "configs" / "tune" / "digits.yaml"
MODEL = {"class_path": "lightning_lrsched.models.DigitsClassifier", "init_args": {"hidden": [128], "lr": 0.3}}
DATA = {"class_path": "lightning_lrsched.models.DigitsDataModule", "init_args": {"batch_size": 32}}
SEEDS = [0, 1, 2]


def quiet() -> Console:
    return Console(file=io.StringIO(), width=160)


def scaling(copies: list[int], epochs: int, space: dict, repeats: int = 3) -> list[dict]:
    """Wall time per epoch of one stacked run of K copies and of one solo run (K = 1).

    Each K twice: with no rungs (every copy trains every epoch: what a search cost when stopped copies
    were only frozen, since a frozen copy stayed in the vectorised pass), and with tune's rungs
    (``rung_epochs(epochs, 3, 2)``: the stopped copies are dropped from the pass). Each: the best of
    ``repeats`` runs.
    """
    import optuna

    from lightning_lrsched.models import DigitsClassifier, DigitsDataModule
    from lightning_lrsched.tune.search import train_search
    from lightning_lrsched.tune.space import SearchSpace, rung_epochs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parsed = SearchSpace.parse(space)

    def per_epoch(configs: list, rungs: list[int]) -> float:
        # The best of `repeats` runs: the machine is shared, and interference only ever adds time.
        return min(once(configs, rungs) for _ in range(repeats))

    def once(configs: list, rungs: list[int]) -> float:
        started = time.perf_counter()
        train_search(
            configs,
            model_class=DigitsClassifier,
            model_args={"hidden": [128]},
            data=DigitsDataModule(batch_size=32),
            seed=0,
            max_epochs=epochs,
            rungs=rungs,
            eta=3,
            trainer_args={"accelerator": "cpu", "devices": 1},
            on_decided=lambda r: None,
            on_epoch=lambda e, n: None,
        )
        return (time.perf_counter() - started) / epochs

    rows = []
    for k in [1, *copies]:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
        configs = [parsed.propose(study.ask()) for _ in range(k)]
        row = {"copies": k, "s_per_epoch": per_epoch(configs, [epochs])}
        if k >= 3:
            row["rungs"] = rung_epochs(epochs, 3, 2)
            row["s_per_epoch_dropping"] = per_epoch(configs, row["rungs"])
        rows.append(row)
    solo = rows[0]["s_per_epoch"]
    for row in rows:
        row["vs_solo"] = row["s_per_epoch"] / solo
        if "s_per_epoch_dropping" in row:
            row["dropping_vs_solo"] = row["s_per_epoch_dropping"] / solo
    return rows


def scaling_table(rows: list[dict], epochs: int) -> list[str]:
    rungs = next((r["rungs"] for r in rows if "rungs" in r), [])
    lines = [
        f"Stacked copies, {epochs} epochs: every copy trains every epoch (as when stopped copies were only frozen), "
        f"and with rungs at epochs {rungs[:-1]} keeping the best 1/3, the stopped copies dropped from the pass.",
        "",
        "| Stacked copies K | s / epoch, all train | vs one solo run | s / epoch, rungs drop copies | vs one solo run "
        "| saved by dropping |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "s_per_epoch_dropping" in r:
            saved = 1 - r["s_per_epoch_dropping"] / r["s_per_epoch"]
            dropping = f"{r['s_per_epoch_dropping']:.3f} | {r['dropping_vs_solo']:.2f}x | {saved:.0%}"
        else:
            dropping = "- | - | -"
        lines.append(f"| {r['copies']} | {r['s_per_epoch']:.3f} | {r['vs_solo']:.2f}x | {dropping} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--budget", type=int, default=48)
    parser.add_argument("--copies", default="6,24,48", help="K of the scaling table")
    parser.add_argument("--scaling-epochs", type=int, default=9, help="epochs of the scaling runs (rungs at 1/9, 1/3)")
    parser.add_argument("--scaling-only", action="store_true", help="the scaling table alone (tune_speed_scaling.md)")
    parser.add_argument("--tag", default="", help="suffix of the results files (a reduced setting)")
    args = parser.parse_args()
    from lightning_lrsched.tune import tune

    example = yaml.safe_load(EXAMPLE.read_text())
    results = REPO / "benchmarks" / "results"
    if args.scaling_only:
        rows = scaling([int(k) for k in args.copies.split(",")], args.scaling_epochs, example["space"])
        table = ["# tune: stacked copies scaling (digits, cpu:1)", "", *scaling_table(rows, args.scaling_epochs)]
        data = {"scaling": rows, "environment": describe_environment()}
        (results / "tune_speed_scaling.json").write_text(json.dumps(data, indent=1, default=str))
        (results / "tune_speed_scaling.md").write_text("\n".join(table) + "\n")
        print("\n".join(table))
        return
    out = REPO / "runs" / f"bench-tune{'-' + args.tag if args.tag else ''}"
    shutil.rmtree(out, ignore_errors=True)  # else a rerun's confirmation skips the runs of the last one
    started = time.perf_counter()
    comparison = compare(
        tuple(TUTORIAL_SCHEDULES),
        seeds=SEEDS,
        max_epochs=args.epochs,
        output=out / "compare",
        logger="none",
        model=MODEL,
        data=DATA,
        mode="stacked",
        force=True,
        console=quiet(),
    )
    compare_s = time.perf_counter() - started
    tutorial = seed_statistics(comparison.records)
    best_tutorial = tutorial.best("cpu:1")

    started = time.perf_counter()
    tuning = tune(
        example["space"],
        budget=args.budget,
        max_epochs=args.epochs,
        seeds=SEEDS,
        output=out / "tune",
        logger="none",
        model={**example["model"]},
        data=example["data"],
        force=True,
        console=quiet(),
    )
    tune_s = time.perf_counter() - started
    groups = {g.label: g for g in tuning.statistics.groups} if tuning.statistics else {}
    best = groups.get(tuning.best.label)
    result: dict = {
        "setting": {"epochs": args.epochs, "budget": args.budget, "seeds": SEEDS, "device": "cpu:1"},
        "compare_s": compare_s,
        "tune_s": tune_s,
        "ratio": tune_s / compare_s,
        "best_tutorial": {"label": best_tutorial.label, "mean": best_tutorial.metrics["best_val_loss"].mean},
        "tune_best": {"label": tuning.best.label, "schedule": tuning.best.schedule, "lr": tuning.best.lr},
    }
    if best is not None and best.enough:
        result["tune_best"]["mean"] = best.metrics["best_val_loss"].mean
        ours = {r.seed: r.best_val_loss for r in tuning.records if r.label == tuning.best.label and r.status == "ok"}
        theirs = {r.seed: r.best_val_loss for r in comparison.records if r.label == best_tutorial.label}
        shared = sorted(set(ours) & set(theirs))
        p = paired("tune", "cpu:1", best_tutorial.label, [ours[s] for s in shared], [theirs[s] for s in shared])
        result["paired"] = {"diff": p.diff, "low": p.low, "high": p.high, "seeds": p.seeds}
    result["scaling"] = scaling([int(k) for k in args.copies.split(",")], args.scaling_epochs, example["space"])
    result["environment"] = describe_environment()
    name = f"tune_speed{'_' + args.tag if args.tag else ''}"
    (results / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
    lines = [
        f"# tune speed ({args.epochs} epochs, budget {args.budget}, cpu:1)",
        "",
        f"- compare, 6 tutorial schedules x 3 seeds, stacked: {compare_s:.1f} s",
        f"- tune, budget {args.budget}, confirmation of 3 x 3 seeds included: {tune_s:.1f} s "
        f"= **{tune_s / compare_s:.2f}x** compare (target <= 3x)",
        f"- best tutorial: {best_tutorial.label}, mean best val loss {result['best_tutorial']['mean']:.4f}",
        f"- tune's best: {tuning.best.label} `{tuning.best.schedule}` lr {tuning.best.lr:.3g}"
        + (f", mean best val loss {result['tune_best']['mean']:.4f}" if "mean" in result["tune_best"] else ""),
    ]
    if "paired" in result:
        p = result["paired"]
        lines.append(
            f"- tune's best - best tutorial, paired over {p['seeds']} seeds: {p['diff']:+.4f} "
            f"(95% CI [{p['low']:+.4f}, {p['high']:+.4f}])"
        )
    lines += ["", *scaling_table(result["scaling"], args.scaling_epochs)]
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
