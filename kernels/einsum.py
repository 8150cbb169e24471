"""Einsum: one stage whose spatial axes are the output labels and whose reduce axes are the
summed labels.

``out[output labels] = sum over the other labels of  prod_k  input_k[its labels]``

The equation is parsed in full: explicit (``->``) and implicit output (the labels used
exactly once, alphabetically, after the broadcast dims), ``...`` with numpy broadcasting
across inputs (right-aligned, size-1 dims broadcast), repeated labels within one input
(diagonals: ``ii->i``, trace ``ii->``), any number of inputs.  A contraction such as
``bhqd,bhkd->bhqk`` is a sum-of-products reduction, so the default scheduler treats it like
MatMul (register tiling when an operand is contiguous along the output's last axis).
"""
from __future__ import annotations

from mlc.loop.expr import const, reduce_sum
from mlc.loop.tensor import reduce_axis
from mlc.registry import register

from .elementwise import up


class _Spec:
    """A parsed equation: per input the label of each dim, the output labels, the sizes."""

    def __init__(self, inputs: list, output: list, sizes: dict, ell_rank: int):
        self.inputs = inputs
        self.output = output
        self.sizes = sizes
        self.ell_rank = ell_rank

    @property
    def reduced(self) -> list:
        out, seen = [], set(self.output)
        for labels in self.inputs:
            for lb in labels:
                if lb not in seen:
                    seen.add(lb)
                    out.append(lb)
        return out


def _split_term(term: str, what: str) -> tuple:
    """(letters before '...', has ellipsis, letters after)."""
    if term.count("...") > 1 or term.replace("...", "").count(".") > 0:
        raise ValueError(f"{what} {term!r}: '...' may appear once")
    if "..." in term:
        pre, post = term.split("...")
    else:
        pre, post = term, ""
    for c in pre + post:
        if not c.isalpha():
            raise ValueError(f"{what} {term!r}: bad label {c!r}")
    return pre, "..." in term, post


def parse_equation(equation: str, shapes: list) -> _Spec:
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->", 1)
        if "->" in rhs:
            raise ValueError("more than one '->'")
    else:
        lhs, rhs = eq, None
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"{len(terms)} input terms for {len(shapes)} inputs")
    split = [_split_term(t, "input term") for t in terms]
    ell_ranks = []
    for (pre, ell, post), shape, t in zip(split, shapes, terms):
        n = len(pre) + len(post)
        if ell:
            if n > len(shape):
                raise ValueError(f"term {t!r} has more labels than the rank {len(shape)}")
            ell_ranks.append(len(shape) - n)
        else:
            if n != len(shape):
                raise ValueError(f"term {t!r} labels {n} dims of a rank-{len(shape)} input")
            ell_ranks.append(0)
    E = max(ell_ranks) if ell_ranks else 0
    ell_labels = [f"_e{k}" for k in range(E)]
    inputs = []
    for (pre, ell, post), e in zip(split, ell_ranks):
        inputs.append(list(pre) + ell_labels[E - e:] + list(post))

    sizes: dict = {}
    for labels, shape in zip(inputs, shapes):
        for lb, d in zip(labels, shape):
            d = int(d)
            old = sizes.get(lb)
            if old is None or old == 1:
                sizes[lb] = d
            elif d != 1 and d != old:
                raise ValueError(f"label {lb.lstrip('_')!r} has sizes {old} and {d}")

    if rhs is None:
        counts: dict = {}
        for labels in inputs:
            for lb in labels:
                counts[lb] = counts.get(lb, 0) + 1
        letters = sorted(lb for lb, c in counts.items() if c == 1 and not lb.startswith("_"))
        output = ell_labels + letters
    else:
        pre, ell, post = _split_term(rhs, "output term")
        output = list(pre) + (ell_labels if ell else []) + list(post)
        known = {lb for labels in inputs for lb in labels}
        for lb in output:
            if lb not in known:
                raise ValueError(f"output label {lb!r} does not appear in the inputs")
        if len(set(output)) != len(output):
            raise ValueError(f"output term {rhs!r} repeats a label")
    return _Spec(inputs, output, sizes, E)


@register("Einsum", pattern="anchor")
def einsum(ctx):
    equation = ctx.attr("equation")
    if not isinstance(equation, str):
        raise ctx.unsupported("missing equation attribute")
    n = len(ctx.inputs)
    ins = [ctx.input(i) for i in range(n)]
    shapes = [tuple(t.shape) for t in ins]
    try:
        spec = parse_equation(equation, shapes)
    except ValueError as e:
        raise ctx.unsupported(f"equation {equation!r}: {e}") from None
    dt = ctx.out_dtype(0)
    if dt == "bool":
        raise ctx.unsupported("Einsum of bool tensors")
    out_shape = tuple(spec.sizes[lb] for lb in spec.output)
    if out_shape != ctx.out_shape(0):
        raise ctx.unsupported(f"equation {equation!r} gives shape {list(out_shape)}, "
                              f"shape inference says {list(ctx.out_shape(0))}")

    # reduce axes ordered so that the innermost one is the innermost summed dim of the
    # first input that has one (contiguous reads for a dot-product style reduction)
    reduced = spec.reduced
    order = {}
    for labels in reversed(spec.inputs):
        for pos, lb in enumerate(labels):
            order[lb] = pos
    reduced.sort(key=lambda lb: order.get(lb, 0))
    raxes = {lb: reduce_axis(spec.sizes[lb], _axis_name("r", lb)) for lb in reduced}

    def f(*idx):
        env = dict(zip(spec.output, idx))
        env.update({lb: ax.var for lb, ax in raxes.items()})
        prod = None
        for t, labels in zip(ins, spec.inputs):
            index = tuple(const(0, "int64") if d == 1 and spec.sizes[lb] != 1 else env[lb]
                          for lb, d in zip(labels, t.shape))
            v = up(t[index] if index else t[()])
            prod = v if prod is None else prod * v
        if raxes:
            return reduce_sum(prod, list(raxes.values()))
        return prod

    names = [_axis_name("", lb) for lb in spec.output]
    return [ctx.compute(out_shape, f, "einsum", dtype=dt, axis_names=names)]


def _axis_name(prefix: str, label: str) -> str:
    if label.startswith("_e"):
        return f"{prefix}e{label[2:]}"
    # upper- and lower-case labels are different axes; keep names distinct and readable
    return f"{prefix}{label}" if label.islower() else f"{prefix}{label.lower()}_"
