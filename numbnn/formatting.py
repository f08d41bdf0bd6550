"""Numbers as numbnn prints them in tables (summary, reports, results tables)."""


def count(value) -> str:
    """3 significant digits with an SI suffix: 1234567 -> '1.23M'; 0 -> '0'; small ints as they are."""
    if not value:
        return "0"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def byte_size(value: int) -> str:
    """Bytes in binary units: 181248 -> '177 KiB'."""
    for scale, suffix in ((2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value} B"
