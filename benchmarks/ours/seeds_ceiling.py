"""The ceiling of many seeds in one program on this machine. SAC (``--algo sac``): its default-config gradient update
alone (no environments, no host), timed as 200 updates in one compiled loop for 1 seed and vmapped over 8 seeds,
with XLA's FLOP count of one update. PPO (``--algo ppo``): its whole default-config iteration (rollout, GAE, epochs
of minibatch updates), 20 iterations in one compiled loop on the one-device mesh, 1 seed and 8 vmapped. If 8
vmapped seeds reach only a small multiple of one seed's updates/s, no arrangement of the rest of the training loop
can make 8 seeds in one program ≥ 4× faster than 8 sequential runs (case 9's target).

With ``--sweep 1,2,4,8,16`` it times the vmapped program at each number of seeds N and fits seconds per
iteration (PPO) or update (SAC) T(N) = a + b N by least squares: a is what one program pays once whatever the
seeds (dispatch, loop control, small-op overheads), b what each seed adds. Against N sequential runs at T(1) each,
N seeds together can reach at most N (a + b) / (a + N b), and never more than (a + b) / b however many seeds: for
8 seeds at ≥ 4x, a must be at least 6 b.

Run: ``PYTHONPATH=src:benchmarks/ours .venv/bin/python benchmarks/ours/seeds_ceiling.py [--algo ppo]
[--sweep 1,2,4,8,16]`` (one JSON line)."""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import emit

from rlpipe.rl import algorithm
from rlpipe.rl.acting import Transition
from rlpipe.rl.envs import make_env
from rlpipe.rl.sac import algorithm as sac


def best_seconds(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - started)
    return best


def sweep(args, timed) -> dict:
    """``timed(n)``: best seconds of the n-seed vmapped loop. The fit T(N) = a + b N and what it allows."""
    counts = [int(n) for n in args.sweep.split(",")]
    seconds = [timed(n) / args.loop_length for n in counts]
    fit_b, fit_a = np.polyfit(np.asarray(counts, float), np.asarray(seconds), 1)
    t1 = seconds[counts.index(1)] if 1 in counts else fit_a + fit_b
    out = {"sweep_seeds": counts, "sweep_ms_per_step": [1e3 * t for t in seconds],
           "sweep_together_over_sequential": [n * t1 / t for n, t in zip(counts, seconds)],
           "fit_fixed_ms": 1e3 * fit_a, "fit_per_seed_ms": 1e3 * fit_b,
           "fit_8_seeds_at_most": 8 * (fit_a + fit_b) / (fit_a + 8 * fit_b),
           "fit_any_seeds_at_most": (fit_a + fit_b) / fit_b if fit_b > 0 else float("inf")}
    for n, t, r in zip(counts, out["sweep_ms_per_step"], out["sweep_together_over_sequential"]):
        print(f"  {n:3d} seeds: {t:8.3f} ms per step of the loop, {r:5.2f}x sequential", flush=True)
    print(f"  fit: {out['fit_fixed_ms']:.3f} ms + {out['fit_per_seed_ms']:.3f} ms per seed -> 8 seeds at most "
          f"{out['fit_8_seeds_at_most']:.2f}x, any number at most {out['fit_any_seeds_at_most']:.2f}x", flush=True)
    return out


