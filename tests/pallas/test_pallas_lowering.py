"""The Pallas kernels lowered for an NVIDIA GPU from this CPU-only machine.

Interpret mode runs the kernel bodies as XLA on the CPU and forgives what the GPU
lowering rejects (non-power-of-two arrays, unsupported primitives, fp64 dot shapes).
Under ``jax_impl.kernels.common.gpu_lowering()`` the same contract functions trace for the
Pallas Triton backend, and ``.lower(lowering_platforms=("cuda",))`` must produce one
Triton custom call per kernel (forward and backward, fp32 and fp64; under ``jax.vmap``
too). Where the ``triton`` package is installed (it comes with torch), the Triton IR
inside each custom call is also compiled for an H100 (sm_90) down to PTX and a cubin,
which runs Triton's own passes and ptxas; the fp64 matrix products must use the DMMA
``mma.sync`` instructions and the fp32 ones IEEE ``fma.rn.f32`` (no TF32).
"""

import os
import tempfile

import jax
import jax.numpy as jnp
import pytest

from jax_impl.kernels import common, conv2_5d, deform, pool, tanprod
from reference.conv2_5d import conv2_5d_signature
from reference.deform import deform_conv2d_signature
from reference.pool import avg_pool2d_signature, max_pool2d_signature
from reference.tanprod import tanprod_conv2d_signature

TRITON_CALL = "__gpu$xla.gpu.triton"


def _spec(dtype):
    return lambda *shape: jax.ShapeDtypeStruct(shape, dtype)


def _launches(dtype):
    """name -> (function, abstract arguments, number of kernels it launches)."""
    s = _spec(dtype)
    x, w = (2, 3, 9, 11), (5, 3, 3, 3)
    g = tanprod_conv2d_signature(x, w, None, stride=(2, 1), padding=1, dilation=(1, 2)).geometry
    go = (2, 5, *g.out_size)
    sig = conv2_5d_signature(x, (2, 1, 9, 11), (3, *w), None, padding=1, focal=2.0)
    g25, f, ps = sig.geometry, sig.focal, sig.pixel_size
    dx, doff, dw, dm = (2, 4, 9, 11), (2, 36, 9, 11), (6, 2, 3, 3), (2, 18, 9, 11)
    dsig = deform_conv2d_signature(dx, doff, dw, None, padding=1, mask=dm)
    gd, groups, ogroups = dsig.geometry, dsig.groups, dsig.offset_groups
    gmax = max_pool2d_signature(x, 3, stride=2, padding=1, dilation=2, ceil_mode=True)
    gavg = avg_pool2d_signature(x, 3, stride=2, padding=1, ceil_mode=True)
    index = jax.ShapeDtypeStruct((2, 3, *gmax.out_size), jnp.int32)
    return {
        "tanprod.forward": (lambda x, w: tanprod.forward(x, w, g), (s(*x), s(*w)), 1),
        "tanprod.backward": (lambda go, x, w: tanprod.backward(go, x, w, g),
                             (s(*go), s(*x), s(*w)), 2),
        "conv2_5d.forward": (lambda x, d, w: conv2_5d.forward(x, d, w, g25, f, ps),
                             (s(*x), s(2, 1, 9, 11), s(3, *w)), 1),
        "conv2_5d.backward": (lambda go, x, d, w: conv2_5d.backward(go, x, d, w, g25, f, ps),
                              (s(2, 5, *g25.out_size), s(*x), s(2, 1, 9, 11), s(3, *w)), 2),
        "deform.forward": (lambda x, o, w, m: deform.forward(x, o, w, m, gd, groups, ogroups),
                           (s(*dx), s(*doff), s(*dw), s(*dm)), 1),
        "deform.backward": (
            lambda go, x, o, w, m: deform.backward(go, x, o, w, m, gd, groups, ogroups),
            (s(2, 6, 9, 11), s(*dx), s(*doff), s(*dw), s(*dm)), 2),
        "deform.forward_v1": (lambda x, o, w: deform.forward(x, o, w, None, gd, groups, ogroups),
                              (s(*dx), s(*doff), s(*dw)), 1),
        "pool.max_forward": (lambda x: pool.max_forward(x, gmax), (s(*x),), 1),
        "pool.max_backward": (lambda go, i: pool.max_backward(go, i, gmax),
                              (s(2, 3, *gmax.out_size), index), 1),
        "pool.avg_forward": (lambda x: pool.avg_forward(x, gavg, False, 5), (s(*x),), 1),
        "pool.avg_backward": (lambda go: pool.avg_backward(go, gavg, True, None),
                              (s(2, 3, *gavg.out_size),), 1),
    }


