"""JaxMARL's own IPPO baseline (``baselines/IPPO/ippo_ff_mpe.py`` of the JaxMARL repository, its shipped config
``config/ippo_ff_mpe.yaml``), run here at a given env-step budget on MPE_simple_spread_v3, several seeds vmapped as
the script itself does. The script is not on the package index (the jaxmarl wheel and sdist leave baselines/ out):
it is read from a clone of the repository (``--repo``, a git directory; e.g. what the project's search tool fetched)
into a temporary folder and imported; this wrapper only sets TOTAL_TIMESTEPS, NUM_SEEDS and SEED, turns wandb off and
reads the training returns the script's own LogWrapper records.

Prints one JSON object last: each seed's mean training return over the last ``--last-updates`` updates as the
script's MPELogWrapper records it (an agent's episode return times the number of agents: the team's sum of the
agents' returns, which rlpipe reports, when the agents share the reward, as in simple_spread without collisions),
and the wall seconds.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

DEFAULT_REPO = "/work/.mirror/FLAIROx+JaxMARL/repo"
SCRIPT, CONFIG = "baselines/IPPO/ippo_ff_mpe.py", "baselines/IPPO/config/ippo_ff_mpe.yaml"


def git_show(repo: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", repo, "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", default=os.environ.get("JAXMARL_REPO", DEFAULT_REPO))
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--last-updates", type=int, default=5)
    args = parser.parse_args()
    os.environ["WANDB_MODE"] = "disabled"
    with tempfile.TemporaryDirectory(prefix="ippo-") as tmp:
        (Path(tmp) / "ippo_ff_mpe.py").write_text(git_show(args.repo, SCRIPT))
        import yaml

        config = yaml.safe_load(git_show(args.repo, CONFIG))
        commit = subprocess.run(["git", "--git-dir", args.repo, "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        spec = importlib.util.spec_from_file_location("ippo_ff_mpe", Path(tmp) / "ippo_ff_mpe.py")
        module = importlib.util.module_from_spec(spec)
        real_stdout = sys.stdout
        sys.stdout = sys.stderr  # jaxmarl prints on import
        try:
            spec.loader.exec_module(module)
        finally:
            sys.stdout = real_stdout
    import jax
    import numpy as np
    import wandb

    wandb.init(mode="disabled")
    config.update(TOTAL_TIMESTEPS=args.steps, NUM_SEEDS=args.seeds, SEED=args.seed)
    started = time.perf_counter()
    train = jax.jit(module.make_train(dict(config)))
    out = jax.block_until_ready(jax.vmap(train)(jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)))
    seconds = time.perf_counter() - started
    metrics = out["metrics"]
    # per update: mean over the actors (agents x envs) of the returns of episodes that ended, as the script plots
    returned, ended = np.asarray(metrics["returned_episode_returns"]), np.asarray(metrics["returned_episode"])
    last = slice(-args.last_updates, None)
    team = [float(returned[k, last].mean()) for k in range(args.seeds)]  # MPELogWrapper: already x num_agents
    print(json.dumps({"peer": "jaxmarl-ippo", "script": SCRIPT, "commit": commit, "env": config["ENV_NAME"],
                      "env_kwargs": config["ENV_KWARGS"], "total_timesteps": args.steps,
                      "updates": int(returned.shape[1]), "seeds": args.seeds, "seed": args.seed,
                      "team_return_last_updates": team, "episodes_ended_fraction": float(ended.mean()),
                      "seconds": seconds, "process_seconds_total": time.perf_counter() - STARTED,
                      "hyperparams": {k: v for k, v in config.items() if k.isupper()}}), flush=True)


if __name__ == "__main__":
    main()
