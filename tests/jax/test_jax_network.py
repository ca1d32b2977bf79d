"""The 2.5D convolution tutorial's mini network (Conv2_5d 3->32, k5, pad 2; Conv2d 32->2, k3, pad 1; batch
norm; pixel-wise cross entropy) trained with 100 steps of hand-written Adam on fixed
random RGB-D batches: the loss goes down."""

import jax
import jax.numpy as jnp
import numpy as np

import jax_impl


def _init(key):
    k1, k2 = jax.random.split(key)
    # Kaiming-uniform-like scales, as torch's layers draw them.
    bound_25d = 1 / np.sqrt(3 * 5 * 5)
    bound_conv = 1 / np.sqrt(32 * 3 * 3)
    return {
        "conv2_5d": jax.random.uniform(k1, (3, 32, 3, 5, 5), jnp.float32, -bound_25d, bound_25d),
        "conv": jax.random.uniform(k2, (2, 32, 3, 3), jnp.float32, -bound_conv, bound_conv),
        "gamma": jnp.ones(2, jnp.float32),
        "beta": jnp.zeros(2, jnp.float32),
    }


def _forward(params, images, depth):
    x = jax_impl.conv2_5d(images, depth, params["conv2_5d"], padding=2, focal=1.0)
    x = jax_impl.conv2d(x, params["conv"], padding=1)
    mean = jnp.mean(x, axis=(0, 2, 3), keepdims=True)  # training-mode batch norm
    var = jnp.var(x, axis=(0, 2, 3), keepdims=True)
    x = (x - mean) / jnp.sqrt(var + 1e-5)
    return x * params["gamma"][None, :, None, None] + params["beta"][None, :, None, None]


def _loss(params, images, depth, labels):
    logits = _forward(params, images, depth)
    log_p = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))


def _adam(lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return zeros, zeros, jnp.zeros((), jnp.int32)

    def update(params, grads, state):
        m, v, t = state
        t = t + 1
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        scale = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        params = jax.tree.map(lambda p, m, v: p - scale * m / (jnp.sqrt(v) + eps), params, m, v)
        return params, (m, v, t)

    return init, update


def test_seed_000_network_learns_with_adam():
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        images = rng.uniform(0, 1, (2, 3, 16, 16)).astype(np.float32)
        depth = rng.uniform(0.5, 1.5, (2, 1, 16, 16)).astype(np.float32)
        labels = (images[:, 0] > images[:, 1]).astype(np.int32)  # learnable from the image
        batches.append((images, depth, labels))
    init, update = _adam()
    params = _init(jax.random.key(0))
    state = init(params)

    @jax.jit
    def step(params, state, images, depth, labels):
        loss, grads = jax.value_and_grad(_loss)(params, images, depth, labels)
        params, state = update(params, grads, state)
        return params, state, loss

    losses = []
    for i in range(100):
        params, state, loss = step(params, state, *batches[i % len(batches)])
        losses.append(float(loss))
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert np.isfinite(losses).all()
    assert last < 0.3 * first, (first, last)
