"""Launch helpers shared by the Pallas kernels of ``jax_impl.kernels``.

Every kernel runs through :func:`pallas_call` here, which picks interpret mode on a
machine without a GPU (``interpret=True``: the kernel body becomes a ``jax.jit`` scan over
the grid on the CPU) and the Pallas Triton backend on a GPU. The mode is a static
argument of every jitted kernel wrapper, so a trace made for one mode is never reused for
the other; :func:`gpu_lowering` forces the GPU path on a CPU so that tests can lower the
kernels with ``.lower(lowering_platforms=("cuda",))`` (no GPU needed).

Conventions that keep both modes exact:

- Every array a kernel builds has a power-of-two size (the Triton lowering requires it):
  blocks are powers of two and matrix-product operands are padded to at least 16 along
  each axis (Triton's ``tl.dot`` minimum; fp64 needs M, K >= 16).
- No read or write leaves its block: interpret mode clamps an out-of-range index
  silently and the GPU would read a neighbour's data. Kernels gather through index
  arrays that they clamp themselves and then mask the lanes that were clamped.
- No atomics: interpret mode loses duplicate-index contributions within one call.
  Reductions across programs go through per-program partial outputs summed by XLA, or
  are written in gather form (each output element computed by exactly one program).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

#: Triton's matrix-product minimum along each axis (fp32 and fp64).
DOT_MIN = 16

_force_gpu = False


def interpret_mode() -> bool:
    """True where kernels must run interpreted: any backend but a GPU, unless
    :func:`gpu_lowering` is active."""
    return not _force_gpu and jax.default_backend() != "gpu"


@contextlib.contextmanager
def gpu_lowering():
    """Trace kernels for the Pallas Triton GPU backend even on a CPU (for lowering checks:
    such a trace can be lowered with ``lowering_platforms=("cuda",)`` but not run here)."""
    global _force_gpu
    previous, _force_gpu = _force_gpu, True
    try:
        yield
    finally:
        _force_gpu = previous


def pow2(n: int, minimum: int = 1) -> int:
    """The smallest power of two >= max(n, minimum)."""
    n = max(int(n), minimum, 1)
    return 1 << (n - 1).bit_length()


def blocks(size: int, block: int) -> int:
    """Number of blocks of ``block`` covering ``size`` (at least one)."""
    return max(1, -(-size // block))


#: At most this many programs share one weight gradient block (partial sums, then added).
WEIGHT_SPLITS = 8


@dataclass(frozen=True)
class BlockPlan:
    """The blocks of a tiled convolution: ``n`` samples, ``c`` input and ``o`` output
    channels, ``taps`` kernel taps, ``positions`` output positions (``cells`` input cells,
    for the input gradient), in blocks of ``block_p`` positions or cells, ``block_o`` output
    and ``block_c`` input channels; ``*_pad`` is a size rounded up to whole blocks."""

    n: int
    c: int
    o: int
    taps: int
    positions: int
    cells: int
    block_p: int
    block_o: int
    block_c: int

    @property
    def n_pb(self):
        return blocks(self.positions, self.block_p)

    @property
    def n_qb(self):
        return blocks(self.cells, self.block_p)

    @property
    def n_ob(self):
        return blocks(self.o, self.block_o)

    @property
    def n_cb(self):
        return blocks(self.c, self.block_c)

    @property
    def o_pad(self):
        return self.n_ob * self.block_o

    @property
    def c_pad(self):
        return self.n_cb * self.block_c

    @property
    def p_pad(self):
        return self.n_pb * self.block_p

    @property
    def q_pad(self):
        return self.n_qb * self.block_p

    @property
    def splits(self):
        """Programs sharing one weight gradient block: one per sample and position block,
        at most :data:`WEIGHT_SPLITS`."""
        return min(WEIGHT_SPLITS, self.n * self.n_pb)


def pallas_call(kernel, *, grid, in_specs, out_specs, out_shape, interpret, name,
                num_warps=4):
    """``pl.pallas_call`` in interpret mode or for the Triton GPU backend."""
    return pl.pallas_call(
        kernel,
        grid=grid,
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=out_shape,
        interpret=interpret,
        name=name,
        compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=2),
    )


def whole(shape) -> pl.BlockSpec:
    """The whole array as one block (kernels gather from it with explicit indices)."""
    shape = tuple(shape)
    return pl.BlockSpec(shape, lambda *_: (0,) * len(shape))


def dot(a, b):
    """``a @ b`` in the operands' dtype with IEEE fp32 products on the GPU: the default
    (TF32, 10-bit mantissa) misses the 1e-4 fp32 tolerance; fp64 is exact DMMA."""
    return jnp.dot(a, b, precision=lax.Precision.HIGHEST, preferred_element_type=a.dtype)


def dot_t(a, b):
    """``a @ b.T`` (contracting the last axes), same precision as :func:`dot`."""
    return lax.dot_general(a, b, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST,
                           preferred_element_type=a.dtype)


def idiv(a, b):
    """``a // b`` for non-negative ints ``a`` (Python or traced) and a Python int ``b``:
    ``lax.div`` truncates, which is floor division here, and skips the sign fix-ups of
    ``//`` (whose scalar form the Pallas Triton lowering rejects)."""
    return a // b if isinstance(a, int) else lax.div(a, jnp.asarray(b, a.dtype))


