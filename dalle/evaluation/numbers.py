"""How reports write a number: the one formatting rule that the general report and each dataset's parts share."""

from __future__ import annotations


def fmt(v: float | int | str | None, digits: int = 3) -> str:
    """A float with `digits` decimals, None as "-", anything else as str."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)
