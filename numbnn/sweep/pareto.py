"""The Pareto front of an accuracy-vs-cost trade-off: the runs no other run beats on both axes.

Run j dominates run i when it costs no more and is at least as accurate, and is strictly better on one
of the two: ``cost_j <= cost_i and acc_j >= acc_i and (cost_j < cost_i or acc_j > acc_i)``. The front is
every run that no run dominates (PokeBNN's accuracy-vs-ACE curves plot exactly this set). Two identical
points do not dominate each other, so both stay on the front.
"""

from collections.abc import Sequence


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether (cost, accuracy) point ``a`` dominates ``b``."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (cost, accuracy) points, by increasing cost (then decreasing accuracy).

    Quadratic in the number of points, which is the number of runs of a sweep: obviously correct beats
    clever here.
    """
    front = [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))
