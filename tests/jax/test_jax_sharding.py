"""Batch-sharded jit across two (CPU) devices: conv2_5d and deform_conv2d, forward and
gradients, equal the unsharded result, and what is per-sample stays batch-sharded.

XLA_FLAGS must be set before JAX starts, so the check runs in its own process.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    import jax_impl

    assert len(jax.devices()) == 2, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    batch, replicated = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
    rng = np.random.default_rng(0)

    def f32(*shape, low=None, high=None):
        values = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
        return values.astype(np.float32)

    cases = {
        "conv2_5d": (lambda x, d, w, b: jax_impl.conv2_5d(x, d, w, b, padding=1, focal=2.0),
                     [f32(4, 3, 8, 8), f32(4, 1, 8, 8, low=0.5, high=2.0), f32(3, 5, 3, 3, 3),
                      f32(5)], (True, True, False, False), (0, 2, 3)),
        "deform_conv2d": (lambda x, o, w, b, m: jax_impl.deform_conv2d(x, o, w, b, padding=1, mask=m),
                          [f32(4, 4, 8, 8), f32(4, 36, 8, 8, low=-2, high=2), f32(6, 2, 3, 3),
                           f32(6), f32(4, 18, 8, 8, low=0, high=1)],
                          (True, True, False, False, True), (0, 1, 2, 3, 4)),
    }
    for name, (op, args, batched, argnums) in cases.items():
        shardings = [batch if b else replicated for b in batched]
        sharded = [jax.device_put(a, s) for a, s in zip(args, shardings)]
        forward = jax.jit(op)
        expected, out = forward(*args), forward(*sharded)
        assert out.sharding.is_equivalent_to(batch, out.ndim), (name, out.sharding)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5, err_msg=name)
        assert np.abs(np.asarray(expected)).max() > 0

        grad = jax.jit(jax.grad(lambda *a: jnp.sum(op(*a) ** 2), argnums=argnums))
        expected_grads, grads = grad(*args), grad(*sharded)
        for i, e, g in zip(argnums, expected_grads, grads):
            scale = np.abs(np.asarray(e)).max()
            assert scale > 0, (name, i)
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * scale, err_msg=f"{name} d/d{i}")
            if batched[i]:
                assert g.sharding.is_equivalent_to(batch, g.ndim), (name, i, g.sharding)
        print(name, "ok")
""")


def test_batch_sharded_jit_matches_unsharded_and_stays_sharded():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "conv2_5d ok" in result.stdout and "deform_conv2d ok" in result.stdout