def ppo(args):
    from jax.sharding import PartitionSpec as P

    from rlpipe.rl import mesh
    from rlpipe.rl.envs import env_spec, generate_scenarios, scenarios_to_batch

    plugin = algorithm.get("ppo")
    cfg = algorithm.load_config("ppo", {}, 1)
    spec = env_spec(cfg.env)
    table, _ = generate_scenarios(spec, {}, cfg.scenarios.num_train, 1, cfg.seed)
    scenarios = scenarios_to_batch(table, spec, "train")
    iteration = plugin.make_iteration(cfg, spec, 1)

    def on_mesh(fn):
        return jax.jit(jax.shard_map(fn, mesh=mesh.make_mesh(), in_specs=(P(), P(), P()), out_specs=(P(), P()),
                                     check_vma=False))

    def loop(training, device, key):
        def body(i, carry):
            out = iteration(scenarios, carry[0], carry[1], jax.random.fold_in(key, i))
            return out.training, out.device
        return jax.lax.fori_loop(0, args.iterations, body, (training, device))

    states = [(plugin.init_training_state(cfg, spec, jax.random.PRNGKey(k)),
               plugin.init_device_state(cfg, spec, scenarios, jax.random.PRNGKey(100 + k), 1, None))
              for k in range(args.seeds)]
    cost = on_mesh(lambda t, d, k: iteration(scenarios, t, d, k)[:2]).lower(
        *states[0], jax.random.PRNGKey(0)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops, transcendentals = float(cost["flops"]), float(cost.get("transcendentals", 0.0))
    bytes_accessed = float(cost.get("bytes accessed", 0.0))
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    stacked = [jax.tree.map(lambda *x: jnp.stack(x), *[s[i] for s in states]) for i in (0, 1)]
    one = best_seconds(on_mesh(loop), *states[0], keys[0], repeats=args.repeats)
    many = best_seconds(on_mesh(jax.vmap(loop)), *stacked, keys, repeats=args.repeats)
    extra = {}
    if args.sweep:
        def timed(n):
            init = [(plugin.init_training_state(cfg, spec, jax.random.PRNGKey(k)),
                     plugin.init_device_state(cfg, spec, scenarios, jax.random.PRNGKey(100 + k), 1, None))
                    for k in range(n)]
            tree = [jax.tree.map(lambda *x: jnp.stack(x), *[s[i] for s in init]) for i in (0, 1)]
            return best_seconds(on_mesh(jax.vmap(loop)), *tree, jax.random.split(jax.random.PRNGKey(0), n),
                                repeats=args.repeats)
        args.loop_length = args.iterations
        extra = sweep(args, timed)
    steps = cfg.train.num_envs * cfg.train.num_steps
    one_rate, many_rate = args.iterations / one, args.seeds * args.iterations / many
    emit({"case": "seeds_ceiling", "algo": "ppo", "env_steps_per_iteration": steps,
          "mflop_per_iteration": flops / 1e6, "seeds": args.seeds,
          "one_seed_env_steps_per_s": steps * one_rate, "one_seed_gflops": flops * one_rate / 1e9,
          "vmapped_env_steps_per_s": steps * many_rate, "vmapped_gflops": flops * many_rate / 1e9,
          "vmapped_over_one": many_rate / one_rate,
          "mtranscendentals_per_iteration": transcendentals / 1e6,
          "one_seed_gtranscendentals_per_s": transcendentals * one_rate / 1e9,
          "vmapped_gtranscendentals_per_s": transcendentals * many_rate / 1e9,
          "mbytes_accessed_per_iteration": bytes_accessed / 1e6,
          "one_seed_gbytes_per_s": bytes_accessed * one_rate / 1e9,
          "vmapped_gbytes_per_s": bytes_accessed * many_rate / 1e9, **extra,
          **machine_ceilings(args.repeats)})


def machine_ceilings(repeats: int) -> dict:
    """What this machine's XLA reaches on large elementwise work: transcendental functions per second (a chain of
    tanh/exp over 2^20 floats, each counted once, as XLA's cost analysis counts them) and bytes per second of a
    streaming update (x <- a x + b over 2^24 floats: 2 x 4 bytes per element read and written)."""
    n, k = 2**20, 50
    x = jnp.linspace(-1.0, 1.0, n, dtype=jnp.float32)

    @jax.jit
    def chain(x):
        return jax.lax.fori_loop(0, k, lambda i, x: jnp.tanh(jnp.exp(-x)), x)

    big = jnp.ones(2**24, jnp.float32)

    @jax.jit
    def stream(x):
        return jax.lax.fori_loop(0, k, lambda i, x: x * 0.999 + 0.001, x)

    return {"machine_gtranscendentals_per_s": 2 * n * k / best_seconds(chain, x, repeats=repeats) / 1e9,
            "machine_stream_gbytes_per_s": 8 * big.size * k / best_seconds(stream, big, repeats=repeats) / 1e9}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--algo", default="sac", choices=["sac", "ppo"])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--updates", type=int, default=200, help="sac: updates per timed loop")
    parser.add_argument("--iterations", type=int, default=20, help="ppo: iterations per timed loop")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", default="", help="comma-separated seed counts to time vmapped and fit (e.g. "
                        "1,2,4,8,16)")
    args = parser.parse_args()
    if args.algo == "ppo":
        return ppo(args)
    cfg = algorithm.load_config("sac", {}, 1)
    spec = make_env(cfg.env.id)
    nets = sac.SACNetworks.build(cfg, spec)
    update = sac.make_update_step(nets, sac.make_optimizer(cfg), cfg.train.gamma, cfg.train.tau, -1.0,
                                  axis_name=None)
    state = sac.SAC.init_training_state(cfg, spec, jax.random.PRNGKey(0))
    b = cfg.train.batch_size
    batch = Transition(jnp.zeros((b, spec.obs_dim)), jnp.zeros((b, spec.action_dim)), jnp.zeros(b), jnp.ones(b),
                       jnp.zeros((b, spec.obs_dim)))
    cost = jax.jit(update).lower(state, batch, jax.random.PRNGKey(1)).compile().cost_analysis()
    flops = float((cost[0] if isinstance(cost, list) else cost)["flops"])

    def loop(s, key):
        return jax.lax.fori_loop(0, args.updates, lambda i, s: update(s, batch, jax.random.fold_in(key, i))[0], s)

    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    stacked = jax.tree.map(lambda x: jnp.stack([x] * args.seeds), state)
    one = best_seconds(jax.jit(loop), state, keys[0], repeats=args.repeats)
    many = best_seconds(jax.jit(jax.vmap(loop)), stacked, keys, repeats=args.repeats)
    one_rate, many_rate = args.updates / one, args.seeds * args.updates / many
    extra = {}
    if args.sweep:
        args.loop_length = args.updates
        extra = sweep(args, lambda n: best_seconds(jax.jit(jax.vmap(loop)),
                                                   jax.tree.map(lambda x: jnp.stack([x] * n), state),
                                                   jax.random.split(jax.random.PRNGKey(0), n), repeats=args.repeats))
    emit({"case": "seeds_ceiling", "algo": "sac", "hidden_sizes": list(cfg.network.hidden_sizes), "batch_size": b,
          "mflop_per_update": flops / 1e6, "seeds": args.seeds,
          "one_seed_updates_per_s": one_rate, "one_seed_gflops": flops * one_rate / 1e9,
          "vmapped_updates_per_s": many_rate, "vmapped_gflops": flops * many_rate / 1e9,
          "vmapped_over_one": many_rate / one_rate, **extra})


if __name__ == "__main__":
    main()
