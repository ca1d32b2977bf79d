"""Arguments: the reference's errors for bad calls (eagerly and under jit), what tensor
arguments may be, calls too large for memory, traced static arguments, dtypes,
non-finite values under jit, and the ``impl`` switch with its kernel interface."""

import functools
import importlib.util
import sys
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_cases import OPS, case, quick_jit

import jax_impl
import reference
from crossconv.cases import UNBATCHED, as_outputs
from crossconv.compare import Tolerance, assert_close, mismatch
from crossconv.registry import FP32, implementations
from crossconv.registry import OPS as REGISTRY


def _reference_table(name):
    """One of the reference's own tables of bad calls (tests/reference/test_validation.py)."""
    path = Path(__file__).parents[1] / "reference" / "test_validation.py"
    spec = importlib.util.spec_from_file_location("reference_bad_calls", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


BAD = _reference_table("BAD")
TOO_BIG = _reference_table("TOO_BIG")


def _error(fn, *args, **kwargs):
    with pytest.raises((ValueError, TypeError)) as info:
        fn(*args, **kwargs)
    return info.value


@pytest.mark.parametrize("op, args, kwargs, error, fragment", BAD,
                         ids=[f"{b[0]}-{b[4][:40]}" for b in BAD])
def test_bad_arguments_raise_the_references_error(op, args, kwargs, error, fragment):
    """Same type and message as the reference, eagerly and at trace time under jit (the
    huge zero-stride inputs would take minutes to touch: nothing reads them first)."""
    expected = _error(getattr(reference, op), *args, **kwargs)
    eager = _error(getattr(jax_impl, op), *args, **kwargs)
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    static = [a for a in args if not isinstance(a, np.ndarray)]
    array_kwargs = {k: v for k, v in kwargs.items() if isinstance(v, np.ndarray)}
    static_kwargs = {k: v for k, v in kwargs.items() if k not in array_kwargs}
    jitted = _error(jax.jit(lambda a, kw: getattr(jax_impl, op)(*a, *static, **kw, **static_kwargs)),
                    arrays, array_kwargs)
    for actual in (eager, jitted):
        assert type(actual) is type(expected)
        if "must be a float32" in fragment:
            # JAX also takes bfloat16/float16 (so a float16 weight beside a float64 input
            # is a dtype mismatch instead): a TypeError naming the op and the argument.
            argument = fragment.split()[0]
            assert str(actual).startswith(f"{op}: ") and argument in str(actual)
        else:
            assert str(actual) == str(expected)


def test_mixed_dtypes_and_non_float_tensors_are_type_errors():
    x, w = np.ones((1, 3, 5, 5), np.float32), np.ones((4, 3, 3, 3))
    with pytest.raises(TypeError, match="conv2d: tensor arguments must share one dtype, got "
                                        "input float32, weight float64"):
        jax_impl.conv2d(x, w)
    with pytest.raises(TypeError, match="deform_conv2d: mask must be a float32 or float64"):
        jax_impl.deform_conv2d(x, np.ones((1, 18, 3, 3), np.float32), w.astype(np.float32),
                               mask=np.ones((1, 9, 3, 3), np.int32))


@pytest.mark.parametrize("op", OPS)
def test_half_precision_computes_in_float32_and_returns_its_dtype(op):
    c = case(op, np.float32, smooth=True)
    for dtype, resolution in ((jnp.bfloat16, 2**-8), (jnp.float16, 2**-11)):
        rounded = {k: None if v is None else np.asarray(jnp.asarray(v, dtype), np.float64)
                   for k, v in c.tensors.items()}
        expected = as_outputs(getattr(reference, op)(**rounded, **c.params))[0]
        out = as_outputs(c.call(getattr(jax_impl, op), lambda a: jnp.asarray(a, dtype)))[0]
        assert out.dtype == dtype
        # The inputs as rounded: float32 sums, then the output rounded to the dtype.
        tolerance = Tolerance(rtol=resolution, atol=1e-4)
        assert_close(np.asarray(out, np.float64), expected, tolerance, f"{op} in {dtype.__name__}")


def test_float64_needs_x64_and_then_stays_float64():
    c = case("deform_conv2d", np.float64)
    with jax.enable_x64(True):
        out = c.call(jax_impl.deform_conv2d)
        assert out.dtype == np.float64
        assert_close(out, c.call(reference.deform_conv2d), REGISTRY["deform_conv2d"].tolerance["float64"],
                     "deform float64")
    with jax.enable_x64(False):  # JAX's default: float64 inputs become float32
        assert c.call(jax_impl.deform_conv2d).dtype == np.float32


#: The tensors that get NaN/Inf cells: every per-sample one but the mask.
NONFINITE = {name: tuple(t for t in op.tensor_args if t not in (*UNBATCHED, "mask"))
             for name, op in REGISTRY.items()}


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("op", OPS)
def test_nan_and_inf_propagate_under_jit_as_in_the_reference(op):
    """NaN/Inf planted in the inputs: the jitted op puts NaN/Inf exactly where the
    reference does (never a crash; deform's NaN offset is a torchvision segfault)."""
    c = case(op)
    for name in NONFINITE[op]:
        value = c.tensors[name].copy()
        value.flat[3], value.flat[-5], value.flat[len(value.flat) // 2] = np.nan, np.inf, -np.inf
        if name == "offset":
            value[0, 0, 1, 1] = np.nan  # one coordinate NaN, the other finite
        c = c.with_tensor(name, value)
    expected = as_outputs(c.call(getattr(reference, op)))[0]
    tensors = {key: v for key, v in c.tensors.items() if v is not None}
    actual = quick_jit(lambda t: as_outputs(getattr(jax_impl, op)(**t, **c.params)))(tensors)[0]
    assert np.isnan(expected).any() or np.isinf(expected).any()
    assert mismatch(actual, expected, FP32) <= 1, f"{op}: non-finite pattern differs"


# ----------------------------------------------------------------------------- impl


def test_impl_must_be_a_known_name():
    with pytest.raises(ValueError, match="deform_conv2d: impl must be one of 'auto', 'native', "
                                         "'pallas', got impl='triton'"):
        jax_impl.deform_conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 2, 3, 3)), np.ones((1, 1, 1, 1)),
                               impl="triton")
    with pytest.raises(ValueError, match="conv2d: there is no Pallas kernel"):
        jax_impl.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 1, 1)), impl="pallas")


