"""Benchmark ``lrsched compare`` against what a user would do by hand: one ``lrsched fit`` per schedule.

The same K runs (the six tutorial schedules, 20 epochs of the synthetic classifier on cpu:1, CSV
logs) are trained three ways in this one run, each timed from the caller:

- ``by hand``: K separate ``lrsched fit --config <schedule>.yaml`` processes, one after the other
  (the baseline: each pays Python, torch and Lightning imports and a Trainer set-up);
- ``sequential``: ``lrsched compare --mode sequential``: one Lightning run per schedule, in one
  reused worker process (per device config, every seed), plus results file and report;
- ``stacked``: ``lrsched compare --mode stacked``: the K schedules as copies of one module in one
  Lightning run (``torch.func.vmap``), what the default ``--mode auto`` picks here.

Ratios against the baseline are what is checked: sequential <= 0.5, stacked <= 0.2. With
``--repeats N`` the three alternate N times and each reports its minimum (noise only adds time).

``--task digits`` times the real task instead: the six tutorial schedules x 3 seeds of
:class:`~lightning_lrsched.models.DigitsClassifier` on scikit-learn's digits (30 epochs, cpu:1),
``lrsched compare --mode stacked`` (one stacked run of all 18 copies) against ``--mode sequential`` (18
runs of their own) as the baseline: stacked <= 0.25x sequential.

``--task third-party`` times modules we did not write (tests/compare/third_party_models.py: Lightning's
demo BoringModel and Transformer LM, a BatchNorm ResNet and a BERT from tiny ``transformers`` configs),
K = 4 schedules each (x ``--seeds``, default 1), 30 epochs, sequential, stacked and auto in the same
run: auto <= 1.05x sequential everywhere, and <= 0.35x sequential where it stacks.

Usage::

    python benchmarks/compare_speed.py              # benchmarks/results/compare_speed.{md,json}
    python benchmarks/compare_speed.py --quick      # 3 epochs: a smoke run (compare_speed_quick.*)
    python benchmarks/compare_speed.py --task digits  # compare_speed_digits.{md,json}
    python benchmarks/compare_speed.py --task third-party --repeats 2  # compare_speed_third_party.{md,json}
    python benchmarks/compare_speed.py --task third-party --seeds 3    # compare_speed_third_party_3_seeds.*
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

from lightning_lrsched.compare import compare  # noqa: E402
from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES, resolve_schedule  # noqa: E402

TARGETS = {"sequential": 0.5, "stacked": 0.2}
DIGITS_TARGET = 0.25  # stacked / sequential
DIGITS = {
    "model": {"class_path": "lightning_lrsched.models.DigitsClassifier", "init_args": {}},
    "data": {"class_path": "lightning_lrsched.models.DigitsDataModule", "init_args": {}},
    "seeds": [0, 1, 2],
}


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


def with_compare(schedules: list[str], mode: str, root: Path, max_epochs: int, **task: Any) -> float:
    """``lrsched compare --mode <mode>`` over ``schedules`` (and ``task``: model, data, seeds); its wall time."""
    return compare_timed(schedules, mode, root, max_epochs, **task)[0]


def quiet_compare(schedules: list[str], mode: str, out: Path, max_epochs: int, **task: Any) -> Any:
    """``compare()`` of ``schedules`` in ``mode`` into ``out``, CSV logs, its terminal output kept from the screen."""
    return compare(
        schedules,
        max_epochs=max_epochs,
        output=out,
        logger="csv",
        mode=mode,
        console=Console(file=io.StringIO()),
        **task,
    )


def compare_timed(schedules: list[str], mode: str, root: Path, max_epochs: int, **task: Any) -> tuple[float, float]:
    """``lrsched compare``'s wall time, and the part spent in ``Trainer.fit`` (the records' own wall times)."""
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=root))
    started = time.perf_counter()
    comparison = quiet_compare(schedules, mode, out, max_epochs, **task)
    wall = time.perf_counter() - started
    if not comparison.succeeded or any(r.status != "ok" or r.mode != mode for r in comparison.records):
        raise RuntimeError(f"{mode}: not every run finished ok in {mode} mode: see {out}")
    # A stacked run's copies share its fit and carry its wall time: counted once per stacked run.
    fits = {(r.device, r.wall_time) if mode == "stacked" else r.key: r.wall_time for r in comparison.records}
    return wall, sum(fits.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("synthetic", "digits", "third-party"), default="synthetic")
    parser.add_argument("--quick", action="store_true", help="3 epochs: a smoke run")
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="default: 20 (synthetic), 30 (digits and third-party)"
    )
    parser.add_argument("--seeds", type=int, default=1, help="third-party: seeds per schedule (default 1)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--strict", action="store_true", help="exit status 1 when a ratio misses its target")
    args = parser.parse_args(argv)
    if args.max_epochs is None:
        args.max_epochs = 3 if args.quick else 30 if args.task in ("digits", "third-party") else 20
    if args.task == "digits":
        return digits(args)
    if args.task == "third-party":
        return third_party(args)
    env = describe_environment()
    schedules = list(TUTORIAL_SCHEDULES)
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


def digits(args: argparse.Namespace) -> int:
    """Digits, six schedules x 3 seeds on cpu:1: stacked against sequential, alternating ``--repeats`` times."""
    env = describe_environment()
    schedules = list(TUTORIAL_SCHEDULES)
    times: dict[str, list[tuple[float, float]]] = {"sequential": [], "stacked": []}
    with tempfile.TemporaryDirectory(prefix="lrsched-compare-speed-digits-") as tmp:
        for _ in range(args.repeats):
            for mode in times:
                times[mode].append(compare_timed(schedules, mode, Path(tmp), args.max_epochs, **DIGITS))
                wall, fit = times[mode][-1]
                print(
                    f"lrsched compare --mode {mode} (digits): {wall:.1f} s, of which Trainer.fit {fit:.1f} s",
                    flush=True,
                )
    best = {mode: min(wall for wall, _ in values) for mode, values in times.items()}
    fits = {mode: min(fit for _, fit in values) for mode, values in times.items()}
    ratio = best["stacked"] / best["sequential"]
    fit_ratio = fits["stacked"] / fits["sequential"]
    print(
        f"stacked / sequential = {ratio:.3f} (target <= {DIGITS_TARGET}); Trainer.fit only: {fit_ratio:.3f}", flush=True
    )
    env["load_average_after"] = list(os.getloadavg())
    settings = {"schedules": schedules, "max_epochs": args.max_epochs, "repeats": args.repeats, "devices": "cpu:1"}
    settings.update(DIGITS)
    payload = {
        "environment": env,
        "settings": settings,
        "seconds": best,
        "ratio": ratio,
        "target": DIGITS_TARGET,
        "fit_seconds": fits,
        "fit_ratio": fit_ratio,
    }
    stem = "compare_speed_digits" + ("_quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(digits_markdown(best, fits, env, settings))
    print(f"wrote {args.out / f'{stem}.md'}")
    return 1 if args.strict and ratio > DIGITS_TARGET else 0


THIRD_PARTY_TARGETS = {"auto": 1.05, "auto (stacked)": 0.35}  # against sequential
THIRD_PARTY = {
    name: {
        "model": {"class_path": f"tests.compare.third_party_models.{model}", "init_args": init_args},
        "data": {"class_path": data, "init_args": {}},
    }
    for name, model, init_args, data in (
        ("BoringModel", "LoggingBoringModel", {}, "lightning.pytorch.demos.boring_classes.BoringDataModule"),
        ("LightningTransformer", "LoggingTransformer", {}, "tests.compare.third_party_models.TinyTokens"),
        (
            "LightningTransformer, dropout 0",
            "LoggingTransformer",
            {"dropout": 0.0},
            "tests.compare.third_party_models.TinyTokens",
        ),
        ("ResNet (transformers)", "TinyResNet", {}, "tests.compare.third_party_models.TinyImages"),
        ("BERT (transformers)", "TinyBert", {}, "tests.compare.third_party_models.TinySentences"),
    )
}


def third_party_timed(
    schedules: list[str], mode: str, root: Path, max_epochs: int, **task: Any
) -> tuple[float, float, str]:
    """``compare(mode=mode)``'s wall time, the part in ``Trainer.fit``, and the mode its runs trained in.

    ``(nan, nan, "")`` where it refused (``--mode stacked`` on a module that cannot be stacked).
    """
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=root))
    started = time.perf_counter()
    try:
        comparison = quiet_compare(schedules, mode, out, max_epochs, **task)
    except ValueError as error:
        print(f"  {mode}: refused: {error}", flush=True)
        return float("nan"), float("nan"), ""
    wall = time.perf_counter() - started
    if any(r.status == "failed" for r in comparison.records):
        raise RuntimeError(f"{mode}: a run failed: see {out}")
    modes = {r.mode for r in comparison.records}
    if len(modes) != 1:
        raise RuntimeError(f"{mode}: runs in several modes {modes}: see {out}")
    trained = modes.pop()
    for note in comparison.notes:
        print(f"  {note}", flush=True)
    # A stacked run's copies share its fit and carry its wall time: counted once per stacked run.
    fits = {(r.device, r.wall_time) if trained == "stacked" else r.key: r.wall_time for r in comparison.records}
    return wall, sum(fits.values()), trained


def third_party(args: argparse.Namespace) -> int:
    """Each third-party module, K = 4 schedules on cpu:1: sequential, stacked and auto, ``--repeats`` rounds.

    The modes take turns, in a rotated order each round, so a busy moment hits them all; each keeps its minimum.
    """
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])  # the workers import
    os.chdir(REPO)  # tests.compare.third_party_models
    env = describe_environment()
    schedules = list(TUTORIAL_SCHEDULES)[:4]
    rows: dict[str, dict[str, Any]] = {}
    modes = ["sequential", "stacked", "auto"]
    with tempfile.TemporaryDirectory(prefix="lrsched-compare-speed-third-party-") as tmp:
        for name, task in THIRD_PARTY.items():
            times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
            picked: list[str] = []
            for round_ in range(args.repeats):
                for mode in modes[round_ % 3 :] + modes[: round_ % 3]:
                    wall, fit, trained = third_party_timed(
                        schedules, mode, Path(tmp), args.max_epochs, seeds=list(range(args.seeds)), **task
                    )
                    times[mode].append((wall, fit))
                    if mode == "auto":
                        picked.append(trained)
                    print(f"{name}: --mode {mode}: {wall:.1f} s, fit {fit:.1f} s ({trained or 'refused'})", flush=True)
            best = {mode: min(wall for wall, _ in values) for mode, values in times.items()}
            fits = {mode: min(fit for _, fit in values) for mode, values in times.items()}
            ratios = {mode: best[mode] / best["sequential"] for mode in ("stacked", "auto")}
            fit_ratios = {mode: fits[mode] / fits["sequential"] for mode in ("stacked", "auto")}
            rows[name] = {
                "seconds": best,
                "fit_seconds": fits,
                "ratios": ratios,
                "fit_ratios": fit_ratios,
                "auto_picked": "/".join(dict.fromkeys(picked)),
            }
            print(
                f"{name}: stacked/sequential {ratios['stacked']:.3f} (fits {fit_ratios['stacked']:.3f}), "
                f"auto/sequential {ratios['auto']:.3f} (fits {fit_ratios['auto']:.3f}), auto picked {picked}",
                flush=True,
            )
    env["load_average_after"] = list(os.getloadavg())
    settings = {
        "schedules": schedules,
        "seeds": args.seeds,
        "max_epochs": args.max_epochs,
        "repeats": args.repeats,
        "devices": "cpu:1",
    }
    payload = {"environment": env, "settings": settings, "modules": rows, "targets": THIRD_PARTY_TARGETS}
    stem = "compare_speed_third_party" + ("_quick" if args.quick else "")
    if not args.quick and args.max_epochs != 30:
        stem += f"_{args.max_epochs}_epochs"  # beside the default's figures, not over them
    if args.seeds != 1:
        stem += f"_{args.seeds}_seeds"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(third_party_markdown(rows, env, settings))
    print(f"wrote {args.out / f'{stem}.md'}")
    return 1 if args.strict and any(not third_party_met(row) for row in rows.values()) else 0


def third_party_met(row: dict[str, Any]) -> bool:
    auto = row["ratios"]["auto"]
    return auto <= THIRD_PARTY_TARGETS["auto"] and (
        "stacked" not in row["auto_picked"] or auto <= THIRD_PARTY_TARGETS["auto (stacked)"]
    )


def third_party_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The Markdown table of :func:`third_party`'s figures (also in docs/benchmarks.md and docs/compare.md)."""
    lines = [
        "| module | sequential: wall (fit) s | stacked: wall (fit) s | stacked / sequential: wall (fit) | auto picked "
        "| auto: wall (fit) s | auto / sequential: wall (fit) | target (wall) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        wall, fit, ratios, fit_ratios = row["seconds"], row["fit_seconds"], row["ratios"], row["fit_ratios"]
        refused = wall["stacked"] != wall["stacked"]  # nan
        stacked = "refused" if refused else f"{wall['stacked']:.1f} ({fit['stacked']:.1f})"
        stacked_ratio = "-" if refused else f"{ratios['stacked']:.2f} ({fit_ratios['stacked']:.2f})"
        target = "<= 0.35" if row["auto_picked"] == "stacked" else "<= 1.05"
        verdict = "met" if third_party_met(row) else "**missed**"
        lines.append(
            f"| {name} | {wall['sequential']:.1f} ({fit['sequential']:.1f}) | {stacked} | {stacked_ratio} | "
            f"{row['auto_picked']} | {wall['auto']:.1f} ({fit['auto']:.1f}) | **{ratios['auto']:.2f}** "
            f"({fit_ratios['auto']:.2f}) | {target} ({verdict}) |"
        )
    return lines


def third_party_markdown(rows: dict[str, dict[str, Any]], env: dict[str, Any], settings: dict[str, Any]) -> str:
    k = len(settings["schedules"])
    lines = [
        "# `lrsched compare` on third-party modules: sequential, stacked and auto",
        "",
        f"{k} schedules ({', '.join(settings['schedules'])}) x {settings.get('seeds', 1)} seed(s), "
        f"{settings['max_epochs']} epochs of each module of "
        f"tests/compare/third_party_models.py on {settings['devices']}, CSV logs, timed from the caller (the whole "
        f"`compare()`: worker start, auto's probe, report; in brackets the part in `Trainer.fit`), best of "
        f"{settings['repeats']} rounds in which the modes take turns. "
        f"Environment: {env}.",
        "",
        *third_party_table(rows),
        "",
        "BoringModel has no `stacked_metrics`, and the demo Transformer's attention dropout (0.2) cannot be drawn "
        "by stacked copies as its solo runs draw it: `--mode stacked` refuses both before anything trains and "
        "auto trains them sequentially (no timing probe). Targets: auto <= 1.05x sequential everywhere, <= 0.35x where "
        "it stacks.",
        "",
        "Outside `Trainer.fit` (wall minus fit), per `compare()` call: "
        + ", ".join(
            f"{name} {row['seconds']['sequential'] - row['fit_seconds']['sequential']:.1f} s sequential"
            + (
                ""
                if row["seconds"]["stacked"] != row["seconds"]["stacked"]
                else f" / {row['seconds']['stacked'] - row['fit_seconds']['stacked']:.1f} s stacked"
            )
            for name, row in rows.items()
        )
        + ": the worker process and its imports (torch, Lightning, `transformers` for the ResNet and BERT), the "
        "runs' set-up and the report. With fits of a few seconds that fixed part is most of the wall time in "
        "every mode and bounds the wall ratios; the fit ratios are what stacking changes.",
        "",
        "What bounds the fit ratios: [vmap_floor.md](vmap_floor.md) (K copies' forward and backward in one `vmap` "
        "against K solo ones, outside Lightning).",
        "",
    ]
    return "\n".join(lines)


def digits_markdown(
    best: dict[str, float], fits: dict[str, float], env: dict[str, Any], settings: dict[str, Any]
) -> str:
    k, seeds = len(settings["schedules"]), len(settings["seeds"])
    ratio, fit_ratio = best["stacked"] / best["sequential"], fits["stacked"] / fits["sequential"]
    verdict = "met" if ratio <= DIGITS_TARGET else "**missed**"
    lines = [
        "# `lrsched compare` on digits: stacked against sequential",
        "",
        f"{k} schedules ({', '.join(settings['schedules'])}) x {seeds} seeds, {settings['max_epochs']} epochs of "
        f"DigitsClassifier (defaults: 64 → 128 → 10, SGD lr 0.3, batches of 32) on {settings['devices']}, CSV "
        f"logs, timed from the caller, best of {settings['repeats']} alternating repeat(s). Environment: {env}.",
        "",
        "| how | wall (s) | ratio to sequential | target | of which `Trainer.fit` (s) | fit ratio |",
        "|---|---|---|---|---|---|",
        f"| `lrsched compare --mode sequential`: {k * seeds} runs of their own | {best['sequential']:.1f} | 1 | | "
        f"{fits['sequential']:.1f} | 1 |",
        f"| `lrsched compare --mode stacked`: 1 stacked run of {k * seeds} copies | {best['stacked']:.1f} | "
        f"**{ratio:.3f}** | <= {DIGITS_TARGET} ({verdict}) | {fits['stacked']:.1f} | {fit_ratio:.3f} |",
        "",
        "Both modes train the same runs (each copy's losses equal its run of its own to 1e-5, "
        "tests/compare/test_stack_any.py) in one reused worker process. On a single-process device config "
        "stacked mode puts every schedule and seed in one run: each copy is built after its own seed and trains "
        "on its own seed's batches (stacked along a new leading dimension), so it pays one Trainer, one "
        "training loop and one validation loop for all of them and runs the copies' forward and backward as "
        "one vectorised pass.",
        "",
        f"Outside `Trainer.fit`: {best['sequential'] - fits['sequential']:.1f} s sequential, "
        f"{best['stacked'] - fits['stacked']:.1f} s stacked: in both modes one worker process for the device "
        "config, which imports torch and Lightning once (about 3 s for a fresh process here: a standby worker "
        "started when `compare()` starts, importing while this process checks the model and data classes, "
        "which imports Lightning here too) and exempts them from the garbage collector's full collections "
        "(`gc.freeze`), the per-run set-up, and the report (written once per finished job, the last one after "
        "the last fit). With the fits stacked, that fixed part is more than half of stacked mode's wall time "
        "and bounds the ratio.",
        "",
    ]
    return "\n".join(lines)


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
        "Trainer set-up. Sequential compare pays the imports once per device config (one reused worker "
        "process; each run is still seeded and built afresh) and adds the results file and report. Stacked "
        "compare also pays one Trainer and runs the K copies' forward and backward as one vectorised pass.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
