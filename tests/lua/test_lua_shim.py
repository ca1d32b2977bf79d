"""The Torch7 shim against Torch7's documented semantics, on each Lua runtime.

Indexing is checked exhaustively on small sizes against a Python model of Torch7's rule
(1-based, inclusive ranges, a negative index z meaning size + z + 1), errors included.
"""

import numpy as np
import pytest

from lua_port import LuaError


def torch7_position(z, n):
    """Torch7's 1-based position of index z in a dimension of size n, or None if out of bound."""
    first = z if z > 0 else n + z + 1
    return first if 1 <= first <= n else None


def torch7_range(a, b, n):
    """Torch7's t[{{a, b}}] on size n: the 1-based inclusive range, or the error's kind."""
    first, last = torch7_position(a, n), torch7_position(b, n)
    if first is None:
        return "start index out of bound"
    if last is None:
        return "end index out of bound"
    if last < first:
        return "end index must be greater or equal to start index"
    return list(range(first, last + 1))


TRY_RANGES = """
local n = ...
local t = torch.range(1, n)
local results = {}
for a = -n - 1, n + 1 do
  for b = -n - 1, n + 1 do
    local ok, value = pcall(function() return t[{{a, b}}] end)
    results[#results + 1] = {a, b, ok and value:totable() or value}
  end
end
return results
"""


@pytest.mark.parametrize("n", [1, 2, 5])
def test_range_indexing_with_negative_ends_follows_torch7(lua, n):
    results = lua(f"local function run(...) {TRY_RANGES} end return run({n})")
    assert len(results) == (2 * n + 3) ** 2
    for a, b, got in results:
        expected = torch7_range(int(a), int(b), n)
        if isinstance(expected, str):
            assert isinstance(got, str) and expected in got, (a, b, got)
        else:
            assert got == [float(v) for v in expected], (a, b, got)


