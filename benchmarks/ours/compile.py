"""Compile time of the SAC train step (the pmapped multi-iteration call), with JAX's persistent compilation cache
in --cache-dir: run twice against the same folder, the first run is cold and the second warm."""

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

    from rlpipe.rl import parallel
    from rlpipe.rl.config import load_sac_config
    from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch
    from rlpipe.rl.sac import train as sac

    cfg = load_sac_config({}, jax.local_device_count())
    spec = make_env(cfg.env.id)
    train_table, _ = generate_scenarios(spec, {}, cfg.scenarios.num_train, 1, cfg.seed)
    batch = scenarios_to_batch(train_table, spec, "train")
    state = sac.init_training_state(cfg, spec, sac.stage_key(cfg.seed, "init"))
    prefill = sac.collect_random(cfg, spec, batch, sac.stage_key(cfg.seed, "prefill"))
    run = sac.initial_run_state(cfg, spec, batch, state, prefill, sac.stage_key(cfg.seed, "train"),
                                parallel.device_count())
    started = time.perf_counter()
    chunk = sac.make_train_chunk(cfg, spec, parallel.device_count())  # tracing is part of what a user waits for
    _, compile_s = parallel.compile_chunk(chunk, run, batch, 250)
    emit({"peer": "ours", "case": "compile", "train_step_compile_seconds": compile_s,
          "train_step_trace_and_compile_seconds": time.perf_counter() - started,
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
