"""lua_port's trusted ops refuse what cannot fit before any copy or Lua allocation: huge
paddings and inputs (MemoryError naming the argument), None, lists and other kinds of
tensor (TypeError: NumPy arrays of float32 or float64 only, as in the reference)."""

import time

import numpy as np
import pytest

from lua_port import CustomConv, conv2d, conv2d_vjp, tanprod_conv2d, tanprod_conv2d_vjp
from lua_port._ops import MAX_LUA_NUMBERS

X = np.ones((2, 4, 7, 7))
W = np.ones((6, 4, 3, 3))


@pytest.mark.parametrize("op", [conv2d, tanprod_conv2d])
@pytest.mark.parametrize("padding", [10**6, 2**63 - 1, (0, 10**8)])
def test_a_padding_whose_output_cannot_fit_is_refused_up_front(runtime, op, padding):
    start = time.monotonic()
    with pytest.raises((MemoryError, ValueError), match="padding"):  # Lua 5.4 took 2**63-1 before
        op(X, W, padding=padding, runtime=runtime)
    assert time.monotonic() - start < 1  # LuaJIT grew past 3 GB and ran on before


def test_checks_come_before_any_copy(runtime):
    huge = np.broadcast_to(np.float32(1), (1, 1, 30000, 30000))  # no memory; float64 would be 7 GB
    weight = np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="stride"):
        tanprod_conv2d(huge, weight, stride=0, runtime=runtime)
    with pytest.raises(MemoryError, match=f"the input would hold 900000000 numbers .*more than the "
                                          f"{MAX_LUA_NUMBERS}"):
        tanprod_conv2d(huge, weight, runtime=runtime)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        conv2d_vjp(huge, X, W, runtime=runtime)


@pytest.mark.parametrize("bad, error, message", [
    (None, TypeError, "input must be a numpy.ndarray of float32 or float64, got None"),
    ([[1.0, 2.0], [3.0]], TypeError, "input must be a numpy.ndarray of float32 or float64, got list"),
    (np.ones((6, 4, 3, 3)).tolist(), TypeError, "input must be a numpy.ndarray .* got list"),
    ("text", TypeError, "input must be a numpy.ndarray of float32 or float64, got str"),
    (np.ones((6, 4, 3, 3), np.int64), TypeError, "input must be a float32 or float64 tensor, got dtype"),
])
def test_tensors_that_are_not_arrays_are_named(bad, error, message):
    with pytest.raises(error, match=message):
        conv2d(bad, W)
    with pytest.raises(error, match=message.replace("input", "weight")):
        tanprod_conv2d_vjp(np.ones((2, 6, 5, 5)), X, bad)


def test_the_module_refuses_a_padding_that_cannot_fit(runtime):
    module = CustomConv(1, 1, 3, 3, 1, 1, 10**5, runtime=runtime)
    # The shared size check (this machine's memory) or lua_port's (what fits in Lua): both name it.
    with pytest.raises(MemoryError, match=r"padding=\(100000, 100000\)"):
        module.forward(np.ones((1, 5, 5)))
