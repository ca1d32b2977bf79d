"""Arguments: the reference's errors for bad calls (eagerly and under jit), dtypes,
non-finite values under jit, and the ``impl`` switch with its kernel interface."""

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
from crossconv.cases import as_outputs
from crossconv.compare import Tolerance, assert_close, mismatch
from crossconv.registry import FP32
from crossconv.registry import OPS as REGISTRY


def _reference_bad_calls():
    """The reference's own table of bad calls (tests/reference/test_validation.py)."""
    path = Path(__file__).parents[1] / "reference" / "test_validation.py"
    spec = importlib.util.spec_from_file_location("reference_bad_calls", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BAD


BAD = _reference_bad_calls()


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


NONFINITE = {
    "conv2d": ("input",), "xcorr2d": ("search",), "xcorr2d_depthwise": ("template",),
    "tanprod_conv2d": ("input",), "conv2_5d": ("depth", "input"),
    "deform_conv2d": ("offset", "input"), "max_pool2d": ("input",), "avg_pool2d": ("input",),
}


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


KERNEL_FILES = {"tanprod_conv2d": "tanprod", "conv2_5d": "conv2_5d", "deform_conv2d": "deform",
                "max_pool2d": "pool", "avg_pool2d": "pool"}


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
        names = ("max_forward", "max_backward", "avg_forward", "avg_backward") if file == "pool" \
            else ("forward", "backward")
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
    prefix = {"max_pool2d": "max_", "avg_pool2d": "avg_"}.get(op, "")
    # Traced, not run: jit traces the primal and the custom_vjp's forward rule apart.
    assert set(calls) == {prefix + "forward", prefix + "backward"}
    assert calls.count(prefix + "backward") == 1
    assert_close(kernel[0], native[0], FP32, f"{op} through the kernel switch")
    for n in names:
        assert_close(kernel[1][n], native[1][n], FP32, f"{op} d/d{n} through the kernel switch")


def test_auto_is_native_on_a_cpu(monkeypatch):
    assert jax.default_backend() == "cpu"
    monkeypatch.setattr("jax_impl.common.kernel_module", lambda *a: pytest.fail("kernel imported"))
    c = case("tanprod_conv2d")
    assert_close(c.call(jax_impl.tanprod_conv2d, impl="auto"),
                 c.call(jax_impl.tanprod_conv2d, impl="native"), FP32, "auto vs native")
