"""Benchmark lightning_lrsched's schedules against torch's own schedulers, as ratios measured in one run.

Two measurements, each for cosine, step, onecycle, cyclic and warmup_cosine:

1. ``preview``: :func:`lightning_lrsched.schedules.preview` of N steps (10^6; 10^5 with ``--quick``) against
   stepping the equivalent torch scheduler N times (recording the LR of every step, which is what
   ``preview`` returns). Target: ours <= 0.05x torch.
2. ``step()``: the per-call cost of :class:`~lightning_lrsched.schedules.ScheduledLR` ``.step()`` against the
   torch scheduler's ``.step()`` (SGD with momentum, 2 param groups), best of several interleaved repeats.
   Target: ours <= 1.0x torch (issue 9).

Only the ratios are compared against the targets: absolute times depend on the machine. The preview and
the torch loop are also checked to give the same LRs, so the comparison is between equivalent schedules.

Usage::

    python benchmarks/bench_schedules.py            # full run, writes benchmarks/results/schedules.{md,json}
    python benchmarks/bench_schedules.py --quick    # smoke run, writes benchmarks/results/schedules_quick.{md,json}
    python benchmarks/bench_schedules.py --profile  # also cProfile our step() for every schedule
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import pstats
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from environment import describe_environment  # benchmarks/environment.py, beside this script
from torch.optim import SGD, Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, CyclicLR, LambdaLR, LRScheduler, OneCycleLR, StepLR

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from lightning_lrsched.schedules import Schedule, get_schedule, preview  # noqa: E402

PREVIEW_TARGET = 0.05  # preview time / torch stepping time
STEP_TARGET = 1.0  # ours step() / torch step()
LRS = (0.1, 0.05)  # the two param groups' LRs
MOMENTUM = 0.9

# torch warns when a scheduler is stepped before its optimizer; the benchmark steps the optimizer once
# first, and filters the warning as well in case a torch version still emits it.
warnings.filterwarnings("ignore", message=r".*lr_scheduler\.step\(\)` before `optimizer\.step\(\)`.*")
warnings.filterwarnings("ignore", message=r".*optimizer\.step\(\)` has been overridden.*")


# -- the cases --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One schedule, in our form and as the equivalent torch scheduler, for a run of ``n`` steps."""

    name: str
    ours: Callable[[int], Schedule]
    torch: Callable[[Optimizer, int], LRScheduler]
    baseline: str


def _hf_warmup_cosine(optimizer: Optimizer, n: int) -> LRScheduler:
    """HF ``get_scheduler("cosine")``: a LambdaLR; the same lambda inline when transformers is absent."""
    warmup = n // 20
    try:
        from transformers import get_scheduler
    except ImportError:

        def lr_lambda(step: int) -> float:  # transformers' _get_cosine_schedule_with_warmup_lr_lambda
            if step < warmup:
                return float(step) / float(max(1, warmup))
            progress = float(step - warmup) / float(max(1, n - warmup))
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

        return LambdaLR(optimizer, lr_lambda)
    return get_scheduler("cosine", optimizer, num_warmup_steps=warmup, num_training_steps=n)


def _hf_baseline_name() -> str:
    try:
        import transformers
    except ImportError:
        return "LambdaLR (HF cosine lambda, inline)"
    return f"transformers.get_scheduler('cosine') {transformers.__version__} (LambdaLR)"


CASES = [
    Case(
        "cosine",
        lambda n: get_schedule("cosine", interval="step"),  # T_max defaults to the run
        lambda opt, n: CosineAnnealingLR(opt, T_max=n),
        "CosineAnnealingLR(T_max=N)",
    ),
    Case(
        "step",
        lambda n: get_schedule("step", step_size=n // 10, gamma=0.5, interval="step"),
        lambda opt, n: StepLR(opt, step_size=n // 10, gamma=0.5),
        "StepLR(step_size=N/10, gamma=0.5)",
    ),
    Case(
        "onecycle",
        lambda n: get_schedule("onecycle", max_lr=0.1),  # total_steps defaults to the run
        lambda opt, n: OneCycleLR(opt, max_lr=0.1, total_steps=n),
        "OneCycleLR(max_lr=0.1, total_steps=N)",
    ),
    Case(
        "cyclic",
        lambda n: get_schedule("cyclic", base_lr=0.01, max_lr=0.1, step_size_up=2000),
        lambda opt, n: CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=2000),
        "CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=2000)",
    ),
    Case(
        "warmup_cosine",
        lambda n: get_schedule("warmup_cosine", warmup=n // 20),  # total defaults to the run
        _hf_warmup_cosine,
        "",  # filled in at run time
    ),
]


def make_optimizer() -> SGD:
    """SGD with momentum over two param groups with different LRs."""
    params = [torch.nn.Parameter(torch.zeros(4)) for _ in LRS]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, LRS, strict=True)]
    return SGD(groups, lr=LRS[0], momentum=MOMENTUM)


