"""The config sections every algorithm shares (environment, scenarios, networks, the training loop's cadence,
tracking) and the top-level sections of ``parameters.yml`` (distributed, evaluation, demonstrations, compare).

Each default lives here (or in an algorithm's section subclass) and nowhere else: the shipped parameter files show
only what users change, and the JSON Schemas are generated from these classes. Nothing here names an algorithm or
an environment family; what only one algorithm has (SAC's ``init_from_buffer``) is in its own section subclass.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from rlpipe.rl.config.fields import (
    Activation,
    Config,
    HiddenSizes,
    Kwargs,
    ModulePath,
    Names,
    ObservationMask,
    Ranges,
    ResumeMode,
    RunNames,
    spec,
)

class EnvConfig(Config):
    """The environment."""

    id: str = spec("Pendulum-v1", doc="gymnax environment id; 'gymnasium:<id>' (any registered Gymnasium env, "
                                      "stepped on the host); 'brax:<name>' (a Brax env, optional extra); or "
                                      "'package.module:ClassName' of a user JAX env")
    kwargs: Kwargs = spec(default_factory=dict,
                                  doc="keyword arguments of the env's constructor (gymnasium.make, a Brax env)")
    vector: Literal["sync", "async"] = spec("sync", doc="how a Gymnasium env's copies are stepped: in the training "
                                                        "process (sync) or in worker processes (async)")
    workers: int = spec(2, ge=1, le=1024, doc="worker processes per device for vector: async")
    metrics: Names = spec((), doc="step info values evaluation reports per scenario (mean over the "
                                            "episode and final value; booleans as rates), e.g. is_success")
    observation_mask: ObservationMask = spec(None, doc="the observation indices the agent sees (a partially "
                                                        "observable task), or a named variant: 'no_velocity' "
                                                        "(CartPole, Pendulum, MountainCar, Acrobot); null: all")


def env_config(default_id: str):
    """An ``env`` section default for an algorithm whose usual environment is ``default_id``."""
    return spec(default_factory=lambda: EnvConfig(id=default_id), doc="the environment")


class CurriculumConfig(Config):
    """A failure-weighted curriculum over the training scenarios."""

    every_env_steps: int = spec(20_000, ge=1, doc="env steps between re-weightings: the current deterministic "
                                                  "policy is evaluated on every training scenario")
    temperature: float = spec(1.0, gt=0.0, le=1e6, doc="softmax temperature, in standard deviations of the scores "
                                                       "over the training scenarios (lower: sharper)")
    floor: float = spec(0.1, ge=0.0, le=1.0, doc="share of the draws that stays uniform, so no scenario is starved")
    metric: str | None = spec(None, doc="a success metric named in env.metrics (its final value, 1 = success): "
                                        "scenarios are weighted by failure; null: by negative return")


class ScenarioConfig(Config):
    """Training and held-out evaluation scenarios: environment parameters drawn per scenario."""

    num_train: int = spec(256, ge=1, le=10**7, doc="training scenarios (sampled at every episode reset)")
    num_eval: int = spec(64, ge=1, le=10**7, doc="held-out evaluation scenarios (each run once, deterministically)")
    ranges: Ranges = spec(
        default_factory=dict,
        doc="env parameter -> [low, high] drawn uniformly per scenario; parameters not named keep their defaults",
    )
    seed: int | None = spec(None, ge=0, lt=2**31, doc="seed of the scenario tables; null: the run's seed (every "
                                                         "seed of a multi-seed run shares the run's scenarios)")
    curriculum: CurriculumConfig | None = spec(None, doc="draw training scenarios by failure: {every_env_steps, "
                                                         "temperature, floor, metric}; null: uniformly")


class ModuleConfig(Config):
    """A flax module of the user's (or the project's) as the torso of one network."""

    module: ModulePath = spec(doc="'package.module:ClassName' of a flax.linen.Module: built with kwargs, called "
                                  "with a batch of inputs [batch, features], returns features [batch, width] (the "
                                  "algorithm adds the output layer)")
    kwargs: Kwargs = spec(default_factory=dict, doc="keyword arguments of the module's constructor")


class NetworkConfig(Config):
    """The networks' shape."""

    hidden_sizes: HiddenSizes = spec((64, 64), doc="hidden layer widths of actor and critics")
    activation: Activation = spec("relu", doc="hidden activation")
    module: ModulePath | None = spec(None, doc="'package.module:ClassName' of a flax module used as the torso of "
                                               "the actor and of every critic (in place of the hidden_sizes MLP), "
                                               "e.g. rlpipe.rl.networks:ResidualMLP; null: the MLP")
    kwargs: Kwargs = spec(default_factory=dict, doc="keyword arguments of network.module's constructor")
    actor: ModuleConfig | None = spec(None, doc="the actor's own torso module (overrides network.module for it)")
    critic: ModuleConfig | None = spec(None, doc="the critics' own torso module (overrides network.module for them)")

    def torso(self, role: str) -> dict[str, Any] | None:
        """``{"module", "kwargs"}`` of role ``actor`` or ``critic``'s torso; None: the hidden_sizes MLP."""
        own = getattr(self, role)
        if own is not None:
            return {"module": own.module, "kwargs": dict(own.kwargs)}
        if self.module is not None:
            return {"module": self.module, "kwargs": dict(self.kwargs)}
        return None


