"""Tan-product convolution: the ``impl="native"`` contract functions.

``forward(input, weight, geometry) -> out`` and ``backward(grad_out, input, weight,
geometry) -> (grad_input, grad_weight)``, no autograd inside, bias not included (the op
adds it). ``out[n,o,y,x] = prod_{c,i,j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o,c,i,j])``.

Two paths, same contract and results within float rounding:

- **Compiled loops** (CPU tensors, when :mod:`.compiled` can build ``tanprod.c``): one C
  call per forward or backward. It splits the work in tiles (one sample, a band of
  output rows of at most :data:`TILE_FACTORS` factors per output channel) shared out
  among torch's own OpenMP threads, computes each factor once, and forms the
  leave-one-out products in one sweep forward and one back per output (exact where a
  factor is 0). The tiles' partial sums are added in tile order, so the gradients do
  not depend on the number of threads. The file's opening comment has the details.
- **Eager torch** (GPU tensors, or no C compiler; slower), below.

The eager forward works in blocks of samples and output channels (at most
:data:`FORWARD_FACTORS` factors), one tap at a time: one broadcast addition writes the
tap's factors' arguments ``[C, n, o, P]`` into a buffer its thread reuses, ``tan_``
makes them factors, their product over the channels multiplies the block's running
product, kept in float64.

The eager backward views the ``F = C*kh*kw`` factors of an output as ``[B, A]`` (``B`` = the
taps times a divisor of ``C``, ``A`` = the rest of the channels, both near ``sqrt(F)``)
and works in tiles (one sample, a band of output rows; :class:`_Plan`). A tile copies
the input under each tap once (``[B, A, P]`` for its ``P`` positions, at most
:data:`TILE_FACTORS`), then takes its output channels a few at a time (at most
:data:`BLOCK_FACTORS` factors): one broadcast addition and one ``tan_`` form the factors
``[B, A, o, P]`` in a buffer (:class:`_Workspace`) reused from chunk to chunk, so it
stays in the core's cache through the passes over it. Memory stays bounded whatever the
shape. Blocks and tiles run on single-threaded workers (:mod:`.workers`); the
backward's partial sums are added in tile order (deterministic).

The gradient is division-free: ``d out / d u = (product of the other factors) * (1 +
tan(u)^2)``, the leave-one-out products formed in two levels: prefix and suffix products
over ``B`` (``B`` operations on contiguous ``[A, o, P]`` slices) and, across the ``A``
group products, a product tree (:class:`_Tree`, ``2 log2(A)`` small operations), so a
factor that is exactly 0 still gets its exact gradient and a chunk takes a few dozen
torch calls, not one per factor. The output gradient rides down the tree and along the
suffix products, and ``others * (1 + f^2) = others + all * f`` makes the derivative one
fused multiply-add over the buffer.

The forward's running product and the backward's products across groups are float64 for
every input dtype: with many factors a float32 running product passes through float32's
subnormal range, whose arithmetic is tens of times slower, or overflows where the result
does not.
"""

from __future__ import annotations

import ctypes
import math
import threading

import torch
import torch.nn.functional as F

from ..common import compute_dtype
from . import compiled, workers

#: Factors per chunk buffer (1 MiB in float32): large enough that each of a chunk's few
#: dozen operations covers many elements, small enough that the buffers a chunk works on
#: stay in or near a core's cache from one pass to the next.
BLOCK_FACTORS = 1 << 18

#: Factors of one output channel per tile (the input under every tap for its positions).
TILE_FACTORS = 1 << 18

#: Tiles per thread the compiled loops aim for (they share tiles out one at a time, so a
#: thread that falls behind, another process having taken its core, holds up the end of
#: the call by one small tile at most).
TILES_PER_THREAD = 4

#: Factors per block of the forward, which takes one tap's share of a block at a time.
FORWARD_FACTORS = 1 << 22

#: dtype of the products across the ``A`` groups of factors.
WIDE = torch.float64