def build_torch(case: Case, n: int) -> LRScheduler:
    optimizer = make_optimizer()
    scheduler = case.torch(optimizer, n)
    optimizer.step()  # no grads: a no-op that only tells torch the optimizer ran first
    return scheduler


def build_ours(case: Case, n: int) -> LRScheduler:
    optimizer = make_optimizer()
    scheduler = case.ours(n).build(optimizer, total_steps=n)
    optimizer.step()
    return scheduler


# -- timing -----------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn()`` takes, with the garbage collector off (as timeit does)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result
    finally:
        gc.enable()


def torch_loop(scheduler: LRScheduler, n: int) -> Callable[[], np.ndarray]:
    """Step ``scheduler`` n times, recording group 0's LR before each step (what ``preview`` returns)."""

    def run() -> np.ndarray:
        group = scheduler.optimizer.param_groups[0]
        step = scheduler.step
        lrs: list[float] = []
        record = lrs.append
        for _ in range(n):
            record(group["lr"])
            step()
        return np.asarray(lrs)

    return run


def step_loop(scheduler: LRScheduler, calls: int) -> Callable[[], None]:
    def run() -> None:
        step = scheduler.step
        for _ in range(calls):
            step()

    return run


def bench_preview(case: Case, n: int, preview_repeats: int, torch_repeats: int) -> dict[str, Any]:
    """Best preview time and best torch-loop time; the two are interleaved."""
    schedule = case.ours(n)
    ours_times, torch_times = [], []
    reference: np.ndarray | None = None
    torch_lrs: np.ndarray | None = None
    for r in range(max(preview_repeats, torch_repeats)):
        if r < preview_repeats:
            seconds, reference = timed(lambda: preview(schedule, n, base_lr=LRS[0]))
            ours_times.append(seconds)
        if r < torch_repeats:
            scheduler = build_torch(case, n)
            seconds, torch_lrs = timed(torch_loop(scheduler, n))
            torch_times.append(seconds)
            del scheduler
    assert reference is not None and torch_lrs is not None
    scale = float(np.max(np.abs(torch_lrs)))
    max_err = float(np.max(np.abs(reference - torch_lrs))) / scale
    ours, base = min(ours_times), min(torch_times)
    return {
        "kind": "preview",
        "schedule": case.name,
        "baseline": case.baseline,
        "steps": n,
        "ours_s": ours,
        "torch_s": base,
        "ours_all_s": ours_times,
        "torch_all_s": torch_times,
        "ratio": ours / base,
        "target": PREVIEW_TARGET,
        "pass": ours / base <= PREVIEW_TARGET,
        "max_rel_lr_diff": max_err,
    }


def bench_step(case: Case, calls: int, repeats: int) -> dict[str, Any]:
    """Best per-call step() time of ours and of torch, interleaved (order alternating per repeat)."""
    ours_times, torch_times = [], []
    for r in range(repeats):
        order = [("ours", build_ours), ("torch", build_torch)]
        if r % 2:
            order.reverse()
        for label, build in order:
            scheduler = build(case, calls)  # fresh each repeat: OneCycleLR raises past total_steps
            seconds, _ = timed(step_loop(scheduler, calls))
            (ours_times if label == "ours" else torch_times).append(seconds / calls)
            del scheduler
    ours, base = min(ours_times), min(torch_times)
    return {
        "kind": "step",
        "schedule": case.name,
        "baseline": case.baseline,
        "calls": calls,
        "repeats": repeats,
        "ours_us": ours * 1e6,
        "torch_us": base * 1e6,
        "ours_all_us": [t * 1e6 for t in ours_times],
        "torch_all_us": [t * 1e6 for t in torch_times],
        "ratio": ours / base,
        "target": STEP_TARGET,
        "pass": ours / base <= STEP_TARGET,
    }


def profile_step(case: Case, calls: int, top: int = 12) -> str:
    """cProfile of our step() for ``calls`` calls: the hot spots by own time."""
    scheduler = build_ours(case, calls)
    profiler = cProfile.Profile()
    profiler.enable()
    step_loop(scheduler, calls)()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- reporting --------------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.1f} ms"


