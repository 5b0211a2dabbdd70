import time; PROCESS_T0 = time.perf_counter()  # noqa: E702  (must be the first statement)

# Peer benchmark: rejax PPO on gymnax CartPole-v1, time to an evaluation threshold.
#
# rejax 0.1.3 ships no per-environment configs inside the package, so the
# hyperparameters are rl-baselines3-zoo's CartPole-v1 PPO values (the rest SB3
# defaults where rejax has the same knob), mapped onto rejax's parameter names.
# rejax has no schedule for clip_eps, so a two-line subclass sets clip_eps from the
# global step before each iteration, exactly like SB3's linear clip_range schedule.
# See README.md and _rejax.py for how the time is measured.
#
# Progress goes to stderr; the last stdout line is one JSON object.

import argparse
import os
import sys

sys.dont_write_bytecode = True  # keep __pycache__ of the helper modules out of the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import claim_stdout, emit, log, versions  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description="rejax PPO peer benchmark (gymnax CartPole-v1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=475.0)
    p.add_argument("--eval-every", type=int, default=2048)
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument("--max-env-steps", type=int, default=100_000)
    return p.parse_args()


ENV_ID = "CartPole-v1"

# zoo / SB3 name -> rejax name:
#   n_envs 8 -> num_envs; n_steps 32 -> num_steps; batch_size 256 -> num_minibatches
#   = n_envs * n_steps / batch_size = 1; n_epochs 20 -> num_epochs; gae_lambda 0.8;
#   gamma 0.98; ent_coef 0.0; learning_rate lin_1e-3 and clip_range lin_0.2 -> see
#   schedules below; SB3 defaults: vf_coef 0.5, MLP [64, 64] tanh.
LR0 = 1e-3
CLIP0 = 0.2
REJAX_HPARAMS = dict(
    num_envs=8,
    num_steps=32,
    num_minibatches=1,
    num_epochs=20,
    gae_lambda=0.8,
    gamma=0.98,
    ent_coef=0.0,
    vf_coef=0.5,
    clip_eps=CLIP0,
    agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
)


def main():
    args = parse_args()
    claim_stdout()

    import copy

    import jax.numpy as jnp
    import rejax

    from _rejax import REJAX_VERSION_PACKAGES, EvalRecorder, install_eval_callback, run_timed

    log(f"imports done after {time.perf_counter() - PROCESS_T0:.1f}s")

    hp = REJAX_HPARAMS
    total = args.max_env_steps
    steps_per_iter = hp["num_envs"] * hp["num_steps"]
    updates_per_iter = hp["num_epochs"] * hp["num_minibatches"]

    # SB3/zoo "lin_X": value = X * progress_remaining, where progress_remaining =
    # 1 - num_timesteps / total_timesteps is computed right after each rollout and
    # held for all epochs of that update. Actor and critic each have their own Adam
    # in rejax; each takes updates_per_iter steps per iteration.
    def lr_schedule(count):
        iteration = count // updates_per_iter
        progress_remaining = 1.0 - (iteration + 1) * steps_per_iter / total
        return LR0 * jnp.clip(progress_remaining, 0.0, 1.0)

    class ZooScheduledPPO(rejax.PPO):
        def train_iteration(self, ts):
            progress_remaining = 1.0 - (ts.global_step + steps_per_iter) / total
            clip = self.clip_eps * jnp.clip(progress_remaining, 0.0, 1.0)
            return rejax.PPO.train_iteration(self.replace(clip_eps=clip), ts)

    t_setup = time.perf_counter()
    algo = ZooScheduledPPO.create(
        env=ENV_ID,
        total_timesteps=total,
        eval_freq=args.eval_every,
        learning_rate=lr_schedule,
        **copy.deepcopy(hp),
    )

    actor = algo.actor

    def policy_fn(params, obs):
        # deterministic action: argmax of the categorical logits
        action = actor.apply(params, obs, method=lambda m, o: m._action_dist(o).mode())
        return jnp.squeeze(action, 0)

    recorder = EvalRecorder(args.threshold, PROCESS_T0)
    algo = install_eval_callback(algo, recorder, policy_fn, args.eval_episodes)
    setup_s = time.perf_counter() - t_setup

    result = {
        "peer": "rejax",
        "algo": "ppo",
        "case": "threshold",
        "env": f"gymnax/{ENV_ID}",
        "seed": args.seed,
        "versions": versions(*REJAX_VERSION_PACKAGES),
        "threshold": args.threshold,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "max_env_steps": args.max_env_steps,
        "hyperparams_source": "rl-baselines3-zoo ppo.yml CartPole-v1 (+ SB3 defaults), "
                              "mapped to rejax (rejax ships no CartPole config)",
        "hyperparams": {
            **{k: v for k, v in hp.items() if k != "agent_kwargs"},
            "activation": hp["agent_kwargs"]["activation"],
            "hidden_layer_sizes": list(hp["agent_kwargs"]["hidden_layer_sizes"]),
            "learning_rate": f"lin_{LR0}",
            "clip_eps": f"lin_{CLIP0}",
            "max_grad_norm": "inf (rejax default; rejax only has element-wise clipping)",
        },
        "setup_seconds": setup_s,
    }
    result.update(run_timed(algo, args.seed, recorder))
    result["process_seconds_total"] = time.perf_counter() - PROCESS_T0
    emit(result)


if __name__ == "__main__":
    main()
