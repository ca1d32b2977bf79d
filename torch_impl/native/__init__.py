"""The ``impl="native"`` contract functions: vectorised torch code for CPU and GPU.

Each module has the file name of its op and the functions of the kernel interface
(``forward``/``backward``; no autograd inside, bias not included), like
``torch_impl.kernels.<file>``, so an op's custom op calls either the same way.
"""
