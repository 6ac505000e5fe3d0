"""Number formatting shared by the views."""


def human(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def pct(new: float, old: float) -> str:
    """The change from ``old`` to ``new`` in percent, signed, with a true minus sign."""
    if not old:
        return "—"
    v = (new / old - 1) * 100
    return f"{v:+.1f}%".replace("-", "−")
