"""The checkpoint format of our schedulers' state, and the one reader of its older formats.

A :class:`~lightning_lrsched.schedules.GroupScheduledLR` state (format 2) holds::

    format      2
    last_epoch  the scheduler's time
    peaks       each param group's peak (lowered by plateau reductions)
    floors      each param group's floor (lowered with it)
    lanes       each lane's settings: {"schedule": spec, "groups": [...], "param": ... (when not "lr")}
    plateau     each lane's plateau judge state (None for time-driven lanes)
    run         the run it was resolved against: {"total_steps", "steps_per_epoch"} (information, not a setting)

Round one's states (no ``format``) kept peaks and floors relative to a global ``scale`` and the
specs as ``schedules`` (or ``schedule`` for one lane); :func:`upgrade` reads them, and it is the
only place that knows they exist: a resume check reads a state's specs through :func:`saved_specs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lightning_lrsched.errors import InvalidValue

FORMAT = 2
# Keys one of our states has under any format; a state without them is another scheduler's.
_SPEC_KEYS = {"lanes", "schedules", "schedule"}


def lane_settings(specs: Sequence[dict[str, Any]], groups: Sequence[Sequence[int]], param: str) -> list[dict[str, Any]]:
    """Each lane's settings as saved: what a state must have been saved with to resume exactly.

    Example:
        >>> lane_settings([{"name": "cosine"}], [(0, 1)], "lr")
        [{'schedule': {'name': 'cosine'}, 'groups': [0, 1]}]
    """
    settings = [{"schedule": spec, "groups": list(g)} for spec, g in zip(specs, groups, strict=True)]
    if param != "lr":
        for lane in settings:
            lane["param"] = param
    return settings


def is_ours(state: Any) -> bool:
    """Whether ``state`` is one of our schedulers' states, in any format."""
    return isinstance(state, Mapping) and "last_epoch" in state and bool(_SPEC_KEYS & set(state))


def saved_specs(state: Mapping[str, Any]) -> list[Any] | None:
    """The schedule specs a state was saved with, one per lane, in any format (``None``: not ours).

    Example:
        >>> saved_specs({"last_epoch": 3, "schedule": {"name": "cosine"}, "peaks": [1.0], "floors": [0.0]})
        [{'name': 'cosine'}]
    """
    if not is_ours(state):
        return None
    if "lanes" in state:
        return [lane["schedule"] for lane in state["lanes"]]
    return list(state["schedules"]) if "schedules" in state else [state["schedule"]]


def saved_run(state: Mapping[str, Any]) -> dict[str, int | None] | None:
    """The run a state was resolved against: ``build``'s ``total_steps`` and ``steps_per_epoch``.

    ``None`` when the state does not say (round one's states, a scheduler made without ``build``).

    Example:
        >>> saved_run({"format": 2, "run": {"total_steps": 30, "steps_per_epoch": 10}})
        {'total_steps': 30, 'steps_per_epoch': 10}
    """
    run = state.get("run")
    if not isinstance(run, Mapping):
        return None
    return {"total_steps": run.get("total_steps"), "steps_per_epoch": run.get("steps_per_epoch")}


def upgrade(state: Any, groups: Sequence[Sequence[int]], owner: str) -> dict[str, Any]:
    """``state`` in the current format, for a scheduler whose lanes drive ``groups``; a clear error if not ours.

    Args:
        state: a saved state, of any format.
        groups: the param groups of each lane of the scheduler loading it (round one saved none).
        owner: the loading scheduler's class name, for the error.
    """
    if not is_ours(state):
        keys = ", ".join(sorted(state)) if isinstance(state, Mapping) else type(state).__name__
        raise InvalidValue(
            f"this is not a lightning_lrsched scheduler state (it has {keys}): a checkpoint written with another "
            f"scheduler (e.g. torch's) cannot continue as {owner}; resume with the scheduler it "
            "was saved with, or start a new run from the weights only (no ckpt_path)"
        )
    if state.get("format") == FORMAT:
        return dict(state)
    # Round one: peaks, floors and a global scale; "schedules", or "schedule" for one lane.
    specs = saved_specs(state) or []
    judges = state.get("plateau")
    if judges is not None and not isinstance(judges, list):
        judges = [judges]
    scale = float(state.get("scale", 1.0))
    return {
        "last_epoch": state["last_epoch"],
        "peaks": [scale * float(p) for p in state["peaks"]],
        "floors": [scale * float(f) for f in state["floors"]],
        "lanes": [{"schedule": spec, "groups": list(g)} for spec, g in zip(specs, groups, strict=False)],
        "plateau": judges,
    }


def differences(saved: list[dict[str, Any]], built: list[dict[str, Any]]) -> list[str]:
    """Human-readable differences between two lists of lane settings (empty: the same settings).

    Example:
        >>> differences([{"schedule": {"name": "cosine", "T_max": 5}, "groups": [0]}],
        ...             [{"schedule": {"name": "cosine", "T_max": 9}, "groups": [0]}])
        ['`T_max` was 5, now 9']
    """
    if len(saved) != len(built):
        return [f"{len(saved)} schedule(s) in the checkpoint, {len(built)} now"]
    out = []
    for i, (old, new) in enumerate(zip(saved, built, strict=True)):
        where = f"schedule {i} " if len(built) > 1 else ""
        a, b = old["schedule"], new["schedule"]
        for key in sorted(set(a) | set(b), key=lambda k: (k != "name", k)):
            if a.get(key) != b.get(key):
                out.append(f"{where}`{key}` was {a.get(key, '(default)')!r}, now {b.get(key, '(default)')!r}")
        if old.get("param", "lr") != new.get("param", "lr"):
            out.append(f"{where}`param` was {old.get('param', 'lr')!r}, now {new.get('param', 'lr')!r}")
        if list(old.get("groups", new["groups"])) != new["groups"]:
            out.append(f"{where}param groups were {old['groups']}, now {new['groups']}")
    return out
