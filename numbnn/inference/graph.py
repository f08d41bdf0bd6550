"""The packed model's program: nodes over numbered values, checked and runnable.

A :class:`Graph` is a list of :class:`Node` in execution order; node i reads values by number and
writes one new value. Value ``graph.input`` is the normalised float32 NHWC image batch, value
``graph.output`` the logits. The compiler (:mod:`numbnn.inference.compile`) builds and rewrites graphs;
:meth:`Graph.check` validates one completely (every op's attributes and constants, every value defined
before use, every shape) before anything runs, which is what makes loading a hostile file safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from numbnn.inference import trees as _trees  # noqa: F401  (registers the trees op)
from numbnn.inference.ops import GraphError, Op, Spec, build_op


@dataclass
class Node:
    op: str
    inputs: list[int]
    output: int
    attrs: dict = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Graph:
    nodes: list[Node]
    input: int
    output: int
    input_spec: Spec  # per-image shape and dtype of the input (float32 [H, W, C])

    def new_value(self) -> int:
        used = [self.input] + [node.output for node in self.nodes]
        return max(used) + 1

    def producers(self) -> dict[int, Node]:
        return {node.output: node for node in self.nodes}

    def use_count(self, value: int) -> int:
        """Readers of ``value`` (the graph output counts as one)."""
        return sum(node.inputs.count(value) for node in self.nodes) + (value == self.output)

    def replace_uses(self, old: int, new: int) -> None:
        for node in self.nodes:
            node.inputs = [new if v == old else v for v in node.inputs]
        if self.output == old:
            self.output = new

    def prune(self) -> None:
        """Drop nodes whose value nobody reads."""
        needed = {self.output}
        kept = []
        for node in reversed(self.nodes):
            if node.output in needed:
                kept.append(node)
                needed.update(node.inputs)
        self.nodes = kept[::-1]

    def check(self) -> tuple[list[Op], dict[int, Spec]]:
        """Build every op and infer every value's spec; GraphError on the first problem."""
        specs = {self.input: self.input_spec}
        ops = []
        for index, node in enumerate(self.nodes):
            where = f"node {index} ({node.op})"
            if node.output in specs:
                raise GraphError(f"{where}: value {node.output} is written twice")
            missing = [v for v in node.inputs if v not in specs]
            if missing:
                raise GraphError(f"{where}: reads value {missing[0]} before it is computed")
            try:
                op = build_op(node.op, node.attrs, node.consts)
                if op.arity is not None and len(node.inputs) != op.arity:
                    raise GraphError(f"takes {op.arity} input(s), got {len(node.inputs)}")
                specs[node.output] = op.output_spec([specs[v] for v in node.inputs])
            except GraphError as error:
                raise GraphError(f"{where}: {error}") from None
            ops.append(op)
        if self.output not in specs:
            raise GraphError(f"output value {self.output} is never computed")
        return ops, specs


class Program:
    """A checked graph ready to run: ops in order, and when each value can be freed."""

    def __init__(self, graph: Graph):
        self.ops, self.specs = graph.check()
        self.graph = graph
        self.steps = []
        last_use = {}
        for index, node in enumerate(graph.nodes):
            for value in node.inputs:
                last_use[value] = index
        for index, (node, op) in enumerate(zip(graph.nodes, self.ops)):
            free = [v for v in set(node.inputs) if last_use[v] == index and v != graph.output]
            self.steps.append((op, node.inputs, node.output, free))

    def run(self, x: np.ndarray) -> np.ndarray:
        values = {self.graph.input: x}
        for op, inputs, output, free in self.steps:
            values[output] = op(*[values[v] for v in inputs])
            for value in free:
                del values[value]
        return values[self.graph.output]