def test_the_seeds_receptive_field_ranges_are_the_windows_of_each_tap(lua):
    # input[{{i, i - k - 1}, {j, j - k - 1}}]: the view of tap (i, j) over all outputs.
    views = lua("""
        local k, x = 3, torch.range(1, 42):view(6, 7)
        local views = {}
        for i = 1, k do for j = 1, k do
          views[#views + 1] = x[{{i, i - k - 1}, {j, j - k - 1}}]
        end end
        return views
    """)
    x = np.arange(1, 43, dtype=float).reshape(6, 7)
    expected = [x[i:i + 4, j:j + 5] for i in range(3) for j in range(3)]
    for got, want in zip(views, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_numbers_select_and_tables_narrow(lua):
    row, element, kept, last = lua("""
        local x = torch.range(1, 12):view(3, 4)
        return x[2], x[{2, -1}], x[{{2}}], x[-1][-2]
    """)
    x = np.arange(1, 13, dtype=float).reshape(3, 4)
    np.testing.assert_array_equal(row, x[1])
    assert element == x[1, -1]
    np.testing.assert_array_equal(kept, x[1:2])  # {2}: the dimension stays, with size 1
    assert last == x[-1, -2]


def test_sub_accepts_negative_bounds(lua):
    got = lua("return torch.range(1, 20):view(4, 5):sub(2, -2, -3, -1)")
    np.testing.assert_array_equal(got, np.arange(1, 21.0).reshape(4, 5)[1:3, 2:5])


@pytest.mark.parametrize("code, message", [
    ("torch.Tensor(3)[{0}]", "index out of bound"),
    ("torch.Tensor(3)[4]", "index out of bound"),
    ("torch.Tensor(3)[-4]", "index out of bound"),
    ("torch.Tensor(3, 2)[{1, 2, 1}]", "too many indices provided"),
    ("torch.Tensor(3)[{{3, 2}}]", "end index must be greater or equal to start index"),
    ("torch.Tensor(3)[{'a'}]", "invalid index"),
    ("torch.Tensor(4):narrow(1, 3, 3)", "bad argument #3 to 'narrow' (out of range"),
    ("torch.Tensor(4):narrow(2, 1, 1)", "bad argument #1 to 'narrow' (dimension 2 out of range of 1D"),
    ("torch.Tensor(4):select(1, 2)", "cannot select on a vector"),
    ("torch.Tensor(4, 2):select(1, 5)", "bad argument #2 to 'select' (out of range"),
    ("torch.Tensor(4):sub(2, 5)", "bad argument #2 to 'sub' (out of range"),
    ("torch.Tensor(2, 3):size(3)", "dimension 3 out of range of 2D tensor"),
    ("torch.Tensor(-1)", "bad argument #1 to 'Tensor' (invalid size -1)"),
    ("torch.Tensor(2, 1.5)", "bad argument #2 to 'Tensor' (invalid size 1.5)"),
    ("torch.Tensor(3):cmul(torch.Tensor(4))", "inconsistent tensor size"),
    ("torch.Tensor(3):copy(torch.Tensor(2))", "inconsistent tensor size"),
    ("torch.Tensor(6):view(4, 2)", "size mismatch"),
    ("torch.Tensor(3):add('x')", "invalid arguments to 'add'"),
    ("torch.DoubleStorage(2)[3]", "index out of bounds"),
])
def test_bad_indices_and_sizes_raise_lua_errors_with_torch7_messages(lua, code, message):
    with pytest.raises(LuaError, match="^snippet:2: ") as error:
        lua(f"local _\n_ = {code}")
    assert message in str(error.value)
    assert error.value.line == 2


def test_views_share_storage_with_their_tensor(lua):
    x, same = lua("""
        local x = torch.zeros(3, 4)
        x:narrow(1, 2, 1):fill(1)          -- row 2
        x:select(2, 4):add(10)              -- column 4
        x[{{1, 2}, {1, 2}}]:add(100)        -- top-left block
        x:sub(3, 3, 2, 3):fill(-1)          -- row 3, columns 2..3
        x:t()[1][3] = 7                     -- through a transpose: x[3][1]
        x[{1, 3}] = 5
        local v = x:view(12)
        v[12] = 42
        return x, v:storage() == x:storage() and x[2]:storage() == x:storage()
    """)
    expected = np.zeros((3, 4))
    expected[1] = 1
    expected[:, 3] += 10
    expected[:2, :2] += 100
    expected[2, 1:3] = -1
    expected[2, 0] = 7
    expected[0, 2] = 5
    expected[2, 3] = 42
    np.testing.assert_array_equal(x, expected)
    assert same is True


IN_PLACE = {
    "add(0.5)": lambda x, y: x + 0.5,
    "add(y)": lambda x, y: x + y,
    "add(2, y)": lambda x, y: x + 2 * y,
    "mul(3)": lambda x, y: 3 * x,
    "div(4)": lambda x, y: x / 4,
    "cmul(y)": lambda x, y: x * y,
    "cdiv(y)": lambda x, y: x / y,
    "tan()": lambda x, y: np.tan(x),
    "cos()": lambda x, y: np.cos(x),
    "pow(3)": lambda x, y: x**3,
    "fill(2)": lambda x, y: np.full_like(x, 2),
    "zero()": lambda x, y: np.zeros_like(x),
    "copy(y)": lambda x, y: y,
}


@pytest.mark.parametrize("call", IN_PLACE)
def test_in_place_methods_change_their_tensor_and_return_it(lua, call):
    x0 = np.array([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]])
    y = np.array([[1.5, 2.0, -0.5], [0.25, 3.0, 1.0]])
    x, returned_self = lua(f"""
        local x = torch.Tensor({{{{0.1, -0.2, 0.3}}, {{0.4, 0.5, -0.6}}}})
        local y = torch.Tensor({{{{1.5, 2.0, -0.5}}, {{0.25, 3.0, 1.0}}}})
        local result = x:{call}
        return x, rawequal(result, x)
    """)
    assert returned_self is True
    np.testing.assert_allclose(x, IN_PLACE[call](x0, y), rtol=1e-15, atol=0)


ALLOCATING = {
    "torch.cmul(x, y)": lambda x, y: x * y,
    "torch.cdiv(x, y)": lambda x, y: x / y,
    "torch.mul(x, 3)": lambda x, y: 3 * x,
    "torch.add(x, y)": lambda x, y: x + y,
    "torch.tan(x)": lambda x, y: np.tan(x),
    "torch.cos(x)": lambda x, y: np.cos(x),
    "torch.pow(x, 2)": lambda x, y: x**2,
    "x:clone()": lambda x, y: x,
}


