"""Torch7's .t7 files: files written by real Torch7 (tests/lua/data/torchfile) read by
lua_port.load_t7 as torchfile (the outside reader) reads them, and loaded by the shim's
torch.load; what the shim saves read back by torchfile and by the shim, binary and ascii;
damaged files rejected with an error, never a crash."""

from pathlib import Path

import numpy as np
import pytest

from lua_port import LuaError
from lua_port.runtimes import trusted
from lua_port.t7 import LuaRef, T7FormatError, T7Function, T7Object, load_t7, parse_t7
from lua_port.torch7 import Torch7Model

torchfile = pytest.importorskip("torchfile")

DATA = Path(__file__).parent / "data" / "torchfile"
FILES = sorted(p.name for p in DATA.glob("*.t7"))


def _same(mine, theirs, seen=None):
    """lua_port.load_t7's value equals torchfile's (tables by content, references kept)."""
    seen = set() if seen is None else seen
    if id(mine) in seen:
        return True
    if isinstance(mine, (dict, list, T7Object)):
        seen.add(id(mine))
    if isinstance(theirs, torchfile.TorchObject):
        assert isinstance(mine, T7Object) and mine.typename == theirs.torch_typename().decode()
        return _same(mine.fields, theirs._obj, seen)
    if isinstance(theirs, torchfile.LuaFunction):
        assert isinstance(mine, T7Function) and mine.bytecode == theirs.dumped
        return _same(mine.upvalues, theirs.upvalues, seen)
    if isinstance(theirs, np.ndarray):
        assert isinstance(mine, np.ndarray) and mine.dtype == theirs.dtype
        np.testing.assert_array_equal(mine, theirs.reshape(mine.shape) if theirs.size == 0 else theirs)
        return True
    if isinstance(theirs, dict):
        # Both readers keep the file's order: compare entry by entry.
        mine_items = list(enumerate(mine, 1)) if isinstance(mine, list) else list(mine.items())
        assert len(mine_items) == len(theirs)
        for (key, value), (their_key, their_value) in zip(mine_items, theirs.items()):
            if isinstance(key, (LuaRef, T7Object)):
                _same(key.value if isinstance(key, LuaRef) else key, their_key, seen)
            else:
                assert key == _plain(their_key), (key, their_key)
            _same(value, their_value, seen)
        return True
    if isinstance(theirs, list):
        assert isinstance(mine, list) and len(mine) == len(theirs)
        return all(_same(a, b, seen) for a, b in zip(mine, theirs))
    if isinstance(theirs, bytes):
        assert mine == theirs.decode()
        return True
    assert mine == theirs, (mine, theirs)
    return True


def _plain(key):
    if isinstance(key, bytes):
        return key.decode()
    if isinstance(key, float) and key.is_integer():
        return int(key)
    return key


@pytest.mark.parametrize("name", FILES)
def test_files_written_by_torch7_read_as_torchfile_reads_them(name):
    mine = load_t7(DATA / name)
    theirs = torchfile.load(str(DATA / name), use_list_heuristic=False, use_int_heuristic=False)
    assert _same(mine, theirs)


def test_what_the_real_files_hold():
    np.testing.assert_array_equal(load_t7(DATA / "doubletensor.t7"), [[1, 2, 3], [4, 5, 6.9]])
    floats = load_t7(DATA / "floattensor.t7")
    assert floats.dtype == np.float32 and floats.sum() == pytest.approx(12.97241666913, abs=1e-5)
    assert load_t7(DATA / "list_table.t7") == ["hello", "world", "third item", 123.0]
    recursive = load_t7(DATA / "recursive_class.t7")
    assert recursive.typename == "A" and recursive.a is recursive
    table = load_t7(DATA / "recursive_kv_table.t7")
    (key, value), = table.items()
    assert key.value is table and value is table
    gmodule = load_t7(DATA / "gmodule_with_linear_identity.t7")
    linear = [m for m in gmodule.modules if m.typename == "nn.Linear"]
    assert len(linear) == 1 and str(linear[0]).startswith("nn.Linear(")