KERNEL_FILES = {impl.op: REGISTRY[impl.op].file for impl in implementations(name="jax-pallas")}


@pytest.mark.parametrize("op", list(KERNEL_FILES))
def test_a_missing_pallas_kernel_is_an_error_naming_it(op, monkeypatch):
    name = f"jax_impl.kernels.{KERNEL_FILES[op]}"
    monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    c = case(op)
    with pytest.raises(ModuleNotFoundError, match=f"{op}: impl='pallas' needs the Pallas kernel "
                                                  f"module {name}"):
        c.call(getattr(jax_impl, op), impl="pallas")


@pytest.fixture
def recording_kernels(monkeypatch):
    """Install fake ``jax_impl.kernels.<file>`` modules that run the native contract
    functions and record which were called, as the Pallas kernels would be."""
    calls = []

    def recorder(fn, name):
        def recorded(*args):
            calls.append(name)
            return fn(*args)
        return recorded

    def install(file):
        native = importlib.import_module(f"jax_impl.{file}")
        module = types.ModuleType(f"jax_impl.kernels.{file}")
        names = {name for op in REGISTRY.values() if op.file == file for name in op.contract}
        for fn_name in names:
            setattr(module, fn_name, recorder(getattr(native, fn_name), fn_name))
        monkeypatch.setitem(sys.modules, "jax_impl.kernels", types.ModuleType("jax_impl.kernels"))
        monkeypatch.setitem(sys.modules, module.__name__, module)

    return install, calls