def _padded(input, geometry, dtype):
    (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
    return F.pad(input.to(dtype), (left, right, top, bottom))


def _split(channels, taps):
    """``(A, B)``: ``B = taps * s`` for the divisor ``s`` of ``channels`` that brings
    ``A = channels / s`` and ``B`` closest to each other."""
    s = min((s for s in range(1, channels + 1) if channels % s == 0),
            key=lambda s: abs(math.log(taps * s * s / channels)))
    return channels // s, taps * s


class _Tree:
    """Leave-one-out products over the rows of ``values [R, M]`` by a binary tree, in
    ``2 * log2(R)`` torch calls: row k pairs with row ``k + R // 2`` (contiguous halves;
    an odd last row passes through), pair products go up to the root, and on the way
    down each node's "product of everything else" times its sibling is its children's.
    Exact where a value is 0 (no division); every result is a product of about
    ``log2(R)`` partial products."""

    def __init__(self, values, dtype, leaves=None):
        rows, m = values.shape
        self.up, self.down = [values], [torch.empty_like(values) if leaves is None else leaves]
        while rows > 1:
            rows = (rows + 1) // 2
            self.up.append(values.new_empty((rows, m), dtype=dtype))
            self.down.append(values.new_empty((rows, m), dtype=dtype))
        self.steps = []
        for level in range(len(self.up) - 1):
            cur, nxt = self.up[level], self.up[level + 1]
            below, above = self.down[level], self.down[level + 1]
            n = cur.shape[0]
            h = n // 2
            odd = (cur[2 * h], nxt[h], above[h], below[2 * h]) if n % 2 else None
            self.steps.append((cur[:h], cur[h : 2 * h], nxt[:h], above[:h], below[:h], below[h : 2 * h], odd))
        self.root, self.seed = self.up[-1][0], self.down[-1][0]
        self.total = torch.empty_like(self.root)

    def run(self, seed, total=None):
        """``out[r] = seed * prod_{r' != r} values[r']`` (``self.down[0]``: ``leaves``
        when given, of any dtype), and ``seed * prod_r values[r]``, written into ``total``
        when given (else a buffer reused by the next call) and returned."""
        mul = torch.mul
        for left, right, parent, _, _, _, odd in self.steps:
            mul(left, right, out=parent)
            if odd is not None:
                odd[1].copy_(odd[0])
        self.seed.copy_(seed)
        for left, right, _, above, below_left, below_right, odd in reversed(self.steps):
            mul(above, right, out=below_left)
            mul(above, left, out=below_right)
            if odd is not None:
                odd[3].copy_(odd[2])
        return torch.mul(self.seed, self.root, out=self.total if total is None else total)


class _Workspace:
    """One thread's buffers for chunks of shape ``[B, A, o, P]``, and their views, made
    once: a chunk then runs a few dozen torch calls and nothing else."""

    def __init__(self, shape, dtype, device):
        b_all, a_all, o, p = shape
        self.factors = torch.empty(shape, dtype=dtype, device=device)
        self.out = torch.empty(shape, dtype=dtype, device=device)
        self.partial = torch.empty((a_all, o * p), dtype=dtype, device=device)
        self.partial_wide = torch.empty((a_all, o * p), dtype=WIDE, device=device)
        self.others = torch.empty((a_all, o * p), dtype=dtype, device=device)
        self.across = _Tree(self.partial_wide, WIDE, leaves=self.others)
        self.product = torch.empty(o * p, dtype=WIDE, device=device)
        self.grad_all = torch.empty((o, p), dtype=dtype, device=device)
        flat = lambda t: [row.view(-1) for row in t]  # noqa: E731
        self.f_rows, self.out_rows = flat(self.factors), flat(self.out)
        self.partial_flat = self.partial.view(-1)
        self.grad_all_4 = self.grad_all[None, None]


class _Plan:
    """The tiles ``(n, y0, y1)`` of one call, what they share, and per-thread buffers."""

    def __init__(self, input, weight, geometry, dtype):
        self.geometry = geometry
        self.xpad = _padded(input, geometry, dtype)
        o, c, kh, kw = weight.shape
        self.taps = list(geometry.taps())
        self.out_channels, self.channels = o, c
        self.groups, self.group = _split(c, kh * kw)  # A, B
        # factor (b, a) of output channel o: tap b // s, channel (b % s) * A + a
        self.w = weight.to(dtype).reshape(o, c, kh * kw).permute(2, 1, 0)
        self.w = self.w.reshape(self.group, self.groups, o).contiguous()  # [B, A, O]
        oh, ow = geometry.out_size
        row = c * kh * kw * ow  # factors of one output row and channel
        rows = max(1, min(oh, TILE_FACTORS // row))
        rows = math.ceil(oh / math.ceil(oh / rows))  # even bands
        self.tiles = [(n, y0, min(y0 + rows, oh)) for n in range(input.shape[0])
                      for y0 in range(0, oh, rows)]
        count = math.ceil(o / max(1, BLOCK_FACTORS // (row * rows)))  # even chunks
        self.chunks = [(o * k // count, o * (k + 1) // count) for k in range(count)]
        self.local = threading.local()

    def workspace(self, shape):
        spaces = getattr(self.local, "spaces", None)
        if spaces is None:
            spaces = self.local.spaces = {}
        if shape not in spaces:
            spaces[shape] = _Workspace(shape, self.w.dtype, self.w.device)
        return spaces[shape]

    def _tap_rows(self, xpad, t, n, y0, y1):
        """``[C, y1-y0, ow]`` view of what tap t reads for output rows ``y0:y1``."""
        (sh, sw), (dh, dw), (_, ow) = self.geometry.stride, self.geometry.dilation, self.geometry.out_size
        i, j = self.taps[t]
        return xpad[n, :, i * dh + sh * y0 : i * dh + sh * (y1 - 1) + 1 : sh,
                    j * dw : j * dw + sw * (ow - 1) + 1 : sw]

    def columns(self, n, y0, y1):
        """``[B, A, P]``: the input under every tap for the tile's positions."""
        k, ow = len(self.taps), self.geometry.out_size[1]
        cols = getattr(self.local, "columns", None)
        if cols is None or cols.shape[2] != y1 - y0:
            cols = self.local.columns = self.xpad.new_empty((k, self.channels, y1 - y0, ow))
        for t in range(k):
            cols[t].copy_(self._tap_rows(self.xpad, t, n, y0, y1))
        return cols.view(self.group, self.groups, -1)

    def fold(self, grad_xpad, n, y0, y1, grad_cols):
        """Adjoint of :meth:`columns`: ``grad_cols [B, A, P]`` added under the taps."""
        grad_cols = grad_cols.view(len(self.taps), self.channels, y1 - y0, -1)
        for t in range(len(self.taps)):
            self._tap_rows(grad_xpad, t, n, y0, y1).add_(grad_cols[t])

    def factors(self, cols, o0, o1):
        """The workspace of a chunk of output channels ``o0:o1``, its factors ``tan(x +
        w)`` ``[B, A, o, P]`` in ``.factors``."""
        b, a, p = cols.shape
        space = self.workspace((b, a, o1 - o0, p))
        torch.add(cols[:, :, None], self.w[:, :, o0:o1, None], out=space.factors)
        space.factors.tan_()
        return space


def _tap(xpad, geometry, i, j):
    """``[N, C, oh, ow]`` view: what tap ``(i, j)`` reads at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_size
    return xpad[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw]


def _forward_blocks(batch, out_channels, factors_per_output):
    """``(n0, n1, o0, o1)`` blocks of at most :data:`FORWARD_FACTORS` factors (one output
    plane at least), output channels split evenly."""
    per_sample = out_channels * factors_per_output
    if per_sample <= FORWARD_FACTORS:
        step = max(1, FORWARD_FACTORS // max(per_sample, 1))
        return [(n0, min(n0 + step, batch), 0, out_channels) for n0 in range(0, batch, step)]
    parts = math.ceil(per_sample / FORWARD_FACTORS)
    bounds = [round(out_channels * p / parts) for p in range(parts + 1)]
    return [(n0, n0 + 1, o0, o1) for n0 in range(batch) for o0, o1 in zip(bounds, bounds[1:])
            if o1 > o0]


def _eager_forward(input, weight, geometry, dtype):
    """The forward in eager torch, in blocks of samples and output channels, one tap at a
    time: the tap's factors ``[C, n, o, P]`` (a buffer the thread reuses), their product
    over the channels, which multiplies the block's running product in float64."""
    (n_all, c), o_all = input.shape[:2], weight.shape[0]
    oh, ow = geometry.out_size
    out = torch.empty((n_all, o_all, oh * ow), dtype=dtype, device=input.device)
    xpad, w = _padded(input, geometry, dtype), weight.to(dtype)
    taps = list(geometry.taps())
    local = threading.local()

    def block(n0, n1, o0, o1):
        n, o = n1 - n0, o1 - o0
        size = c * n * o * oh * ow
        buffer = getattr(local, "factors", None)
        if buffer is None or buffer.numel() < size:
            buffer = local.factors = torch.empty(size, dtype=dtype, device=input.device)
        factors = buffer[:size].view(c, n, o, oh * ow)
        tap_product = torch.empty((n, o, oh * ow), dtype=dtype, device=input.device)
        product = torch.ones((n, o, oh * ow), dtype=WIDE, device=input.device)
        for i, j in taps:
            x_tap = _tap(xpad[n0:n1], geometry, i, j).transpose(0, 1).reshape(c, n, 1, oh * ow)
            torch.add(x_tap, w[o0:o1, :, i, j].t()[:, None, :, None], out=factors)
            torch.prod(factors.tan_(), 0, out=tap_product)
            product.mul_(tap_product)
        out[n0:n1, o0:o1] = product

    blocks = _forward_blocks(n_all, o_all, c * len(taps) * oh * ow)
    workers.run(block, blocks, input.device)
    return out


def _factor_gradients(space, grad):
    """``grad * d out / d u`` for every factor ``f = tan(u)`` of ``space.factors [B, A,
    o, P]``, in ``space.out``; ``grad [o, P]``."""
    f, out, mul = space.f_rows, space.out_rows, torch.mul
    # Within each group: out[b] = prod_{b' < b} f[b'].
    out[0].fill_(1)
    for b in range(1, len(f)):
        mul(out[b - 1], f[b - 1], out=out[b])
    mul(out[-1], f[-1], out=space.partial_flat)  # [A, o*P]: the group products
    # Across groups, wide: others[a] = grad * prod_{a' != a} partial[a'].
    space.partial_wide.copy_(space.partial)
    space.across.run(grad.reshape(-1), space.grad_all.view(-1))  # grad * every factor
    # Within each group, from the end: out[b] *= others * prod_{b' > b} f[b'].
    others = space.others.view(-1)
    for b in range(len(f) - 1, -1, -1):
        out[b].mul_(others)
        if b:
            others.mul_(f[b])
    # grad * others * (1 + f^2) = grad * others + grad_all * f
    return space.out.addcmul_(space.factors, space.grad_all_4)


def _eager_backward(grad, input, weight, geometry, dtype):
    """``(grad_input, grad_weight)`` in eager torch, in ``dtype``."""
    plan = _Plan(input, weight, geometry, dtype)
    ow = geometry.out_size[1]

    def tile(n, y0, y1):
        """The tile's column gradient ``[B, A, P]`` (summed over the output channels) and
        its weight-gradient part ``[B, A, O]``."""
        cols = plan.columns(n, y0, y1)
        grad_cols = torch.zeros_like(cols)
        grad_w = torch.empty_like(plan.w)
        for o0, o1 in plan.chunks:
            grad_u = _factor_gradients(plan.factors(cols, o0, o1), grad[n, o0:o1, y0 * ow : y1 * ow])
            torch.sum(grad_u, 3, out=grad_w[:, :, o0:o1])
            for k in range(o1 - o0):
                grad_cols.add_(grad_u[:, :, k])
        return grad_cols, grad_w

    grad_xpad, grad_w = torch.zeros_like(plan.xpad), torch.zeros_like(plan.w)
    for (n, y0, y1), (grad_cols, part) in zip(plan.tiles, workers.results(tile, plan.tiles, input.device)):
        grad_w += part  # in tile order: deterministic
        plan.fold(grad_xpad, n, y0, y1, grad_cols)
    (top, left), (h, w) = geometry.pad_before, geometry.in_size
    o, c, kh, kw = weight.shape
    grad_w = grad_w.reshape(kh * kw, c, o).permute(2, 1, 0).reshape(weight.shape)  # from [B, A, O]
    return grad_xpad[:, :, top : top + h, left : left + w].contiguous(), grad_w


# ----------------------------------------------------------------------------- compiled


class _Problem(ctypes.Structure):
    """One call of the compiled loops (``Problem`` in tanprod.c)."""

    _fields_ = [(name, ctypes.c_int64) for name in
                ("N", "C", "H", "W", "O", "kh", "kw", "sh", "sw", "dh", "dw", "top", "left",
                 "oh", "ow", "rows", "threads")]


_SUFFIX = {torch.float32: "float32", torch.float64: "float64"}
_P = ctypes.c_void_p
_SIGNATURES = {
    **{f"tanprod_forward_{s}": (ctypes.c_int, [ctypes.POINTER(_Problem), _P, _P, _P])
       for s in _SUFFIX.values()},
    **{f"tanprod_backward_{s}": (ctypes.c_int, [ctypes.POINTER(_Problem), _P, _P, _P, _P, _P])
       for s in _SUFFIX.values()},
}


def _loops(device):
    """The compiled loops for tensors on ``device``, or None (a GPU, or no compiler)."""
    return compiled.library("tanprod", _SIGNATURES) if device.type == "cpu" else None


def _problem(input, weight, geometry):
    """The call's :class:`_Problem`: tiles of whole output rows, at most
    :data:`TILE_FACTORS` factors per output channel (one row at least), and at least
    :data:`TILES_PER_THREAD` tiles per thread where the output has the rows for them."""
    (n, c, h, w), (o, _, kh, kw) = input.shape, weight.shape
    (oh, ow), (top, left) = geometry.out_size, geometry.pad_before
    threads = compiled.threads(torch.get_num_threads())
    bands = max(math.ceil(oh * c * kh * kw * ow / TILE_FACTORS),
                math.ceil(TILES_PER_THREAD * threads / max(n, 1)) if threads > 1 else 1)
    rows = math.ceil(oh / min(max(bands, 1), oh))  # even bands
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    return _Problem(N=n, C=c, H=h, W=w, O=o, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, top=top,
                    left=left, oh=oh, ow=ow, rows=rows, threads=threads)


def _check_allocated(failed, weight):
    if failed:
        raise MemoryError(f"tanprod_conv2d: no memory for a thread's buffers "
                          f"({weight[0].numel()} factors per output)")


def _compiled_forward(loops, input, weight, geometry, dtype):
    x, w = input.to(dtype).contiguous(), weight.to(dtype).contiguous()
    out = torch.empty((x.shape[0], w.shape[0], *geometry.out_size), dtype=dtype)
    run = getattr(loops, f"tanprod_forward_{_SUFFIX[dtype]}")
    _check_allocated(run(_problem(x, w, geometry), x.data_ptr(), w.data_ptr(), out.data_ptr()), w)
    return out


def _compiled_backward(loops, grad, input, weight, geometry, dtype):
    x, w = input.to(dtype).contiguous(), weight.to(dtype).contiguous()
    grad_input, grad_weight = torch.empty_like(x), torch.empty_like(w)
    run = getattr(loops, f"tanprod_backward_{_SUFFIX[dtype]}")
    _check_allocated(run(_problem(x, w, geometry), x.data_ptr(), w.data_ptr(), grad.data_ptr(),
                         grad_input.data_ptr(), grad_weight.data_ptr()), w)
    return grad_input, grad_weight


# ----------------------------------------------------------------------------- contract


def forward(input, weight, geometry):
    """``[N, C, H, W]``, ``[O, C, kh, kw]`` -> ``[N, O, oh, ow]`` in the input dtype."""
    dtype = compute_dtype(input.dtype)
    loops = _loops(input.device)
    if loops is None:
        out = _eager_forward(input, weight, geometry, dtype)
    else:
        out = _compiled_forward(loops, input, weight, geometry, dtype)
    return out.view(input.shape[0], weight.shape[0], *geometry.out_size).to(input.dtype)


def backward(grad_out, input, weight, geometry):
    """Gradients of :func:`forward` w.r.t. input and weight, in the input dtype."""
    dtype = compute_dtype(input.dtype)
    o, c, kh, kw = weight.shape
    oh, ow = geometry.out_size
    grad = grad_out.to(dtype).reshape(grad_out.shape[0], o, oh * ow).contiguous()
    loops = _loops(input.device)
    if loops is None:
        grad_input, grad_w = _eager_backward(grad, input, weight, geometry, dtype)
    else:
        grad_input, grad_w = _compiled_backward(loops, grad, input, weight, geometry, dtype)
    return grad_input.to(input.dtype), grad_w.to(weight.dtype)