CHECKS = """
local obj, name = ...
if name == 'doubletensor.t7' then
  return torch.type(obj) == 'torch.DoubleTensor' and obj[2][3] == 6.9 and obj:size(2) == 3
elseif name == 'floattensor.t7' then
  return torch.type(obj) == 'torch.FloatTensor' and math.abs(obj:sum() - 12.97241666913) < 1e-5
elseif name == 'hello=123.t7' then
  return obj.hello == 123
elseif name == 'list_table.t7' then
  return #obj == 4 and obj[1] == 'hello' and obj[4] == 123
elseif name == 'map_table1.t7' then
  return obj[0] == 'zero' and obj[1] == 'hello'
elseif name == 'map_table2.t7' then
  return obj.a == 'non number key' and obj[4] == 123
elseif name == 'custom_class.t7' then
  return torch.type(obj) == 'Blah'
elseif name == 'recursive_class.t7' then
  return torch.type(obj) == 'A' and obj.a == obj
elseif name == 'recursive_kv_table.t7' then
  local k, v = next(obj)
  return k == obj and v == obj
end
"""

NOT_IN_THE_SHIM = {
    "function.t7": "holds a Lua function", "function_upvals.t7": "holds a Lua function",
    "gmodule_with_linear_identity.t7": "unknown Torch class <nn.gModule>",
    "nngraph_node.t7": "unknown Torch class <nngraph.Node>",
    "tds_hash.t7": "unknown Torch class <tds.Hash>", "tds_vec.t7": "unknown Torch class <tds.Vec>",
}


def test_files_written_by_torch7_load_in_the_shim(runtime):
    lua = trusted(runtime)
    # As in Torch7, a file's classes must exist before torch.load: define the test classes.
    lua.lua.execute("if not torch.getmetatable('Blah') then torch.class('Blah') torch.class('A') end")
    check = lua.lua.execute("return function(...) " + CHECKS + " end")
    for name in FILES:
        data = (DATA / name).read_bytes()
        if name in NOT_IN_THE_SHIM:
            with pytest.raises(LuaError, match=NOT_IN_THE_SHIM[name].replace("<", "<")):
                Torch7Model.from_bytes(data, runtime)
            continue
        obj = Torch7Model.from_bytes(data, runtime).obj
        assert lua.call(check, obj, name) is True, name


MAKE_OBJECT = """
torch.manualSeed(11)
local x = torch.randn(3, 4)
local t = {
  number = -1.5e-300, integer = 2^40, string = 'weights', flag = true, off = false,
  list = {1, 'two', {3}},
  double = x, transposed = x:t(), column = x:select(2, 3),
  float = torch.FloatTensor(2, 2):uniform(), long = torch.LongTensor({-2^40, 7}),
  int = torch.IntTensor({-5, 2^31 - 1}), short = torch.ShortTensor({-300}),
  char = torch.CharTensor({-128, 127}), byte = torch.ByteTensor({0, 255}),
  storage = torch.DoubleStorage({1, 2}), empty = torch.Tensor(),
  special = torch.Tensor({1 / 0, -1 / 0, 0 / 0, -0.0, 5e-324}),
  net = nn.Sequential():add(nn.Linear(3, 2)):add(nn.Tanh()),
}
t.self = t
t.alias = t.list
return t
"""


def _lua_object(runtime):
    return Torch7Model(trusted(runtime).lua.execute(MAKE_OBJECT), runtime)


