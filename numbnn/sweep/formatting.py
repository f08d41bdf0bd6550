"""Numbers as the report prints them."""


def human(value: float) -> str:
    """3 significant digits with an SI suffix: 1234567 -> '1.23M'."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"