@pytest.mark.parametrize("op", list(KERNEL_FILES))
def test_impl_pallas_runs_the_kernel_modules_contract_functions(op, recording_kernels):
    """Through the switch: the kernel module's forward and backward are the ones called,
    with the contract's arguments, and give the native results."""
    install, calls = recording_kernels
    install(KERNEL_FILES[op])
    c = case(op, seed=11)  # a shape of its own: nothing cached from other tests
    names = [n for n in REGISTRY[op].differentiable if c.tensors.get(n) is not None]
    fixed = {k: v for k, v in c.tensors.items() if k not in names}

    def loss(diff, impl):
        return jnp.sum(as_outputs(getattr(jax_impl, op)(**fixed, **diff, **c.params, impl=impl))[0])

    diff = {n: jnp.asarray(c.tensors[n]) for n in names}
    value_and_grad = quick_jit(jax.value_and_grad(loss), static_argnums=1)
    native = value_and_grad(diff, "native")
    assert calls == []
    kernel = value_and_grad(diff, "pallas")
    forward, backward = REGISTRY[op].contract
    # Traced, not run: jit traces the primal and the custom_vjp's forward rule apart.
    assert set(calls) == {forward, backward}
    assert calls.count(backward) == 1
    assert_close(kernel[0], native[0], FP32, f"{op} through the kernel switch")
    for n in names:
        assert_close(kernel[1][n], native[1][n], FP32, f"{op} d/d{n} through the kernel switch")


def test_auto_is_native_on_a_cpu(monkeypatch):
    assert jax.default_backend() == "cpu"
    monkeypatch.setattr("jax_impl.common.kernel_module", lambda *a: pytest.fail("kernel imported"))
    c = case("tanprod_conv2d")
    assert_close(c.call(jax_impl.tanprod_conv2d, impl="auto"),
                 c.call(jax_impl.tanprod_conv2d, impl="native"), FP32, "auto vs native")


# ----------------------------------------------------------------------------- kinds, sizes, jit


def test_tensor_arguments_must_be_jax_or_numpy_arrays():
    """Like torch_impl's "must be a torch.Tensor": a TypeError naming the argument, never
    JAX's "Error interpreting argument"; NumPy arrays are natural JAX inputs and work."""
    torch = pytest.importorskip("torch")
    x, w = np.ones((1, 3, 5, 5), np.float32), np.ones((4, 3, 3, 3), np.float32)
    offset = np.ones((1, 18, 3, 3), np.float32)
    calls = [  # (call, "op: argument", the type it got)
        (lambda: jax_impl.conv2d(torch.ones(1, 3, 5, 5), w), "conv2d: input", "Tensor"),
        (lambda: jax_impl.conv2d(x, w.tolist()), "conv2d: weight", "list"),
        (lambda: jax_impl.conv2d(x, w, [[1.0], [2.0, 3.0]]), "conv2d: bias", "list"),
        (lambda: jax_impl.tanprod_conv2d(None, w), "tanprod_conv2d: input", "None"),
        (lambda: jax_impl.xcorr2d(x, "template"), "xcorr2d: template", "str"),
        (lambda: jax_impl.conv2_5d(x, {"depth": 1}, w[None]), "conv2_5d: depth", "dict"),
        (lambda: jax_impl.deform_conv2d(x, offset, w, mask=1.0), "deform_conv2d: mask", "float"),
        (lambda: jax_impl.max_pool2d(None, 2), "max_pool2d: input", "None"),
        (lambda: jax_impl.avg_pool2d(x.tolist(), 2), "avg_pool2d: input", "list"),
    ]
    for call, argument, got in calls:
        with pytest.raises(TypeError) as info:
            call()
        assert str(info.value) == f"{argument} must be a jax.Array or numpy.ndarray, got {got}"
    assert jax_impl.conv2d(x, w).shape == jax_impl.conv2d(jnp.asarray(x), jnp.asarray(w)).shape


@pytest.mark.parametrize("op, args, kwargs, fragment", TOO_BIG, ids=[b[0] for b in TOO_BIG])
def test_calls_too_large_for_memory_are_refused_before_xla_sees_them(op, args, kwargs, fragment):
    """padding=10**9 made XLA abort the process ("overflow in static extent product");
    the shared checks refuse it first, with the reference's message, eagerly and under jit."""
    with pytest.raises(MemoryError) as expected:
        getattr(reference, op)(*args, **kwargs)
    with pytest.raises(MemoryError) as eager:
        getattr(jax_impl, op)(*args, **kwargs)
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    static = [a for a in args if not isinstance(a, np.ndarray)]
    with pytest.raises(MemoryError) as jitted:
        jax.jit(lambda a: getattr(jax_impl, op)(*a, *static, **kwargs))(arrays)
    assert str(eager.value) == str(jitted.value) == str(expected.value)
    assert fragment in str(eager.value)


