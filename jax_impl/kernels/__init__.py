"""Pallas kernels of the JAX backend, one module per operation (``tanprod``, ``conv2_5d``,
``deform``, ``pool``, ``depthaware``), each exposing the plain contract functions of the
kernel interface (no autodiff inside, no bias): ``jax_impl`` ties them together with
``jax.custom_vjp``.

Kernels run with ``interpret=True`` on any backend but a GPU (decided in
:mod:`jax_impl.kernels.common`), and through the Pallas Triton backend on a GPU. The
package imports only ``jax`` and the reference's checks and geometry, except
``depthaware``, which shares the similarity formula and the window centres of
:mod:`jax_impl.depthaware`.
"""