def _check_object(obj, x_type=np.float64):
    x = obj["double"]
    assert x.shape == (3, 4) and x.dtype == x_type
    np.testing.assert_array_equal(obj["transposed"], x.T)
    np.testing.assert_array_equal(obj["column"], x[:, 2])
    assert obj["number"] == -1.5e-300 and obj["integer"] == 2.0**40 and obj["string"] == "weights"
    assert obj["flag"] is True and obj["off"] is False
    assert obj["list"] == [1.0, "two", [3.0]] and obj["alias"] is obj["list"] and obj["self"] is obj
    expected = {"float": np.float32, "long": np.int64, "int": np.int32, "short": np.int16, "char": np.int8,
                "byte": np.uint8}
    for name, dtype in expected.items():
        assert obj[name].dtype == dtype, name
    np.testing.assert_array_equal(obj["long"], [-2**40, 7])
    np.testing.assert_array_equal(obj["int"], [-5, 2**31 - 1])
    np.testing.assert_array_equal(obj["char"], [-128, 127])
    np.testing.assert_array_equal(obj["byte"], [0, 255])
    np.testing.assert_array_equal(obj["storage"], [1.0, 2.0])
    assert obj["empty"].size == 0
    special = obj["special"]
    assert special[0] == np.inf and special[1] == -np.inf and np.isnan(special[2])
    assert special[3] == 0 and np.signbit(special[3]) and special[4] == 5e-324
    assert obj["net"].typename == "nn.Sequential"
    assert [m.typename for m in obj["net"].modules] == ["nn.Linear", "nn.Tanh"]


def test_what_the_shim_saves_torchfile_reads(runtime, tmp_path):
    path = tmp_path / "saved.t7"
    model = _lua_object(runtime)
    model.save(path)
    theirs = torchfile.load(str(path), use_list_heuristic=False, use_int_heuristic=False)
    mine = load_t7(path)
    _check_object(mine)
    assert _same(mine, theirs)
    assert theirs[b"self"] is theirs
    np.testing.assert_array_equal(theirs[b"net"].modules[1].weight, mine["net"].modules[0].weight)


def test_both_runtimes_save_the_same_bytes():
    saved = {name: _lua_object(name).to_bytes() for name in ("luajit", "5.4")
             if name in __import__("lua_port").available_runtimes()}
    assert len(set(saved.values())) == 1


@pytest.mark.parametrize("mode", ["binary", "ascii"])
def test_what_the_shim_saves_the_shim_loads(runtime, mode):
    data = _lua_object(runtime).to_bytes(mode)
    if mode == "ascii":
        assert data.startswith(b"3\n1\n")  # a table, reference 1, one number per line
    _check_object(parse_t7(data))
    again = Torch7Model.from_bytes(data, runtime, mode)
    lua = trusted(runtime)
    check = lua.lua.execute("""return function(t)
        return t.self == t and t.alias == t.list and t.transposed:storage() == t.double:storage()
          and torch.type(t.float) == 'torch.FloatTensor' and torch.type(t.byte) == 'torch.ByteTensor'
          and t.special[3] ~= t.special[3] and 1 / t.special[4] < 0 and t.net.modules[1].weight:dim() == 2
    end""")
    assert lua.call(check, again.obj) is True
    assert again.to_bytes(mode) == data


def test_a_saved_module_computes_the_same_after_loading(runtime):
    model = Torch7Model(trusted(runtime).lua.execute(
        "torch.manualSeed(2) return nn.Sequential():add(nn.SpatialConvolution(2, 3, 3, 3))"
        ":add(nn.SpatialMaxPooling(2, 2):ceil()):add(nn.View(-1)):add(nn.Linear(12, 2))"), runtime)
    x = np.random.default_rng(0).standard_normal((2, 5, 5))
    again = Torch7Model.from_bytes(model.to_bytes(), runtime)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    assert str(again) == str(model)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "huge size", "wrong tag"])
def test_damaged_files_raise_errors(runtime, damage):
    good = (DATA / "doubletensor.t7").read_bytes()
    data = {"truncated": good[:-9], "garbage": b"\x07" * 40,
            "huge size": good.replace(b"\x06\x00\x00\x00\x00\x00\x00\x00", b"\xff" * 7 + b"\x0f", 1),
            "wrong tag": b"\x09" + good[1:]}[damage]
    with pytest.raises(T7FormatError):
        parse_t7(data)
    with pytest.raises(LuaError):
        Torch7Model.from_bytes(data, runtime)
