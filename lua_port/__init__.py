"""Lua port of the Torch7 nn.CustomConv module, run through lupa.

Not implemented yet: the harness lists this backend with no operations until its ops are
added here and registered in ``crossconv/registry.py``.
"""

__all__: list[str] = []