NAMES = list(_launches(jnp.float32))
DOT_KERNELS = ("conv2_5d", "deform")


def _lower(name, dtype):
    fn, args, kernels = _launches(dtype)[name]
    with common.gpu_lowering():
        lowered = jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",))
    return lowered, kernels


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_every_kernel_lowers_for_cuda(name, dtype):
    with jax.enable_x64(dtype == "float64"):
        lowered, kernels = _lower(name, jnp.dtype(dtype))
    assert lowered.as_text().count(TRITON_CALL) == kernels


def test_a_vmapped_kernel_lowers_for_cuda():
    s = _spec(jnp.float32)
    g = tanprod_conv2d_signature((2, 2, 6, 7), (3, 2, 3, 3), None, padding=1).geometry
    batched = jax.vmap(lambda go, x, w: tanprod.backward(go, x, w, g), in_axes=(0, 0, None))
    with common.gpu_lowering():
        lowered = jax.jit(batched).trace(s(4, 2, 3, 6, 7), s(4, 2, 2, 6, 7), s(3, 2, 3, 3)).lower(
            lowering_platforms=("cuda",))
    assert lowered.as_text().count(TRITON_CALL) == 2


def test_interpret_mode_is_the_default_here():
    assert jax.default_backend() == "cpu" and common.interpret_mode()
    with common.gpu_lowering():
        assert not common.interpret_mode()
    assert common.interpret_mode()


# ----------------------------------------------------------------------------- sm_90


def _triton_modules(lowered):
    """``(Triton IR text, compile options)`` of every Triton custom call in ``lowered``."""
    try:
        from jax._src.interpreters import mlir as jax_mlir
        from jax._src.lib.mlir import ir
        from jax._src.lib.triton import dialect as triton_dialect
    except ImportError as error:  # private jaxlib modules: skip rather than fail
        pytest.skip(f"jaxlib's MLIR bindings are not importable: {error}")
    calls = []

    def walk(operation):
        for region in operation.regions:
            for block in region.blocks:
                for op in block.operations:
                    if (op.operation.name == "stablehlo.custom_call"
                            and TRITON_CALL in str(op.attributes["call_target_name"])):
                        config = op.attributes["mhlo.backend_config"]
                        options = {key: ir.IntegerAttr(config[key]).value
                                   for key in ("num_warps", "num_stages") if key in config}
                        calls.append((bytes(ir.StringAttr(config["ir"]).value_bytes), options))
                    walk(op.operation)

    walk(lowered.compiler_ir("stablehlo").operation)
    context = jax_mlir.make_ir_context()
    triton_dialect.register_dialect(context)
    with context:
        context.load_all_available_dialects()
        return [(str(ir.Module.parse(data)), options) for data, options in calls]


def _compile_for_h100(text, options):
    triton = pytest.importorskip("triton", reason="triton (installed with torch) compiles the IR")
    from triton.backends.compiler import GPUTarget

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.ttir")
        with open(path, "w") as f:
            f.write(text)
        return triton.compile(path, target=GPUTarget("cuda", 90, 32), options=options)


@pytest.mark.parametrize("name", NAMES)
def test_every_fp32_kernel_compiles_for_an_h100(name):
    lowered, kernels = _lower(name, jnp.float32)
    modules = _triton_modules(lowered)
    assert len(modules) == kernels
    for text, options in modules:
        ptx = _compile_for_h100(text, options).asm["ptx"]
        assert ".target sm_90" in ptx
        assert "tf32" not in ptx  # IEEE fp32 products: the 1e-4 tolerance needs them
        if name.startswith(DOT_KERNELS):
            assert "fma.rn.f32" in ptx


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith(DOT_KERNELS)])
def test_fp64_matrix_products_use_dmma_on_an_h100(name):
    with jax.enable_x64(True):
        lowered, _ = _lower(name, jnp.float64)
    for text, options in _triton_modules(lowered):
        ptx = _compile_for_h100(text, options).asm["ptx"]
        assert "mma.sync.aligned.m8n8k4.row.col.f64" in ptx
