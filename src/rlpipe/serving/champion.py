"""The ``@champion`` alias of a registered policy model: the version ``make serve`` serves.

A new version takes the alias only when it beats the current champion on the same held-out scenarios: a mean
return measured on other scenarios says nothing about which policy is better, so such a version never takes it
(evaluate both on one scenario set with the ``<algo>_eval`` pipeline first). Every registered version records its
own evaluation as tags (``rlpipe.eval.return_mean``, ``rlpipe.eval.scenarios``: a fingerprint of the scenario
table, ``rlpipe.eval.num_scenarios``) and the comparison that decided the alias (``rlpipe.champion.*``), on the
version and on its run, so the registry shows why each version is or is not the champion.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

ALIAS = "champion"
MEAN_TAG, SCENARIOS_TAG, COUNT_TAG = "rlpipe.eval.return_mean", "rlpipe.eval.scenarios", "rlpipe.eval.num_scenarios"


def scenario_fingerprint(table: pd.DataFrame) -> str:
    """A short hash of a scenario table (its columns and values): equal fingerprints, the same held-out scenarios."""
    digest = hashlib.sha256(json.dumps([str(c) for c in table.columns]).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Contest:
    """A new version's evaluation against the champion's, and what it decided."""

    promoted: bool
    reason: str
    champion_version: str | None = None  # the champion it was compared with (None: there was none)
    champion_mean: float | None = None

    def tags(self) -> dict[str, str]:
        out = {"rlpipe.champion.decision": "promoted" if self.promoted else "kept",
               "rlpipe.champion.reason": self.reason}
        if self.champion_version is not None:
            out["rlpipe.champion.compared_with"] = self.champion_version
            out["rlpipe.champion.return_mean"] = repr(self.champion_mean)
        return out


def decide(mean: float, scenarios: str | None, champion: Any | None) -> Contest:
    """Whether a version with eval ``mean`` on scenario set ``scenarios`` takes the alias from ``champion`` (an
    MLflow ModelVersion with the tags above, or None when there is no champion yet)."""
    if not math.isfinite(mean):
        return Contest(False, f"its eval mean return {mean} is not finite")
    if scenarios is None:
        return Contest(False, "its held-out scenarios are unknown, so it cannot be compared")
    if champion is None:
        return Contest(True, "no champion yet")
    theirs, version = champion.tags.get(SCENARIOS_TAG), str(champion.version)
    their_mean = float(champion.tags.get(MEAN_TAG, "nan"))
    if theirs != scenarios:
        return Contest(False, f"champion version {champion.version} was evaluated on other held-out scenarios "
                              f"({theirs} vs {scenarios}): not comparable", version, their_mean)
    if not mean > their_mean:  # a NaN champion mean is never beaten: it is not comparable either
        return Contest(False, f"eval mean return {mean:.2f} does not beat champion version {champion.version}'s "
                              f"{their_mean:.2f} on the same scenarios", version, their_mean)
    return Contest(True, f"eval mean return {mean:.2f} beats champion version {champion.version}'s "
                         f"{their_mean:.2f} on the same scenarios", version, their_mean)


def contend(name: str, version: str, mean: float, scenarios: str | None, num_scenarios: int | None,
            run_id: str | None = None, client: Any = None) -> Contest:
    """Record version ``version`` of registered model ``name``'s evaluation, compare it with the current
    champion's and move ``@champion`` to it if it wins; the evaluation and the comparison become tags of the
    version and of its run (``run_id``)."""
    import mlflow

    client = client or mlflow.MlflowClient()
    champion = current_champion(client, name)
    contest = decide(mean, scenarios, champion)
    tags = {MEAN_TAG: repr(float(mean)), **contest.tags()}
    if scenarios is not None:
        tags[SCENARIOS_TAG] = scenarios
    if num_scenarios is not None:
        tags[COUNT_TAG] = str(num_scenarios)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
        if run_id:
            client.set_tag(run_id, key, value)
    if contest.promoted:
        client.set_registered_model_alias(name, ALIAS, version)
    return contest


def current_champion(client: Any, name: str) -> Any | None:
    """The version of ``name`` holding ``@champion``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:  # no such alias (or model) yet
        return None
