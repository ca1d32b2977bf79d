"""Pallas kernels of the JAX backend, one module per operation (``tanprod``, ``conv2_5d``,
``deform``, ``pool``), each exposing the plain contract functions of the kernel interface
(no autodiff inside, no bias): ``jax_impl`` ties them together with ``jax.custom_vjp``.

Kernels run with ``interpret=True`` on any backend but a GPU (decided in
:mod:`jax_impl.kernels.common`), and through the Pallas Triton backend on a GPU. The
package imports only ``jax`` and ``reference.common``.
"""
