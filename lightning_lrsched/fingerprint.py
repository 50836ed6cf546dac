"""`fingerprint`: the one short digest of a JSON-like value (a schedule's spec, a grid entry, a run's settings)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def fingerprint(value: Any) -> str:
    """16 hex digits of SHA-256 over ``value`` as canonical JSON: equal values, equal fingerprints.

    Keys are sorted, so dict order does not matter; values JSON does not know are written with
    ``str``. Results files and schedules store these, so the encoding must not change.

    Example:
        >>> fingerprint({"name": "cosine", "interval": "epoch"}) == fingerprint({"interval": "epoch", "name": "cosine"})
        True
        >>> len(fingerprint([1, 2])), fingerprint([1, 2]) == fingerprint([2, 1])
        (16, False)
    """
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
