"""The packed model's program: nodes over numbered values, checked and runnable.

A :class:`Graph` is a list of :class:`Node` in execution order; node i reads values by number and
writes one new value (``output``), or several when its op computes more than one in the same pass
(``extra_outputs``: a fused conv that writes its float activations and their packed signs). Value
``graph.input`` is the normalised float32 NHWC image batch, value ``graph.output`` the logits. The compiler (:mod:`numbnn.inference.compile`) builds and rewrites graphs;
:meth:`Graph.check` validates one completely (every op's attributes and constants, every value defined
before use, every shape) before anything runs, which is what makes loading a hostile file safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math
import time

import numpy as np

from numbnn.inference import trees as _trees  # noqa: F401  (registers the trees op)
from numbnn.inference.ops import GraphError, Op, Spec, build_op

# Elements one image may hold in any value of the graph: far above any model numbnn builds (the largest
# activation of the default models is ~25k per image), far below what would exhaust memory at predict.
MAX_VALUE_ELEMENTS = 1 << 24


@dataclass
class Node:
    op: str
    inputs: list[int]
    output: int
    attrs: dict = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    extra_outputs: list[int] = field(default_factory=list)

    @property
    def outputs(self) -> list[int]:
        return [self.output, *self.extra_outputs]


@dataclass
class Graph:
    nodes: list[Node]
    input: int
    output: int
    input_spec: Spec  # per-image shape and dtype of the input (float32 [H, W, C])

    def new_value(self) -> int:
        used = [self.input] + [v for node in self.nodes for v in node.outputs]
        return max(used) + 1

    def producers(self) -> dict[int, Node]:
        return {v: node for node in self.nodes for v in node.outputs}

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
            if needed.intersection(node.outputs):
                kept.append(node)
                needed.update(node.inputs)
        self.nodes = kept[::-1]

    def value_specs(self) -> dict[int, Spec]:
        """Every value's spec, as :meth:`check` infers it (the fusion passes read shapes and dtypes)."""
        return self.check()[1]

    def check(self) -> tuple[list[Op], dict[int, Spec]]:
        """Build every op and infer every value's spec; GraphError on the first problem."""
        specs = {self.input: self.input_spec}
        ops = []
        for index, node in enumerate(self.nodes):
            where = f"node {index} ({node.op})"
            outputs = node.outputs
            if len(set(outputs)) != len(outputs) or any(v in specs for v in outputs):
                raise GraphError(f"{where}: a value among {outputs} is written twice")
            missing = [v for v in node.inputs if v not in specs]
            if missing:
                raise GraphError(f"{where}: reads value {missing[0]} before it is computed")
            try:
                op = build_op(node.op, node.attrs, node.consts)
                if op.arity is not None and len(node.inputs) != op.arity:
                    raise GraphError(f"takes {op.arity} input(s), got {len(node.inputs)}")
                out_specs = op.output_specs([specs[v] for v in node.inputs])
                if len(out_specs) != len(outputs):
                    raise GraphError(f"writes {len(out_specs)} value(s), the node names {len(outputs)}")
                for spec in out_specs:
                    if math.prod(spec.shape) > MAX_VALUE_ELEMENTS:
                        raise GraphError(f"a value of shape {spec.shape} per image exceeds {MAX_VALUE_ELEMENTS:,} "
                                         "elements (no model numbnn exports comes near; e.g. an absurd padding)")
                specs.update(zip(outputs, out_specs))
            except GraphError as error:
                raise GraphError(f"{where}: {error}") from None
            ops.append(op)
        if self.output not in specs:
            raise GraphError(f"output value {self.output} is never computed")
        return ops, specs


IN_PLACE_MIN_BYTES = 1 << 16


class Program:
    """A checked graph ready to run: ops in order, and when each value can be freed (a value nobody
    reads, such as an unused second output, right after it is written; each op is told which of its
    outputs nobody reads, :meth:`Op.drop_outputs`, and may skip them).

    An op that can write its output over its first input (``Op.writes_in_place``: per-element steps)
    does so when that input is read by no later node, is not the graph's input and has the output's
    spec: a fresh output array of a large map costs its page faults (bnn-small's 28x28x32 maps at batch
    256 are 26 MB each), the array being overwritten is already in memory. Arrays under
    ``IN_PLACE_MIN_BYTES`` get a fresh output without the run-time aliasing check: a small block comes
    from malloc's free lists, and at batch 1 the check cost more than the copy it saves.

    ``bytes_per_image``: the most one node reads and writes per image (its inputs and the outputs it writes),
    from which :mod:`numbnn.inference.runs` derives a cache-sized run."""

    def __init__(self, graph: Graph):
        self.ops, self.specs = graph.check()
        self.graph = graph
        self.steps = []
        last_use = {}
        for index, node in enumerate(graph.nodes):
            for value in node.inputs:
                last_use[value] = index
        self.bytes_per_image = 0
        for index, (node, op) in enumerate(zip(graph.nodes, self.ops)):
            free = [v for v in set(node.inputs) | set(node.outputs)
                    if last_use.get(v, index) == index and v != graph.output]
            first = node.inputs[0] if node.inputs else None
            in_place = (op.writes_in_place and first in free and first != graph.input and first not in node.inputs[1:]
                        and len(node.outputs) == 1 and self.specs[first] == self.specs[node.outputs[0]])
            op.drop_outputs({i for i, v in enumerate(node.outputs) if v not in last_use and v != graph.output})
            self.steps.append((op, node.inputs, node.outputs, free, in_place))
            written = {v for v in node.outputs if v in last_use or v == graph.output}
            self.bytes_per_image = max(self.bytes_per_image, sum(self._bytes(v) for v in set(node.inputs) | written))

    def _bytes(self, value) -> int:
        """Bytes of ``value`` per image."""
        spec = self.specs[value]
        return math.prod(spec.shape) * np.dtype(spec.dtype).itemsize

    def run(self, x: np.ndarray, node_seconds: list | None = None) -> np.ndarray:
        """The graph's output for ``x``; with ``node_seconds``, each node's wall time is appended to it, in
        graph order."""
        values = {self.graph.input: x}
        for op, inputs, outputs, free, in_place in self.steps:
            started = time.perf_counter() if node_seconds is not None else 0.0
            arguments = [values[v] for v in inputs]
            if in_place and arguments[0].nbytes >= IN_PLACE_MIN_BYTES and _writable_alone(arguments[0], values, inputs[0]):
                result = op(*arguments, out=arguments[0])
            else:
                result = op(*arguments)
            if node_seconds is not None:
                node_seconds.append(time.perf_counter() - started)
            if len(outputs) == 1:
                values[outputs[0]] = result
            else:
                values.update(zip(outputs, result))
            for value in free:
                del values[value]
        return values[self.graph.output]


def _writable_alone(array: np.ndarray, values: dict, name) -> bool:
    """True if ``array`` is a C-contiguous float32 array that shares no memory with another live value
    (a reshape returns a view of its input, which may still be read). Arrays over memory numpy
    allocated overlap only if they are views of the same allocation, which is an identity test
    (np.may_share_memory on every live value cost microseconds per node at batch 1)."""
    if not (array.dtype == np.float32 and array.flags.c_contiguous and array.flags.writeable):
        return False
    root = _allocation(array)
    if root.base is not None:  # memory from outside numpy's allocator: compare address ranges
        return not any(np.may_share_memory(array, other) for key, other in values.items() if key != name)
    return not any(_allocation(other) is root for key, other in values.items() if key != name)


def _allocation(array: np.ndarray) -> np.ndarray:
    """The array at the end of ``array``'s chain of views."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array