#: One call per op: its tensors, and its non-tensor arguments with a valid value.
STATIC_CALLS = {
    "conv2d": ((np.ones((1, 4, 5, 5)), np.ones((2, 2, 3, 3))),
               dict(stride=1, padding=1, dilation=1, groups=2)),
    "tanprod_conv2d": ((np.ones((1, 2, 5, 5)) * 0.1, np.ones((2, 2, 3, 3)) * 0.1),
                       dict(stride=2, padding=(1, 0), dilation=1)),
    "conv2_5d": ((np.ones((1, 2, 5, 5)), np.ones((1, 1, 5, 5)), np.ones((3, 2, 2, 3, 3))),
                 dict(stride=1, padding=1, dilation=1, focal=2.0, pixel_size=0.5)),
    "deform_conv2d": ((np.ones((1, 2, 5, 5)), np.zeros((1, 18, 3, 3)), np.ones((2, 2, 3, 3))),
                      dict(stride=1, padding=0, dilation=1)),
    "max_pool2d": ((np.ones((1, 1, 5, 5)),),
                   dict(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True,
                        return_indices=False)),
    "avg_pool2d": ((np.ones((1, 1, 5, 5)),),
                   dict(kernel_size=2, stride=1, padding=1, ceil_mode=False,
                        count_include_pad=False, divisor_override=3)),
}


@pytest.mark.parametrize("op", list(STATIC_CALLS))
def test_traced_non_tensor_arguments_say_how_to_make_them_static(op):
    tensors, params = STATIC_CALLS[op]
    fn = getattr(jax_impl, op)
    for name, value in params.items():
        others = {k: v for k, v in params.items() if k != name}
        with pytest.raises(TypeError) as info:
            jax.jit(lambda t, v: fn(*t, **others, **{name: v}))(tensors, value)  # noqa: B023
        message = str(info.value)
        assert message.startswith(f"{op}: {name} must be a static Python value")
        assert f"static_argnames=({name!r},)" in message and "functools.partial" in message
    # What the message suggests works (a pair, not a list: static arguments are hashed).
    jitted = jax.jit(fn, static_argnames=tuple(params))
    assert_close(jitted(*tensors, **params), fn(*tensors, **params), FP32, f"{op} with static_argnames")


