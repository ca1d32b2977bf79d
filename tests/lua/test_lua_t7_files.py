"""torch.save / torch.load in a snippet reach only the files the caller grants to that
run (lua_port.run(code, files=...)); lua_port's own Lua state reaches none."""

from pathlib import Path

import numpy as np
import pytest

from lua_port import LuaError, load_t7
from lua_port.runtimes import trusted

DATA = Path(__file__).parent / "data" / "torchfile"


def test_a_snippet_saves_and_loads_a_granted_file(lua, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, typename, rows = lua("""
        local m = nn.Sequential():add(nn.Linear(3, 2)):add(nn.Tanh())
        torch.save('model.t7', m)
        torch.save('model_ascii.t7', m, 'ascii')
        local back = torch.load('model.t7')
        local same = torch.load('model_ascii.t7', 'ascii').modules[1].weight:equal(m.modules[1].weight)
        return torch.typename(back), torch.typename(back.modules[2]), back.modules[1].weight:size(1)
    """, files={"model.t7": "rw", "model_ascii.t7": "rw"})
    assert (name, typename, rows) == ("nn.Sequential", "nn.Tanh", 2.0)
    saved = load_t7(tmp_path / "model.t7")
    ascii = load_t7(tmp_path / "model_ascii.t7")
    np.testing.assert_array_equal(saved.modules[0].weight, ascii.modules[0].weight)


def test_a_snippet_loads_a_file_written_by_torch7(lua):
    path = str(DATA / "doubletensor.t7")
    assert lua(f"return torch.load('{path}')[2][3]", files=[path]) == 6.9


@pytest.mark.parametrize("code, files, message", [
    ("return torch.load('/etc/hostname')", None, "is not a file granted to this snippet"),
    ("return torch.load('other.t7')", {"model.t7": "r"}, "is not a file granted to this snippet"),
    ("return torch.load('../model.t7')", {"model.t7": "r"}, "'..' is not allowed"),
    ("torch.save('model.t7', {1})", {"model.t7": "r"}, "is granted for reading only"),
    ("return torch.load('out.t7')", {"out.t7": "w"}, "is granted for writing only"),
    ("return torch.DiskFile('/etc/hostname', 'r')", None, "is not a file granted to this snippet"),
])
def test_files_not_granted_are_lua_errors(lua, tmp_path, monkeypatch, code, files, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.t7").write_bytes((DATA / "hello=123.t7").read_bytes())
    with pytest.raises(LuaError, match=message):
        lua(code, files=files)


def test_lua_ports_own_state_has_no_files(runtime):
    lua = trusted(runtime)
    with pytest.raises(LuaError, match="no file access here"):
        lua.call(lua.torch.save, "model.t7", lua.lua.table())
    with pytest.raises(LuaError, match="no file access here"):
        lua.call(lua.torch.load, "model.t7")
