"""DESIGN.md's processor train step in JAX + optax (the whole step under jax.jit, CPU). See common.py for the
exact maths.

    bench/peers/.venv/bin/python bench/peers/processor_jax.py --mesh mesh_r4.json --latent 128 --layers 8
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import common


def linear_init(key, inputs: int, outputs: int):
    """PyTorch's nn.Linear initialisation: uniform in +-1/sqrt(inputs)."""
    bound = 1.0 / np.sqrt(inputs)
    kw, kb = jax.random.split(key)
    return {"w": jax.random.uniform(kw, (inputs, outputs), minval=-bound, maxval=bound),
            "b": jax.random.uniform(kb, (outputs,), minval=-bound, maxval=bound)}


def mlp_init(key, inputs: int, latent: int):
    k1, k2 = jax.random.split(key)
    return {"hidden": linear_init(k1, inputs, latent), "output": linear_init(k2, latent, latent),
            "scale": jnp.ones(latent), "offset": jnp.zeros(latent)}


def mlp_finish(p, h):
    """h: [rows, D] (first layer's output) -> SiLU -> Linear -> LayerNorm: [rows, D]"""
    y = jax.nn.silu(h) @ p["output"]["w"] + p["output"]["b"]
    mean = y.mean(-1, keepdims=True)
    var = ((y - mean) ** 2).mean(-1, keepdims=True)
    return (y - mean) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["offset"]


def mlp(p, x):
    return mlp_finish(p, x @ p["hidden"]["w"] + p["hidden"]["b"])


def processor(params, x, e, senders, receivers, form: str):
    """x: [N, D], e: [E, D] -> x_L: [N, D]"""
    nodes, d = x.shape
    for layer in params:
        if form == "plain":
            edge_delta = mlp(layer["edge"], jnp.concatenate([e, x[senders], x[receivers]], axis=-1))
        else:
            w = layer["edge"]["hidden"]["w"]  # [3D, D]: rows for e, x_snd, x_rcv
            h = (e @ w[:d] + (x @ w[d:2 * d])[senders] + (x @ w[2 * d:])[receivers]
                 + layer["edge"]["hidden"]["b"])
            edge_delta = mlp_finish(layer["edge"], h)
        e = e + edge_delta
        agg = jax.ops.segment_sum(e, receivers, num_segments=nodes)
        x = x + mlp(layer["node"], jnp.concatenate([x, agg], axis=-1))
    return x


def main():
    args = common.parse_args("JAX")
    nodes, senders, receivers, mesh_level = common.load_mesh(args.mesh)
    senders = jnp.asarray(senders, dtype=jnp.int32)
    receivers = jnp.asarray(receivers, dtype=jnp.int32)
    edges = len(senders)
    d = args.latent
    key = jax.random.PRNGKey(args.seed)
    kx, ke, kt, kp = jax.random.split(key, 4)
    x = jax.random.normal(kx, (nodes, d))
    e = jax.random.normal(ke, (edges, d))
    target = jax.random.normal(kt, (nodes, d))
    params = [{"edge": mlp_init(k1, 3 * d, d), "node": mlp_init(k2, 2 * d, d)}
              for k1, k2 in (jax.random.split(k) for k in jax.random.split(kp, args.layers))]
    optimiser = optax.adam(1e-3, eps=1e-8)
    opt_state = optimiser.init(params)

    def loss_fn(params, x, e, target, senders, receivers):
        return jnp.mean((processor(params, x, e, senders, receivers, args.form) - target) ** 2)

    # The data are arguments, not closed-over constants, so XLA does not fold them into the program.
    @jax.jit
    def train_step(params, opt_state, x, e, target, senders, receivers):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, e, target, senders, receivers)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    state = {"params": params, "opt": opt_state}

    def step():
        state["params"], state["opt"], loss = train_step(state["params"], state["opt"], x, e, target,
                                                         senders, receivers)
        jax.block_until_ready(loss)

    # The warm-up step in common.time_steps also compiles the step.
    times = common.time_steps(step, args.steps)
    # XLA's CPU backend runs each op on a pool of one thread per core.
    common.report(args, "jax", f"jax-{jax.default_backend()}", os.cpu_count(), nodes, edges, mesh_level,
                  times, jax.__version__)


if __name__ == "__main__":
    main()