def _count(n: int) -> str:
    exponent = math.log10(n)
    return f"10^{int(exponent)}" if exponent.is_integer() else f"{n:,}"


def markdown(results: list[dict[str, Any]], config: dict[str, Any]) -> str:
    lines = [
        "| schedule | ours | torch | ratio | target | pass |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for r in results:
        if r["kind"] == "preview":
            label = f"{r['schedule']}: preview {_count(r['steps'])} steps"
            ours, base = _duration(r["ours_s"]), _duration(r["torch_s"])
        else:
            label = f"{r['schedule']}: step()"
            ours, base = f"{r['ours_us']:.2f} µs", f"{r['torch_us']:.2f} µs"
        verdict = "yes" if r["pass"] else "**NO**"
        lines.append(f"| {label} | {ours} | {base} | {r['ratio']:.3f}x | <= {r['target']}x | {verdict} |")
    table = "\n".join(lines)
    env = config["environment"]
    checks = ", ".join(f"{r['schedule']} {r['max_rel_lr_diff']:.1e}" for r in results if r["kind"] == "preview")
    baselines = "\n".join(f"- {r['schedule']}: {r['baseline']}" for r in results if r["kind"] == "preview")
    return (
        f"# Schedule benchmarks{' (quick)' if config['quick'] else ''}\n\n"
        f"{table}\n\n"
        "Ratios are ours / torch measured in the same run; only ratios are compared with the targets.\n\n"
        f"- preview: `preview()` of {_count(config['preview_steps'])} steps vs stepping the torch scheduler as "
        f"often and recording each LR; best of {config['preview_repeats']} previews and "
        f"{config['torch_loop_repeats']} torch loop(s).\n"
        f"- step(): per-call time of `step()` over {config['step_calls']:,} calls, SGD(momentum={MOMENTUM}) with "
        f"{len(LRS)} param groups, best of {config['step_repeats']} interleaved repeats.\n"
        f"- preview == torch LRs (max |diff| / max lr): {checks}\n\n"
        f"Baselines:\n{baselines}\n\n"
        f"Environment: Python {env['python']}, torch {env['torch']}, numpy {env['numpy']}, "
        f"{env['cpus']} CPUs, {env['platform']}, commit {env['commit']}.\n"
    )


def environment() -> dict[str, Any]:
    return describe_environment()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (10^5 preview steps) for a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="step() repeats per implementation")
    parser.add_argument("--only", nargs="+", choices=[c.name for c in CASES], help="benchmark only these schedules")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of our step() per schedule")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="results directory")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a ratio misses its target")
    args = parser.parse_args(argv)

    config: dict[str, Any] = {
        "quick": args.quick,
        "preview_steps": 10**5 if args.quick else 10**6,
        "preview_repeats": 3 if args.quick else 5,
        "torch_loop_repeats": 1 if args.quick else 2,
        "step_calls": 20_000 if args.quick else 200_000,
        "step_repeats": args.repeats or (3 if args.quick else 7),
        "targets": {"preview": PREVIEW_TARGET, "step": STEP_TARGET},
        "environment": environment(),
    }
    cases = [c for c in CASES if not args.only or c.name in args.only]
    cases = [Case(c.name, c.ours, c.torch, c.baseline or _hf_baseline_name()) for c in cases]

    results: list[dict[str, Any]] = []
    for case in cases:
        r = bench_preview(case, config["preview_steps"], config["preview_repeats"], config["torch_loop_repeats"])
        print(f"preview {case.name:>14}: {r['ratio']:.4f}x  (lr diff {r['max_rel_lr_diff']:.1e})", flush=True)
        results.append(r)
    for case in cases:
        r = bench_step(case, config["step_calls"], config["step_repeats"])
        print(f"step()  {case.name:>14}: {r['ratio']:.3f}x  ({r['ours_us']:.2f} vs {r['torch_us']:.2f} µs)", flush=True)
        results.append(r)

    text = markdown(results, config)
    print()
    print(text)
    if args.profile:
        for case in cases:
            print(f"## cProfile of our step(): {case.name}\n")
            print(profile_step(case, config["step_calls"]))

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "schedules_quick" if args.quick else "schedules"
    (args.out / f"{stem}.md").write_text(text)
    payload = {"config": config, "results": results}
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out / f'{stem}.md'} and {args.out / f'{stem}.json'}")
    return 1 if args.strict and not all(r["pass"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
