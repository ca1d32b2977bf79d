"""The Tensor and torch functions Torch7 models lean on, against NumPy: cat, matrix
products in their Torch7 argument forms, reductions with dimensions (indices as a
LongTensor), sort, squeeze, conversions between tensor types, comparisons."""

import numpy as np


def test_cat_in_its_forms(lua):
    pairs, table, first, typename = lua("""
        local a, b = torch.range(1, 6):view(2, 3), torch.range(7, 12):view(2, 3)
        local r = torch.Tensor()
        r:cat(a, b, 1)
        return torch.cat(a, b), torch.cat({a, b, a}, 1), r, torch.type(torch.cat(a:float(), b:float()))
    """)
    a, b = np.arange(1, 7.0).reshape(2, 3), np.arange(7, 13.0).reshape(2, 3)
    np.testing.assert_array_equal(pairs, np.concatenate([a, b], 1))
    np.testing.assert_array_equal(table, np.concatenate([a, b, a], 0))
    np.testing.assert_array_equal(first, np.concatenate([a, b], 0))
    assert typename == "torch.FloatTensor"


def test_matrix_products_in_torch7s_argument_forms(lua):
    rng = np.random.default_rng(0)
    m, a, b, v = rng.normal(size=(2, 4)), rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), rng.normal(size=3)
    lit = {name: "torch.Tensor(" + np.array2string(x, separator=",", floatmode="unique").replace("[", "{")
           .replace("]", "}") + ")" for name, x in (("m", m), ("a", a), ("b", b), ("v", v))}
    results = lua(f"""
        local m, a, b, v = {lit['m']}, {lit['a']}, {lit['b']}, {lit['v']}
        local r1 = m:clone():addmm(a, b)                    -- r = r + a b
        local r2 = torch.Tensor():addmm(0.5, m, 2, a, b)    -- r = 0.5 m + 2 a b
        local r3 = m:clone():addmm(0, m, 1, a, b)           -- beta 0: m is not read
        local nan = torch.Tensor(2, 4):fill(0 / 0):addmm(0, 1, a, b)
        return r1, r2, r3, torch.mm(a, b), torch.mv(a, v), torch.addr(torch.zeros(3, 3), v, v), nan
    """)
    r1, r2, r3, mm, mv, outer, nan = results
    np.testing.assert_allclose(r1, m + a @ b, rtol=1e-14)
    np.testing.assert_allclose(r2, 0.5 * m + 2 * a @ b, rtol=1e-14)
    np.testing.assert_allclose(r3, a @ b, rtol=1e-14)
    np.testing.assert_allclose(mm, a @ b, rtol=1e-14)
    np.testing.assert_allclose(mv, a @ v, rtol=1e-14)
    np.testing.assert_allclose(outer, np.outer(v, v), rtol=1e-14)
    np.testing.assert_allclose(nan, a @ b, rtol=1e-14)


def test_reductions_with_dimensions_and_sort(lua):
    values, indices, index_type, mins, sums, means, sorted_, order, down = lua("""
        local x = torch.Tensor({{3, 1, 2}, {0, 5, 5}})
        local values, indices = x:max(2)
        local sorted, order = torch.sort(x, 2)
        local down = x:sort(2, true)
        return values, indices, torch.type(indices), x:min(1), x:sum(2), x:mean(1), sorted, order, down
    """)
    x = np.array([[3, 1, 2], [0, 5, 5.0]])
    np.testing.assert_array_equal(values, [[3], [5]])
    np.testing.assert_array_equal(indices, [[1], [2]])  # 1-based; the first of equal maxima
    assert index_type == "torch.LongTensor"
    np.testing.assert_array_equal(mins, [[0, 1, 2]])
    np.testing.assert_array_equal(sums, x.sum(1, keepdims=True))
    np.testing.assert_array_equal(means, x.mean(0, keepdims=True))
    np.testing.assert_array_equal(sorted_, np.sort(x, 1))
    np.testing.assert_array_equal(order, [[2, 3, 1], [1, 2, 3]])
    np.testing.assert_array_equal(down, -np.sort(-x, 1))


def test_views_squeeze_types_and_comparisons(lua):
    squeezed, number, narrowed, long, byte, eq, count, exp, log = lua("""
        local x = torch.range(1, 6):view(1, 2, 3)
        local converted = torch.Tensor({-1.7, 2.9, 300.2})
        return x:squeeze():size(), torch.Tensor({{4}}):squeeze(),
               x:transpose(2, 3):narrow(2, 2, 2):select(1, 1),
               converted:long(), converted:byte(), x:eq(3), x:gt(2):sum(), torch.exp(torch.Tensor({0, 1})),
               torch.Tensor({1, math.exp(2)}):log()
    """)
    assert squeezed == (2, 3) and number == 4.0
    np.testing.assert_array_equal(narrowed, np.arange(1, 7.0).reshape(2, 3).T[1:3])
    np.testing.assert_array_equal(long, [-1, 2, 300])     # C casts truncate toward zero
    np.testing.assert_array_equal(byte, [255, 2, 44])     # and wrap into 0..255
    np.testing.assert_array_equal(eq, [[[0, 0, 1], [0, 0, 0]]])
    assert count == 4.0
    np.testing.assert_allclose(exp, [1, np.e], rtol=1e-15)
    np.testing.assert_allclose(log, [0, 2], rtol=1e-15, atol=1e-15)


def test_random_numbers_repeat_with_manual_seed(lua):
    a, b = lua("torch.manualSeed(5) local a = torch.randn(3, 2) "
               "torch.manualSeed(5) return a, torch.randn(3, 2)")
    np.testing.assert_array_equal(a, b)
    assert a.std() > 0
