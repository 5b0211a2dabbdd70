"""A search worker that only opens the study, round after round, for the race of workers started together on an
empty SQLite file (tests.test_tune): ``python -m tests.study_opener FOLDER ROUNDS``. Round ``r`` prints
``ready r``, waits (at most a minute) for the file ``FOLDER/go-r``, opens the study on ``FOLDER/r.db`` and prints
``opened r`` or ``failed r: <the error>``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rlpipe.pipelines.tuning import open_study, validated_search
from tests.conftest import TINY_SAC

SEARCH = {"study_name": "race", "n_trials": 1, "space": {"train.tau": {"type": "float", "low": 0.001, "high": 0.1}}}


def main(folder: Path, rounds: int) -> None:
    for round_ in range(rounds):
        url = f"sqlite:///{folder / f'{round_}.db'}"
        tune = validated_search("sac", TINY_SAC, {**SEARCH, "storage": url})
        print(f"ready {round_}", flush=True)
        deadline = time.monotonic() + 60
        while not (folder / f"go-{round_}").exists():
            if time.monotonic() > deadline:
                sys.exit(f"no go-{round_} within a minute")
            time.sleep(0.001)
        try:
            open_study("sac", tune, url)
            print(f"opened {round_}", flush=True)
        except Exception as error:  # noqa: BLE001 - the test reports every worker's failure
            print(f"failed {round_}: {error}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
