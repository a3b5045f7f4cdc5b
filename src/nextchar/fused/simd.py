"""A few lanes of a row as one LLVM vector, for the products of the compiled trainer (``lanes.py``).

LLVM's loop vectorizer takes only the innermost loop, so in a product written with the 32 lanes innermost
every multiply-add loads and stores its accumulator (the sum runs over the loop outside), and each 32-long
run pays a loop's setup. A :class:`Vec` is ``WIDTH_BYTES`` of a row (8 float32 or 4 float64 lanes) held in
one register: a product can keep its accumulators in registers across the sum (``lanes.py``'s tiles).

Each operation is one LLVM instruction on every lane at once (``fadd``, ``fmul``, no fast-math flags: no
contraction into fma, no reassociation), so every lane computes exactly what the scalar code computes.

    v = load(a, r, c)       # a[r, c : c + n] as a Vec (a 2-D, its rows contiguous)
    store(a, r, c, v)       # back
    u = v + x * y           # lane by lane
    n = vector_width(a)     # lanes per Vec for a's dtype, a compile-time constant
"""
from __future__ import annotations

import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

__all__ = ["WIDTH_BYTES", "Vec", "load", "store", "vector_width"]

WIDTH_BYTES = 32
"""One AVX2 register (the brief's machine: AVX2 and FMA, no AVX-512)."""


class Vec(types.Type):
    """``lanes`` consecutive elements of ``dtype`` as one LLVM vector value."""

    def __init__(self, dtype: types.Type, lanes: int):
        self.dtype, self.lanes = dtype, lanes
        super().__init__(name=f"Vec({dtype} x {lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _vec_of(array_type) -> Vec:
    return Vec(array_type.dtype, WIDTH_BYTES // (array_type.dtype.bitwidth // 8))


def _vector_pointer(context, builder, array_type, array, row, column, vec_type):
    """A pointer to array[row, column] typed as a pointer to a whole Vec (strides honoured: slices work)."""
    view = context.make_array(array_type)(context, builder, array)
    pointer = cgutils.get_item_pointer(context, builder, array_type, view, [row, column])
    return builder.bitcast(pointer, context.get_value_type(vec_type).as_pointer())


def _is_float_matrix(a) -> bool:
    return isinstance(a, types.Array) and a.ndim == 2 and isinstance(a.dtype, types.Float)


@intrinsic
def load(typingctx, a, r, c):
    """a[r, c : c + lanes] as one Vec (an unaligned load: any column)."""
    if not _is_float_matrix(a):
        return None
    vec_type = _vec_of(a)

    def codegen(context, builder, sig, args):
        pointer = _vector_pointer(context, builder, sig.args[0], args[0], args[1], args[2], vec_type)
        return builder.load(pointer, align=a.dtype.bitwidth // 8)

    return vec_type(a, r, c), codegen


@intrinsic
def store(typingctx, a, r, c, v):
    """a[r, c : c + lanes] = v."""
    if not (_is_float_matrix(a) and v == _vec_of(a)):
        return None

    def codegen(context, builder, sig, args):
        pointer = _vector_pointer(context, builder, sig.args[0], args[0], args[1], args[2], sig.args[3])
        builder.store(args[3], pointer, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(a, r, c, v), codegen


@intrinsic
def vector_width(typingctx, a):
    """Lanes per Vec of a's dtype (8 float32, 4 float64): a constant LLVM folds into the loops."""
    if not _is_float_matrix(a):
        return None
    lanes = _vec_of(a).lanes

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, lanes)

    return types.intp(a), codegen


def _lane_op(instruction: str):
    @intrinsic
    def lane_op(typingctx, x, y):
        if not (isinstance(x, Vec) and x == y):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, instruction)(args[0], args[1])

        return x(x, y), codegen

    return lane_op


def _register(python_op, instruction: str) -> None:
    lane_op = _lane_op(instruction)

    @overload(python_op)
    def _vec_op(x, y):
        if isinstance(x, Vec) and x == y:
            return lambda x, y: lane_op(x, y)


_register(operator.add, "fadd")
_register(operator.sub, "fsub")
_register(operator.mul, "fmul")
