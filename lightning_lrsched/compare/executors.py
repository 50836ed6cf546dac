"""How the runs of a grid are executed: one subprocess each (local), or as Ray Tune trials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightning_lrsched.compare.grid import Job, RunSpec, Unstackable, is_stacked, job_name

EXECUTORS = ("local", "ray")
OnResult = Callable[[Job, list[dict[str, Any]]], None]
"""Called once per finished job with one record per spec, in the job's order."""


OnUnstackable = Callable[[Job, str], None]


def _environment(spec: RunSpec) -> dict[str, str]:
    env = dict(os.environ)
    # One BLAS thread per process: N DDP processes on N cores must not each start N threads.
    threads = max(1, (os.cpu_count() or 1) // spec.device_config.processes)
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("WANDB_SILENT", "true")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_in_subprocess(job: Job, log_dir: Path, timeout: float | None = None) -> list[dict[str, Any]]:
    """Run a job in its own Python process: one record per spec; a crash or hang becomes ``failed`` records.

    A stacked job gets ``timeout`` once per spec it holds.

    Raises:
        Unstackable: a stacked job whose module cannot be stacked.
    """
    stacked = is_stacked(job)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{job_name(job)}.log"
    limit = None if timeout is None else timeout * len(job)

    def failed(reason: str) -> list[dict[str, Any]]:
        return [spec.failed(reason) for spec in job]

    with tempfile.TemporaryDirectory(prefix="lrsched-run-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        payload = [spec.to_dict() for spec in job] if stacked else job[0].to_dict()
        spec_path.write_text(json.dumps(payload))
        command = [sys.executable, "-m", "lightning_lrsched.compare.worker", str(spec_path), str(result_path)]
        with log.open("w") as handle:
            try:
                code = subprocess.run(  # noqa: S603 - our own interpreter and module
                    command, stdout=handle, stderr=subprocess.STDOUT, env=_environment(job[0]), timeout=limit
                ).returncode
            except subprocess.TimeoutExpired:
                return failed(f"timed out after {limit} s; log: {log}")
        if not result_path.exists():
            tail = log.read_text()[-1500:]
            return failed(f"the run's process exited with status {code} and no result; log: {log}\n{tail}")
        result = json.loads(result_path.read_text())
    if not stacked:
        return [result]
    if "unstackable" in result:
        raise Unstackable(result["unstackable"])
    return result["records"]


def run_local(
    jobs: Sequence[Job],
    on_result: OnResult,
    log_dir: Path,
    timeout: float | None = None,
    on_unstackable: OnUnstackable | None = None,
) -> None:
    for job in jobs:
        try:
            records = run_in_subprocess(job, log_dir, timeout)
        except Unstackable as error:
            _unstackable(on_unstackable, job, str(error))
            continue
        on_result(job, records)


def _unstackable(on_unstackable: OnUnstackable | None, job: Job, reason: str) -> None:
    if on_unstackable is None:
        raise Unstackable(reason)
    on_unstackable(job, reason)


def ray_available() -> str | None:
    """Why Ray Tune cannot be used here, or ``None`` when it can."""
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        return "Ray Tune is not installed: pip install 'lightning-lrsched[ray]'"
    return None


def run_ray(
    jobs: Sequence[Job],
    on_result: OnResult,
    log_dir: Path,
    timeout: float | None = None,
    on_unstackable: OnUnstackable | None = None,
) -> None:
    """Run every job as one Ray Tune trial with the resources its device config needs.

    Each trial trains in a subprocess of its Ray worker (DDP relaunches its command, which a Ray
    worker process cannot be) and reports the finished run's metrics to Tune (a stacked run's:
    its records only).
    """
    reason = ray_available()
    if reason:
        raise RuntimeError(reason)
    import ray
    from ray import tune

    def trainable(config: dict[str, Any]) -> dict[str, Any]:
        job = tuple(RunSpec.from_dict(s) for s in config["job"])
        try:
            records = run_in_subprocess(job, Path(config["log_dir"]), timeout)
        except Unstackable as error:
            return {"unstackable": str(error)}
        metrics = {}
        if len(records) == 1:
            metrics = {k: v for k, v in records[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return {**metrics, "records": json.dumps(records, allow_nan=True)}

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        by_resources: dict[tuple[int, int], list[Job]] = {}
        for job in jobs:
            device = job[0].device_config
            gpus = device.processes if device.accelerator == "cuda" else 0
            by_resources.setdefault((device.processes, gpus), []).append(job)
        for (cpus, gpus), group in by_resources.items():
            trials = [[s.to_dict() for s in job] for job in group]
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus}),
                param_space={"job": tune.grid_search(trials), "log_dir": str(log_dir)},
                run_config=tune.RunConfig(storage_path=str(log_dir.resolve() / "ray"), name="grid", verbose=0),
            )
            for result in tuner.fit():
                job = tuple(RunSpec.from_dict(s) for s in result.config["job"])
                metrics = result.metrics or {}
                if "unstackable" in metrics:
                    _unstackable(on_unstackable, job, metrics["unstackable"])
                elif result.error is not None or "records" not in metrics:
                    on_result(job, [spec.failed(f"Ray trial failed: {result.error}") for spec in job])
                else:
                    on_result(job, json.loads(metrics["records"]))
    finally:
        if started_here:
            ray.shutdown()