def test_jit_of_the_op_itself_names_the_traced_argument():
    x, w = jnp.ones((2, 4, 7, 7)), jnp.ones((6, 4, 3, 3))
    with pytest.raises(TypeError, match=r"conv2d: padding must be a static Python value.*"
                                        r"jax.jit\(jax_impl.conv2d, static_argnames=\('padding',\)\)"):
        jax.jit(jax_impl.conv2d)(x, w, padding=1)
    out = jax.jit(functools.partial(jax_impl.conv2d, padding=1))(x, w)
    assert out.shape == (2, 6, 7, 7)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_weight_meeting_zero_padding_gives_nan(batch, bad):
    """0 * NaN and 0 * inf are NaN (docs/index.md): a weight tap that lands on padding still makes
    the output NaN. torch's F.conv2d returns finite numbers there for N >= 2; XLA must not
    fold the explicit zero padding away (eagerly, under jit, strided, dilated, grouped)."""
    x = np.ones((batch, 2, 4, 4), np.float32)
    w = np.ones((4, 1, 3, 3), np.float32)
    w[0, 0, 0, 0] = bad
    for params in (dict(padding=1), dict(padding=(2, 1), stride=2, dilation=(2, 1)),
                   dict(padding="same", groups=2)):
        params.setdefault("groups", 2)
        expected = reference.conv2d(x, w, **params)
        assert np.isnan(expected[0, 0, 0, 0])
        for actual in (jax_impl.conv2d(x, w, **params),
                       quick_jit(lambda a, b: jax_impl.conv2d(a, b, **params))(x, w)):  # noqa: B023
            assert mismatch(actual, expected, FP32) <= 1, params


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("op", ["conv2d", "xcorr2d", "xcorr2d_depthwise"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_kernel_leaves_the_other_input_gradients_finite(op, bad):
    """XLA:CPU's float32 transposed convolution multiplies its zero padding by the
    kernel: a NaN kernel tap made every input gradient NaN. The reference's pattern:
    NaN only where the tap met the input."""
    rng = np.random.default_rng(3)
    if op == "conv2d":
        x, k = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 3, 3))
        params = dict(padding=1, stride=(2, 1), dilation=(1, 2), groups=2)
    else:
        x, k = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((2, 3, 3, 2))
        params = {}
    k[0, 0, 0, 1] = bad
    x, k = x.astype(np.float32), k.astype(np.float32)
    out = getattr(reference, op)(x, k, **params)
    g = np.cos(np.arange(out.size)).reshape(out.shape)
    expected = getattr(reference, op + "_vjp")(g, x, k, **params)
    first = "input" if op == "conv2d" else "search"
    def pullback(a, b, cotangent):
        return jax.vjp(lambda u, v: getattr(jax_impl, op)(u, v, **params), a, b)[1](cotangent)

    for grads in (pullback, quick_jit(pullback)):
        grad_x, grad_k = grads(x, k, jnp.asarray(g, jnp.float32))
        assert np.isfinite(expected[first]).any()
        assert mismatch(grad_x, expected[first], Tolerance(rtol=1e-4, atol=1e-4)) <= 1
        second = "weight" if op == "conv2d" else "template"
        assert mismatch(grad_k, expected[second], Tolerance(rtol=1e-4, atol=1e-4)) <= 1


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_conv2_5d_keeps_a_non_finite_input_in_a_closed_bin(dtype, bad):
    """A NaN or inf input tap whose depth opens no bin still meets its weights times 0:
    NaN, as the reference's sum. XLA turns a product with a converted 0/1 mask into a
    select that dropped it (float64), so the forward and the backward select x or x * 0."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((1, 1, 4, 5)), rng.standard_normal((1, 1, 1, 3, 3))
    depth = np.full((1, 1, 4, 5), 2.0)
    depth[0, 0, 0, 1] = 9.0  # far from every centre: in no bin of any window
    x[0, 0, 0, 1] = bad
    params = dict(padding=1, focal=4.0)
    x, depth, w = (a.astype(dtype) for a in (x, depth, w))
    expected = reference.conv2_5d(x, depth, w, **params)
    assert np.isnan(expected).any()
    g = np.ones(expected.shape, dtype)
    g[0, 0, 0, 0] = bad
    expected_weight = reference.conv2_5d_vjp(g, x, depth, w, **params)["weight"]

    def op(a, b):
        return jax_impl.conv2_5d(a, depth, b, **params)

    with jax.enable_x64(dtype == np.float64):
        for fn in (op, quick_jit(op)):
            np.testing.assert_array_equal(np.isnan(np.asarray(fn(x, w))), np.isnan(expected))
        grad_weight = jax.vjp(op, x, w)[1](g)[1]
    np.testing.assert_array_equal(np.isnan(np.asarray(grad_weight)), np.isnan(expected_weight))
@pytest.mark.parametrize("bad", ["weight", "mask"])
def test_deform_offset_and_mask_gradients_of_an_infinite_weight_or_mask(bad):
    """An infinite weight (infinite column gradients) or mask: the offset and mask
    gradients are the reference's, inf where its per-channel corner sums are finite,
    not the NaN of inf - inf that summing the channels per corner first gives."""
    rng = np.random.default_rng(5)
    args = {"input": rng.uniform(-1, 1, (2, 4, 5, 5)), "offset": rng.uniform(-1.5, 1.5, (2, 18, 5, 5)),
            "weight": rng.uniform(-0.5, 0.5, (3, 4, 3, 3)), "mask": rng.uniform(0, 1, (2, 9, 5, 5))}
    args[bad].reshape(-1)[7] = np.inf
    args = {k: v.astype(np.float32) for k, v in args.items()}
    out = reference.deform_conv2d(**args, padding=1)
    g = np.cos(np.arange(out.size)).reshape(out.shape).astype(np.float32)
    expected = reference.deform_conv2d_vjp(g, **args, padding=1)
    assert not np.isfinite(expected["offset"]).all()
    grads = jax.vjp(lambda a: jax_impl.deform_conv2d(**a, padding=1, impl="native"), args)[1](g)[0]
    for name in ("offset", "mask", "input", "weight"):
        assert mismatch(grads[name], expected[name], Tolerance(rtol=1e-4, atol=1e-4)) <= 1, name