class LoopConfig(Config):
    """What every training loop has: budget, env count, and the cadence of logs, evaluations and checkpoints."""

    total_env_steps: int = spec(20_000, ge=1, le=2**53, doc="env steps in all")
    num_envs: int = spec(8, ge=1, le=2**20, doc="parallel environments over all devices")
    log_every_env_steps: int = spec(2_000, ge=1, doc="env steps between progress lines (one compiled call)")
    history_points_per_log: int = spec(50, ge=0, le=10**5,
                                       doc="training-history points recorded inside each compiled call (evenly "
                                           "spaced iterations, each point the mean of its share), carried out at "
                                           "its end: no extra host wake-ups; 0: one point per progress line")
    eval_every_env_steps: int = spec(5_000, ge=0, doc="env steps between evaluations on the eval scenarios; 0: none")
    checkpoint_every_env_steps: int = spec(10_000, ge=1, doc="env steps between periodic checkpoints")
    checkpoint_dir: str = spec("data/06_models/checkpoints", doc="where periodic checkpoints go, one folder a run")
    keep_checkpoints: int = spec(3, ge=1, doc="periodic checkpoints kept per run (newest)")
    resume: ResumeMode = spec(False, doc="true: continue the newest interrupted run from its newest intact "
                                         "checkpoint (its config must be this one); 'auto': continue the newest "
                                         "interrupted run of this same config if there is one, else start fresh "
                                         "(what a restarted or requeued job sets; also RLPIPE_RESUME=auto)")
    init_from: str | None = spec(None, doc="version of this pipeline's stored agent (catalog version string of "
                                           "<algo>.agent, or 'latest') whose parameters the run starts from; "
                                           "null: fresh init")
    init_from_optimizer: bool = spec(False, doc="also take the stored agent's optimizer state")
    num_seeds: int = spec(1, ge=1, le=1024, doc="independent agents trained together in one compiled program, "
                                                "seeds seed, seed+1, ...: each its own init, RNG streams and buffers; "
                                                "evaluated on the same scenarios and aggregated (IQM, 95% CI)")
    seeds_per_device: int | None = spec(None, ge=1, le=1024,
                                        doc="with num_seeds > 1, how many seeds each device trains (vmapped): the "
                                            "seeds are spread over num_seeds / seeds_per_device groups of devices, "
                                            "each seed's data split over its group only, and no collective crosses "
                                            "seeds while training; null: over several processes as many groups as "
                                            "divide both num_seeds and the device count, in one process one group "
                                            "(every seed over every device)")


class EarlyStoppingConfig(Config):
    """When training stops before its budget."""

    target_return: float | None = spec(475.0, doc="stop once the windowed return reaches this; null: never stop")
    monitor: Literal["eval", "train"] = spec("eval", doc="held-out evaluations, or training episodes")
    window: int = spec(1, ge=1, doc="values averaged")
    patience: int = spec(1, ge=1, doc="consecutive checks at or above target before stopping")


# ``register`` is also the name of a method of BaseModel's metaclass (abc.ABCMeta.register), which instances do not
# see: the field works, pydantic's warning about the name is moot.
warnings.filterwarnings("ignore", message='Field name "register" in "TrackingConfig" shadows', category=UserWarning)


