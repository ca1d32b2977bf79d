"""Every Lua test runs on each Lua runtime lupa has here (LuaJIT 2.1 and Lua 5.4)."""

import pytest

lua_port = pytest.importorskip("lua_port", reason="lupa is not installed")
RUNTIMES = lua_port.available_runtimes()


@pytest.fixture(params=RUNTIMES, scope="session")
def runtime(request):
    return request.param


@pytest.fixture(scope="session")
def lua(runtime):
    """Run a Torch7 snippet on the test's runtime: ``lua("return 1 + 1") == 2.0``."""

    def run(code, **limits):
        return lua_port.run(code, runtime=runtime, **limits)

    return run
