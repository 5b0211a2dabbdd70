"""The search pipelines (``<algo>_tune``, one for every registered algorithm): an Optuna study over its config.

Each trial trains ``num_seeds`` agents together (one compiled program) with the trial's values on top of the
algorithm's parameters and the search's ``base``, reports the IQM of the agents' periodic evaluations to a median
pruner, and is scored by the IQM of their final evaluations. Several workers are several ``kedro run`` processes
on one storage and study name; a worker that dies leaves its trial to be marked failed once its heartbeat is older
than the grace period, and the study goes on. Each trial is a nested MLflow run under the worker's run.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from kedro.pipeline import Node, Pipeline
from matplotlib.figure import Figure

from rlpipe.faults import fault_point
from rlpipe.compat import record_heartbeat_now
from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import mesh, run, study_storage, tuning
from rlpipe.rl.errors import ConfigError
from rlpipe.pipelines.project import project_path

logger = logging.getLogger(__name__)


def validated_search(algo: str, params: dict[str, Any], tune_params: dict[str, Any]) -> tuning.TuneConfig:
    """The search's config, its space checked against ``algo``'s config (every key, every extreme value)."""
    key = f"{algo}_tune"
    tune = tuning.load_tune_config(tune_params, key)
    tuning.check_space(algo, params, tune, mesh.device_count(), key)
    logger.info("%s: study %r, %d trials of %d seeds each over %s", key, tune.study_name, tune.n_trials,
                tune.num_seeds, ", ".join(tune.space))
    return tune


def storage_url(algo: str, tune: tuning.TuneConfig, from_credentials: str | None = None) -> str:
    """The study's storage: the URL of the credentials entry ``storage_credentials`` names (``from_credentials``,
    handed over by ``rlpipe.configuration.SearchStorageHooks``), else ``storage``, else the project's SQLite file."""
    url, key = study_storage.configured(f"{algo}_tune", tune, from_credentials)
    if tune.storage_credentials and not url:
        raise ConfigError(key, f"{tune.storage_credentials!r}: no storage URL was handed over from the credentials")
    if url:
        return url
    path = project_path(study_storage.default_file(f"{algo}_tune"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


SCHEMA_ATTEMPTS = 4  # workers started together on an empty database race to create its tables and types
# what the loser of that race is told: PostgreSQL ("relation ... already exists", "duplicate key ... already
# exists"), SQLite (a table that already exists, or the schema's version row inserted twice)
SCHEMA_RACE = ("already exists", "UNIQUE constraint failed: alembic_version")


def _open_storage(optuna, url: str, tune: tuning.TuneConfig, key: str):
    """Optuna's storage at ``url``. Several workers started at once on an empty database each create its schema;
    the ones that lose that race (a type, table or version row that exists already) open it again, now created."""
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 4, and the crash detection
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=study_storage.engine_kwargs(url),
                                                  heartbeat_interval=tune.heartbeat_interval_s,
                                                  grace_period=tune.grace_period_s)
        except Exception as error:  # noqa: BLE001 - any driver's error: the URL is what the user can fix
            if attempt < SCHEMA_ATTEMPTS and any(sign in str(error) for sign in SCHEMA_RACE):
                logger.info("%s: another worker is creating the study's tables; opening again", key)
                time.sleep(0.2 * attempt)
                continue
            where = study_storage.configured(key, tune, url)[1]
            raise ConfigError(where, study_storage.storage_problem(error, url)) from None


def open_study(algo: str, tune: tuning.TuneConfig, from_credentials: str | None = None):
    """The study on its storage (created, or joined as another worker); a storage that cannot be opened, or a
    stored study with another direction or space, is a ``ConfigError`` before any trial. Messages show the URL
    without its password."""
    key = f"{algo}_tune"
    try:
        import optuna
    except ModuleNotFoundError:
        raise ConfigError(key, "the search pipelines need Optuna: pip install -e '.[tune]'") from None
    url = storage_url(algo, tune, from_credentials)
    shown = study_storage.hide_password(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _open_storage(optuna, url, tune, key)
    sampler = optuna.samplers.TPESampler(seed=tune.sampler.seed + tune.worker,
                                         n_startup_trials=tune.sampler.n_startup_trials)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=tune.pruner.n_startup_trials,
                                         n_warmup_steps=tune.pruner.n_warmup_steps)
    study = optuna.create_study(storage=storage, study_name=tune.study_name, direction=tune.direction,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    if (error := study_storage.study_mismatch(key, tune, shown, study.direction.name.lower(),
                                              study.user_attrs)) is not None:
        raise error
    if "rlpipe.space" not in study.user_attrs:
        study.set_user_attr("rlpipe.space", tuning.space_fingerprint(tune))
        study.set_user_attr("rlpipe.algorithm", algo)
    return study


def train_trial(config: Any, on_progress) -> Any:
    """Train ``config`` as its pipeline would, without checkpoints or Kedro: the training core's result."""
    return run.train_in_memory(config, on_progress=on_progress)


def _seed_means(row: dict[str, Any]) -> list[float]:
    means = [v for k, v in row.items() if k.startswith("seed") and k.endswith(".eval_return_mean")]
    return means or [row.get("eval_return_mean", float("nan"))]


def run_study(algo: str, params: dict[str, Any], tune: tuning.TuneConfig, storage: str | None = None
              ) -> tuple[pd.DataFrame, dict[str, Any], Figure, Figure]:
    """Run trials until the study has ``n_trials`` (over all workers) or ``timeout_s`` passes; then the trials
    table, the best parameters (the whole ``<algo>`` section: usable as a config env's parameters file or with
    ``--params``) and the plots. ``storage``: the URL from the credentials (``storage_credentials``), if any."""
    import mlflow
    import optuna

    from rlpipe.rl.loop import NonFiniteError

    study = open_study(algo, tune, storage)
    active = mlflow.active_run()
    if active is not None:
        mlflow.set_tags({"rlpipe.study": tune.study_name, "rlpipe.worker": tune.worker})

    def objective(trial: optuna.Trial) -> float:
        # optuna's heartbeat thread writes its first beat whenever it is scheduled: a worker killed before that
        # would leave a trial with no beat at all, never stale, running forever; this first beat is written now
        record_heartbeat_now(trial)
        values = tuning.suggest(trial, tune.space)
        config = algorithms.load_config(algo, tuning.trial_params(params, tune, values), mesh.device_count())
        logger.info("%s_tune: trial %d started: %s", algo, trial.number,
                    ", ".join(f"{k}={v!r}" for k, v in values.items()))
        fault_point("in_trial", trial.number)
        with mlflow.start_run(run_name=f"{tune.study_name}-trial-{trial.number}", nested=active is not None):
            mlflow.set_tags({"rlpipe.study": tune.study_name, "rlpipe.trial": trial.number})
            mlflow.log_params({k: str(v) for k, v in values.items()})

            def on_progress(row: dict[str, Any]) -> None:
                value = tuning.objective_value(_seed_means(row))
                if not tuning.finite(value):
                    return
                step = int(row["env_steps"])
                mlflow.log_metric("eval.return_iqm", value, step=step)
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at {step} env steps: eval IQM {value:.1f} below the median "
                                             "of earlier trials at that step")

            started = time.perf_counter()
            try:
                result = train_trial(config, on_progress)
            except (optuna.TrialPruned, NonFiniteError) as reason:
                trial.set_user_attr("pruned_reason", str(reason))
                mlflow.set_tags({"rlpipe.trial_state": "PRUNED", "rlpipe.pruned_reason": str(reason)[:500]})
                logger.info("%s_tune: trial %d pruned: %s", algo, trial.number, reason)
                raise optuna.TrialPruned(str(reason)) from None
            means = np.asarray(result.final_evaluation["returns"]).reshape(tune.num_seeds, -1).mean(axis=1)
            value = tuning.objective_value(means)
            trial.set_user_attr("seed_means", [float(m) for m in means])
            trial.set_user_attr("seconds", time.perf_counter() - started)
            mlflow.log_metric("objective", value)
            mlflow.set_tag("rlpipe.trial_state", "COMPLETE")
        logger.info("%s_tune: trial %d: objective (eval return IQM over %d seeds) %.1f", algo, trial.number,
                    tune.num_seeds, value)
        return value

    every = optuna.trial.TrialState
    done = optuna.study.MaxTrialsCallback(tune.n_trials, states=None)  # every trial counts, running or failed
    if len(study.trials) < tune.n_trials:
        study.optimize(objective, n_trials=tune.n_trials, timeout=tune.timeout_s, callbacks=[done],
                       gc_after_trial=False)
    _settle(study, tune)
    trials = study.trials_dataframe()
    complete = [t for t in study.trials if t.state == every.COMPLETE]
    if not complete:
        raise RuntimeError(f"{algo}_tune: study {tune.study_name!r} has no completed trial (see the trials' "
                           "pruned_reason and the log)")
    best = study.best_trial
    best_values = tuning.decoded(best.params)
    best_params = {algo: tuning.trial_params(params, tune, best_values)}
    logger.info("%s_tune: best trial %d of %d: objective %.1f with %s", algo, best.number, len(study.trials),
                best.value, ", ".join(f"{k}={v!r}" for k, v in best_values.items()))
    return trials, best_params, _history_plot(study, algo), _importance_plot(study, algo)


def _settle(study, tune: tuning.TuneConfig) -> None:
    """Before the outputs: trials left running by a worker that died are marked failed once their heartbeat is
    older than the grace period (waiting at most that long); trials of live workers are left running."""
    import optuna

    deadline = time.monotonic() + tune.grace_period_s + 2 * tune.heartbeat_interval_s
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        running = [t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))]
        if not running or time.monotonic() > deadline:
            break
        time.sleep(tune.heartbeat_interval_s)
    if running:
        logger.info("trial(s) %s still running in another worker: not in this worker's outputs", running)


