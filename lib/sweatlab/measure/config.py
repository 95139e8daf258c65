"""Course-wide switches read from the environment."""

from __future__ import annotations

import os


def quick() -> bool:
    """True in quick mode (``SWEAT_QUICK=1``, set by the tests and CI): labs shrink problem sizes."""
    return os.environ.get("SWEAT_QUICK", "").strip().lower() in ("1", "true", "yes")


def pick(quick_value, full_value):
    """``quick_value`` in quick mode, else ``full_value``: ``n = pick(128, 512)``."""
    return quick_value if quick() else full_value
