"""Compile time of the SAC train step (the multi-iteration jit(shard_map) call on the device mesh), with JAX's
persistent compilation cache in --cache-dir: run twice against the same folder, the first run is cold and the
second warm."""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402

import jax  # noqa: E402
from common import emit  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache-dir", required=True)
    args = parser.parse_args()
    jax.config.update("jax_compilation_cache_dir", args.cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

    from rlpipe.rl import algorithm, mesh, training
    from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch
    from rlpipe.rl.keys import stage_key
    from rlpipe.rl.sac.algorithm import collect_random

    sac = algorithm.get("sac")
    cfg = algorithm.load_config("sac", {}, mesh.device_count())
    spec = make_env(cfg.env.id)
    train_table, _ = generate_scenarios(spec, {}, cfg.scenarios.num_train, 1, cfg.seed)
    batch = scenarios_to_batch(train_table, spec, "train")
    state = sac.init_training_state(cfg, spec, stage_key(cfg.seed, "init"))
    prefill = collect_random(cfg, spec, batch, stage_key(cfg.seed, "prefill"))
    scenarios = mesh.put_replicated(mesh.host_copy(batch))  # as training.train places them
    run, specs = training.initial_state(sac, cfg, spec, scenarios, state, stage_key(cfg.seed, "train"),
                                        device_data=prefill)
    started = time.perf_counter()
    chunk = training.make_chunk(sac, cfg, spec, specs)  # tracing is part of what a user waits for
    _, compile_s = training.compile_chunk(chunk, run, scenarios, 250)
    emit({"peer": "ours", "case": "compile", "train_step_compile_seconds": compile_s,
          "train_step_trace_and_compile_seconds": time.perf_counter() - started,
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