def _history_plot(study, algo: str) -> Figure:
    import optuna

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    xs = [t.number for t in complete]
    ys = [t.value for t in complete]
    ax.plot(xs, ys, "o", label="trial objective")
    best = np.maximum.accumulate(ys) if study.direction.name == "MAXIMIZE" else np.minimum.accumulate(ys)
    ax.step(xs, best, where="post", color="tab:red", label="best so far")
    pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    if pruned:
        ax.plot(pruned, [min(ys)] * len(pruned), "x", color="gray", label="pruned")
    ax.set_xlabel("trial")
    ax.set_ylabel("eval return IQM over seeds")
    ax.set_title(f"{algo} search {study.study_name!r}: optimization history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _importance_plot(study, algo: str) -> Figure:
    import optuna

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator) if len(complete) >= 2 else {}
    except (ImportError, RuntimeError, ValueError) as error:  # no scikit-learn; every trial with the same values
        logger.info("no parameter importances: %s", error)
        importances = {}
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title(f"{algo} search {study.study_name!r}: parameter importances"
                 + ("" if importances else " (too few completed trials)"))
    return fig


def tune_pipeline(algo: str) -> Pipeline:
    """``<algo>_tune``: the checked search, the study, its outputs (namespace ``<algo>_tune``)."""

    def check(params: dict[str, Any], tune_params: dict[str, Any]) -> tuning.TuneConfig:
        """Check the search space against the algorithm's config before any trial."""
        return validated_search(algo, params, tune_params)

    def study(params: dict[str, Any], tune: tuning.TuneConfig, storage_url: str | None):
        """Run the study's trials (this worker's share) and write its outputs. ``storage_url`` comes from the
        credentials (``rlpipe.configuration.SearchStorageHooks``), never from the parameters."""
        return run_study(algo, params, tune, storage_url)

    ns = f"{algo}_tune"
    return Pipeline([
        Node(check, [f"params:{algo}", f"params:{ns}"], "search", name="check_search"),
        Node(study, [f"params:{algo}", "search", "storage_url"], ["trials", "best_params", "optimization_history",
                                                    "param_importances"], name="run_study"),
    ], namespace=ns, parameters={f"params:{algo}", f"params:{ns}"}, prefix_datasets_with_namespace=True)
