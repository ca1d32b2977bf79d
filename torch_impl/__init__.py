"""PyTorch backend of crossconv (vectorised torch and Triton kernels).

Not implemented yet: the harness lists this backend with no operations until its ops are
added here and registered in ``crossconv/registry.py``.
"""

__all__: list[str] = []