def imod(a, b):
    """``a % b`` for non-negative ints, see :func:`idiv`."""
    return a % b if isinstance(a, int) else lax.rem(a, jnp.asarray(b, a.dtype))


def fori(n: int, body, init):
    """``lax.fori_loop(0, n, body, init)`` with an int32 index also under x64 (index
    arithmetic stays int32, as the kernels' position arrays); a single trip is inlined."""
    if n == 1:
        return body(jnp.int32(0), init)
    return lax.fori_loop(0, n, lambda i, carry: body(lax.convert_element_type(i, jnp.int32),
                                                     carry), init)


def lanes(program_axis: int, block: int, size: int):
    """Flat positions of this program's block along ``program_axis``: ``(clamped,
    valid)``. ``clamped`` is always a legal index (the last one for lanes past
    ``size``); ``valid`` says which lanes are real."""
    index = pl.program_id(program_axis) * block + jnp.arange(block, dtype=jnp.int32)
    return jnp.minimum(index, size - 1), index < size


def pad_axis(x, axis: int, size: int, value=0):
    """``x`` zero-padded (or ``value``-padded) at the end of ``axis`` to ``size``."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, widths, constant_values=value)


def pad_input(x, geometry, value=0):
    """``x [..., H, W]`` padded as the geometry says (``pad_before``/``pad_after``)."""
    (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return jnp.pad(x, widths, constant_values=value)


def padded_size(geometry) -> tuple[int, int]:
    """``(Hp, Wp)`` of the padded input."""
    return tuple(n + b + a for n, b, a in
                 zip(geometry.in_size, geometry.pad_before, geometry.pad_after))


def tap_offsets(geometry) -> list[int]:
    """Flat offset in the padded input of every tap ``(i, j)``, row-major: output
    ``(y, x)`` reads ``base + offset`` with ``base = y*sh*Wp + x*sw``."""
    wp = padded_size(geometry)[1]
    (dh, dw) = geometry.dilation
    return [i * dh * wp + j * dw for i, j in geometry.taps()]


def window_base(geometry, position):
    """Flat index in the padded input of the window start of flat output ``position``."""
    (sh, sw), ow = geometry.stride, geometry.out_size[1]
    wp = padded_size(geometry)[1]
    return idiv(position, ow) * (sh * wp) + imod(position, ow) * sw


def fold_taps(cols, geometry):
    """Adjoint of reading every tap: ``cols [N, C, K, oh, ow]`` (one map per tap) added to
    the padded input cells each tap reads, in row-major tap order; returns the gradient
    of the unpadded input ``[N, C, H, W]``. Dense pads and adds (no scatter, no atomics):
    deterministic on every backend."""
    (hp, wp), (sh, sw), (dh, dw) = padded_size(geometry), geometry.stride, geometry.dilation
    (oh, ow) = geometry.out_size
    grad = jnp.zeros((*cols.shape[:2], hp, wp), cols.dtype)
    zero = jnp.zeros((), cols.dtype)
    for t, (i, j) in enumerate(geometry.taps()):
        rows_end, cols_end = i * dh + sh * (oh - 1) + 1, j * dw + sw * (ow - 1) + 1
        config = [(0, 0, 0), (0, 0, 0), (i * dh, hp - rows_end, sh - 1),
                  (j * dw, wp - cols_end, sw - 1)]
        grad = grad + lax.pad(cols[:, :, t], zero, config)
    (top, left), (h, w) = geometry.pad_before, geometry.in_size
    return grad[:, :, top:top + h, left:left + w]