class TrackingConfig(Config):
    """What goes to MLflow (and TensorBoard) besides the pipeline's datasets."""

    registered_model_name: str | None = spec(None, doc="MLflow registry name of the policy (each algorithm's config "
                                                       "declares its own, e.g. rlpipe-ppo); null: log only")
    tensorboard: bool = spec(False, doc="also write TensorBoard scalars (needs the 'tensorboard' extra)")
    tensorboard_dir: str = spec("data/08_reporting/tensorboard", doc="TensorBoard logs, one folder a run")
    animation_scenario: int = spec(0, ge=0, doc="row of the eval scenarios whose episode is animated")
    video_every_env_steps: int = spec(0, ge=0, doc="env steps between short videos of the current policy on the "
                                                   "animation scenario during training; 0: none")
    register: Literal["always", "on_target"] = spec("always", doc="register the policy model in the MLflow registry "
                                                                  "always, or only when the final evaluation's mean "
                                                                  "return reaches the target")
    target_return: float | None = spec(None, doc="the eval mean return that 'on_target' registration needs; null: "
                                                 "early_stopping.target_return where the algorithm has one")
    system_metrics: bool = spec(True, doc="log MLflow system metrics (CPU, memory; GPU when present) during the run")
    system_metrics_interval_s: float = spec(3.0, gt=0.0, le=3600.0,
                                            doc="seconds between system-metric samples (each is a probe and a "
                                                "write to the store beside the training)")


class DistributedConfig(Config):
    """How this process joins the others of a multi-process run (the top-level ``distributed`` parameters)."""

    coordinator_address: str | None = spec(None, doc="host:port of process 0's coordinator; null: "
                                                     "JAX_COORDINATOR_ADDRESS, or the cluster's (SLURM, Open MPI)")
    num_processes: int | None = spec(None, ge=1, doc="processes in the run; null: JAX_NUM_PROCESSES or the cluster's")
    process_id: int | None = spec(None, ge=0, doc="this process's index; null: JAX_PROCESS_ID, JOB_COMPLETION_INDEX "
                                                  "or the cluster's")
    initialization_timeout_seconds: int = spec(120, ge=1, doc="how long to wait for every process to join")
    heartbeat_timeout_seconds: int = spec(15, ge=2, doc="a process silent this long is lost: the others stop with "
                                                        "an error naming it")
    shutdown_timeout_seconds: int = spec(300, ge=1, doc="how long a finished process waits for the others at exit")


class EvaluationConfig(Config):
    """How the evaluation pipelines evaluate a stored agent (the top-level ``evaluation`` parameters)."""

    scenarios: Literal["stored", "fresh"] = spec("stored", doc="the agent's own held-out eval scenarios (regenerated "
                                                               "exactly from its config), or fresh ones drawn with "
                                                               "evaluation.seed")
    seed: int | None = spec(None, ge=0, lt=2**31, doc="seed of fresh scenarios; null: the agent's scenario seed + 1")
    num_scenarios: int | None = spec(None, ge=1, le=10**7, doc="number of fresh scenarios; null: the agent's "
                                                               "scenarios.num_eval")
    seed_index: int | None = spec(None, ge=0, le=1023, doc="of a multi-seed agent (train.num_seeds), the seed to "
                                                           "evaluate; null: the best one (the served policy)")
    animation: bool = spec(True, doc="render the animation scenario's episode (GIF, and MP4 when ffmpeg is on PATH)")
    animation_scenario: int = spec(0, ge=0, doc="row of the evaluated scenarios whose episode is animated")


class DemonstrationsConfig(Config):
    """What the recording pipelines record from a stored agent (the top-level ``demonstrations`` parameters)."""

    num_episodes: int = spec(64, ge=1, le=10**6, doc="episodes recorded, one per scenario")
    seed: int | None = spec(None, ge=0, lt=2**31, doc="seed of their scenarios (drawn like the agent's, sharing no "
                                                      "reset seed with its training or eval scenarios); null: the "
                                                      "agent's scenario seed + 2")
    seed_index: int | None = spec(None, ge=0, le=1023, doc="of a multi-seed agent, the seed recorded; null: the "
                                                           "best one (the served policy)")
    max_steps: int | None = spec(None, ge=1, le=10**7, doc="steps per episode at most; null: the env's limit")


class CompareConfig(Config):
    """Which stored runs ``kedro run --pipelines=compare`` puts side by side (the top-level ``compare``
    parameters)."""

    pipeline: str | None = spec(None, doc="the training pipeline whose runs are compared (sac, ppo, ...); null: the "
                                          "default one (kedro run without --pipelines)")
    runs: RunNames = spec((), doc="the runs: catalog versions (e.g. 2026-11-23T02.39.19.842Z, the Kedro session "
                                  "id) or MLflow run ids, as a list or one string separated by spaces (what "
                                  "--params can carry); empty: the newest `last` runs of the pipeline")
    last: int = spec(3, ge=1, le=100, doc="how many of the newest runs, when runs is empty")