@pytest.mark.parametrize("call", ALLOCATING)
def test_allocating_forms_return_new_tensors_that_do_not_alias(lua, call):
    x0 = np.array([0.1, -0.2, 0.3])
    y = np.array([1.5, 2.0, -0.5])
    result, x, y_after, distinct = lua(f"""
        local x = torch.Tensor({{0.1, -0.2, 0.3}})
        local y = torch.Tensor({{1.5, 2.0, -0.5}})
        local result = {call}
        local distinct = result:storage() ~= x:storage() and result:storage() ~= y:storage()
        local value = result:clone()
        result:fill(99)                      -- writing the result leaves x and y alone
        return value, x, y, distinct
    """)
    assert distinct is True
    np.testing.assert_allclose(result, ALLOCATING[call](x0, y), rtol=1e-15, atol=0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y_after, y)


def test_in_place_chains_on_one_tensor_alias_as_in_torch7(lua):
    # Lua evaluates the receiver first: u:add(w):tan() is done before the argument
    # u:add(w):cos():pow(2) runs on the SAME tensor, which cmul then multiplies by itself.
    u, w = 0.3, 0.2
    got = lua(f"local u = torch.Tensor({{{u}}}) return u:add({w}):tan():cmul(u:add({w}):cos():pow(2))[1]")
    assert got == pytest.approx(np.cos(np.tan(u + w) + w) ** 4, rel=1e-15)


def test_sizes_dims_sums_and_random_tensors(lua):
    sizes, dims, total, column_sums, rand, empty_dims = lua("""
        torch.manualSeed(7)
        local x = torch.Tensor(2, 3, 4)
        local r = torch.rand(50, 2)
        local y = torch.range(1, 6):view(2, 3)
        return x:size(), x:dim(), y:sum(), y:sum(1), r, torch.Tensor():dim()
    """)
    assert sizes == (2, 3, 4) and dims == 3.0 and empty_dims == 0.0
    assert total == 21.0
    np.testing.assert_array_equal(column_sums, [[5.0, 7.0, 9.0]])
    assert rand.shape == (50, 2) and rand.min() > 0 and rand.max() < 1 and rand.std() > 0.2


def park_miller(seed, count):
    """The shim's generator: state = state * 16807 mod (2^31 - 1), uniform = state / modulus."""
    modulus = 2**31 - 1
    state, values = seed % (modulus - 1) + 1, []
    for _ in range(count):
        state = state * 16807 % modulus
        values.append(state / modulus)
    return values


def test_random_numbers_repeat_after_manual_seed_on_every_runtime(lua):
    code = "torch.manualSeed(3) local a = torch.rand(4) torch.manualSeed(3) return a, torch.rand(4)"
    first, second = lua(code)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, park_miller(3, 4))


def test_torch_class_builds_classes_with_parents_and_type_names(lua):
    types, values = lua("""
        local Base = torch.class('nn.Base7')
        function Base:__init(v) self.v = v end
        function Base:twice() return 2 * self.v end
        local Child, parent = torch.class('nn.Child7', 'nn.Base7')
        function Child:__init(v, extra)
          parent.__init(self, v)
          self.extra = extra
        end
        function Child:total() return self:twice() + self.extra end
        local c = nn.Child7(5, 1)
        return {torch.type(c), torch.type(nn.Base7(1)), torch.type(3), torch.type(torch.Tensor())},
               {c:total(), c:twice(), torch.isTypeOf(c, 'nn.Base7') and 1 or 0}
    """)
    assert types == ["nn.Child7", "nn.Base7", "number", "torch.DoubleTensor"]
    assert values == [11.0, 10.0, 1.0]


def test_module_parameters_follow_torch7(lua):
    counts, shapes, no_bias = lua("""
        local mm = nn.SpatialConvolutionMM(3, 4, 5, 2)   -- kW = 5, kH = 2
        local params, grads = mm:parameters()
        local seed = nn.CustomConv(3)
        local p = seed:parameters()
        return {#params, #grads}, {params[1]:size(), params[2]:size(), grads[1]:size()}, #p
    """)
    assert counts == [2.0, 2.0] and no_bias == 1.0
    assert shapes == [(4, 3 * 2 * 5), (4,), (4, 3 * 2 * 5)]  # weight nOut x (nIn*kH*kW)
