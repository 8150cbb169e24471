"""A kernel: the stages of one fused group, its input and output buffers, and its identity.

``Kernel.normalize`` prepares a freshly built stage DAG for scheduling:

* injective stages (no reduction) are substituted into their consumers, unless they are
  kernel outputs or marked ``materialize`` (a padded copy of a convolution input is
  cheaper to build once than to recompute with bounds checks inside the hot loop);
* an injective stage that reads a reduction exactly at its own indices becomes that
  reduction's epilogue, so bias, activation or residual add are applied while the
  accumulator is still in registers.

``Kernel.key()`` is a hash of the normalized structure (ops, shapes, dtypes, constants in
expressions), never of tensor names: identical fused groups share one key and one tuning
result.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .expr import Buffer, Load, loads_of, substitute, transform
from .tensor import ExternStage, Stage


@dataclass(eq=False)
class Kernel:
    name: str
    inputs: tuple                       # tuple[Buffer]: run-time inputs and constants
    outputs: tuple                      # tuple[Buffer]
    stages: list                        # Stage | ExternStage, in dependency order
    constant: frozenset = frozenset()   # the inputs whose data is known at compile time
    materialize: frozenset = frozenset()  # stage names that must not be inlined by default

    def const_inputs(self) -> list[Buffer]:
        return [b for b in self.inputs if b in self.constant]

    def stage(self, name: str):
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def producer_of(self, buffer: Buffer):
        for s in self.stages:
            if isinstance(s, Stage) and s.buffer is buffer:
                return s
            if isinstance(s, ExternStage) and buffer in s.outputs:
                return s
        return None

    def consumers_of(self, buffer: Buffer) -> list:
        return [s for s in self.stages if buffer in s.reads()]

    def reduction_stages(self) -> list[Stage]:
        return [s for s in self.stages if isinstance(s, Stage) and s.is_reduction]

    # ------------------------------------------------------------------------------------
    def normalize(self) -> "Kernel":
        """Inline injective stages and merge elementwise epilogues (see module doc)."""
        stages = list(self.stages)
        materialize = set(self.materialize)
        changed = True
        while changed:
            changed = False
            for s in list(stages):
                if not isinstance(s, Stage) or s.is_reduction or s.buffer in self.outputs \
                        or s.name in materialize:
                    continue
                users = [u for u in stages if s.buffer in u.reads()]
                if any(isinstance(u, ExternStage) for u in users):
                    continue
                if any(inline_breaks_vector_access(s, u) for u in users):
                    materialize.add(s.name)     # cheaper to compute once than per use
                    continue
                stages = [inline_into(u, s) if u in users else u for u in stages if u is not s]
                changed = True
                break
            if changed:
                continue
            for r in list(stages):
                if not isinstance(r, Stage) or not r.is_reduction or r.buffer in self.outputs:
                    continue
                users = [u for u in stages if r.buffer in u.reads()]
                if len(users) != 1:
                    continue
                e = users[0]
                merged = merge_epilogue(r, e)
                if merged is None:
                    continue
                stages = [merged if u is e else u for u in stages if u is not r]
                changed = True
                break
        return Kernel(self.name, self.inputs, self.outputs, stages, self.constant, frozenset(materialize))

    # ------------------------------------------------------------------------------------
    def describe(self) -> str:
        lines = [f"kernel {self.name}("]
        for b in self.inputs:
            lines.append(f"    {b.name}: {b.dtype}{list(b.shape)}{' const' if b in self.constant else ''}")
        lines.append(f") -> {', '.join(f'{b.name}: {b.dtype}{list(b.shape)}' for b in self.outputs)}")
        for s in self.stages:
            lines.append(f"  {s}")
        return "\n".join(lines)

    def key(self) -> str:
        """Structural hash of the kernel (see module doc)."""
        return hashlib.sha1(self.canonical_text().encode()).hexdigest()[:16]

    def canonical_text(self) -> str:
        parts = []
        for i, b in enumerate(self.inputs):
            parts.append(f"in{i}:{b.dtype}{list(b.shape)}{'c' if b in self.constant else ''}")
        for s in self.stages:
            parts.append(str(s))
        parts.append("out:" + ",".join(f"{b.name}:{b.dtype}{list(b.shape)}" for b in self.outputs))
        return "\n".join(parts)

    def flops(self) -> int:
        """Arithmetic operations per run (a multiply-add counts 2), for reports and the tuner."""
        from .expr import Binary, Call, is_float, walk
        total = 0
        for s in self.stages:
            if not isinstance(s, Stage):
                continue
            points = s.buffer.size
            red = 1
            for a in s.reduce_axes:
                red *= a.extent
            # arithmetic on values only: index and bounds arithmetic (integers, bools) is not work
            def ops(e):
                # dot4_u8s8: four multiplies and four adds (one VNNI instruction)
                return sum(8 if isinstance(x, Call) and x.fn == "dot4_u8s8" else 1 for x in walk(e)
                           if isinstance(x, (Binary, Call)) and (is_float(x.dtype) or
                                                                 isinstance(x, Call) and x.fn == "dot4_u8s8"))
            body_ops = ops(s.body)
            epi_ops = ops(s.epilogue) if s.epilogue is not None else 0
            total += points * (red * (body_ops + (1 if s.is_reduction else 0)) + epi_ops)
        return total


_EXPENSIVE = frozenset({"exp", "log", "erf", "tanh", "sigmoid", "softplus", "pow", "sin", "cos", "tan",
                        "expm1", "log1p", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh"})


def inline_breaks_vector_access(producer: Stage, user) -> bool:
    """Would inlining ``producer`` turn ``user``'s contiguous vector operand into a gather?

    A reduction's innermost output axis is where its schedule vectorises (a matmul's
    columns): an operand read contiguously along it through a transposing producer would
    be gathered element by element if the transpose were inlined -- materialising the
    transposed copy once is cheaper (a K^T in attention)."""
    from .expr import Call, coefficient, flat_offset, walk
    if not isinstance(user, Stage) or not user.is_reduction or not user.axes:
        return False
    value = producer.full_expr()
    # transcendentals inside a reduction's operand run once per use, as scalars when the
    # operand is broadcast: computing them once, vectorised, is far cheaper
    if any(isinstance(x, Call) and x.fn in _EXPENSIVE for x in walk(value)):
        return True
    v = user.axes[-1].var
    pvars = [a.var for a in producer.axes]
    for ld in loads_of(user.body, producer.buffer):
        if coefficient(flat_offset(ld.buffer, ld.indices), v) != 1:
            continue
        inlined = substitute(value, dict(zip(pvars, ld.indices)))
        for src in loads_of(inlined):
            if coefficient(flat_offset(src.buffer, src.indices), v) not in (0, 1):
                return True
    return False


def inline_into(consumer, producer: Stage):
    """``consumer`` with every load of ``producer``'s buffer replaced by its expression."""
    value = producer.full_expr()
    pvars = [a.var for a in producer.axes]

    def rewrite(x):
        if isinstance(x, Load) and x.buffer is producer.buffer:
            return substitute(value, dict(zip(pvars, x.indices)))
        return None

    body = transform(consumer.body, rewrite)
    epi = transform(consumer.epilogue, rewrite) if consumer.epilogue is not None else None
    return Stage(consumer.buffer, consumer.axes, body, consumer.reduce_axes, consumer.combiner,
                 consumer.acc, epi, consumer.tag)


def merge_epilogue(red: Stage, user) -> Stage | None:
    """Fold an injective ``user`` that reads ``red`` at its own indices into red's epilogue."""
    if not isinstance(user, Stage) or user.is_reduction or user.shape != red.shape:
        return None
    uvars = tuple(a.var for a in user.axes)
    lds = [ld for ld in loads_of(user.full_expr(), red.buffer)]
    if not lds or any(tuple(ld.indices) != uvars for ld in lds):
        return None
    rvars = [a.var for a in red.axes]
    to_red = dict(zip(uvars, rvars))
    acc_value = red.output_value(red.acc)

    def rewrite(x):
        if isinstance(x, Load) and x.buffer is red.buffer:
            return acc_value
        return None

    user_expr = transform(user.full_expr(), rewrite)
    epilogue = substitute(user_expr, to_red)
    return Stage(user.buffer, red.axes, red.body, red.reduce_axes, red.combiner, red.acc, epilogue,
                 red.tag + "+" + user.tag if user.tag else red.tag)
