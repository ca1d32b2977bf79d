"""Errors raised inside nn modules name the module's own file and line and the user's
snippet line that called it; a class the shim lacks is named as missing, with the list of
what the shim has."""

import re

import pytest

from lua_port import LuaError

MODULE_ERRORS = {
    "local m = nn.Linear(3, 2)\nlocal x = torch.rand(4, 5)\nlocal y = m:forward(x)\nreturn y":
        (3, "nn/Linear.lua", "input has 5 columns but the module expects inputSize = 3"),
    "local net = nn.Sequential():add(nn.Linear(5, 3)):add(nn.Linear(4, 2))\n\n"
    "local y = net:forward(torch.rand(4, 5))":
        (3, "nn/Linear.lua", "In 2 module of nn.Sequential:\n"),
    "local m = nn.SpatialConvolution(1, 2, 3, 3)\nm:forward(torch.rand(2, 2, 5, 5))":
        (2, "nn/SpatialConvolution.lua", "input has 2 planes but the module expects nInputPlane = 1"),
    "local m = nn.SpatialMaxPooling(2, 2)\nm:forward(torch.rand(5, 5))":
        (2, "nn/SpatialMaxPooling.lua", "3D or 4D input tensor expected"),
    "local c = nn.ClassNLLCriterion()\nc:forward(torch.rand(3, 4), torch.Tensor({0, 1, 2}))":
        (2, "nn/ClassNLLCriterion.lua", "target 0 is out of range: classes are 1 to 4 (targets are 1-based)"),
    "local m = nn.View(7)\n\n\nm:forward(torch.rand(3, 4))":
        (4, "nn/View.lua", "input view (3x4) and desired view (7) do not match"),
}


@pytest.mark.parametrize("code", MODULE_ERRORS)
def test_an_error_inside_a_module_names_the_module_line_and_the_snippet_line(lua, code):
    line, module_file, message = MODULE_ERRORS[code]
    with pytest.raises(LuaError) as error:
        lua(code)
    text = str(error.value)
    assert message in text
    assert re.search(rf"lua_port/{re.escape(module_file)}:\d+: ", text), text
    assert error.value.line == line
    assert f"(at snippet line {line})" in text


@pytest.mark.parametrize("package, name", [("nn", "SpatialFullConvolution"), ("torch", "CudaTensor")])
def test_a_missing_class_is_named_with_what_the_shim_has(lua, package, name):
    with pytest.raises(LuaError) as error:
        lua(f"local ok = true\nlocal m = {package}.{name}(1, 1, 3, 3)")
    text = str(error.value)
    assert f"{package}.{name} is not in lua_port's Torch7 shim, which has: " in text
    assert "nil value" not in text and error.value.line == 2
    listed = text.split("which has: ")[1].split(", ")
    expected = {"nn": ["nn.Linear", "nn.Sequential", "nn.SpatialConvolution"],
                "torch": ["torch.DoubleTensor", "torch.FloatTensor", "torch.LongStorage"]}[package]
    assert all(name in listed for name in expected)


def test_lower_case_fields_and_existing_classes_are_not_affected(lua):
    assert lua("return nn.notAField == nil and torch.Tensor ~= nil and type(nn.utils) == 'table'") is True
