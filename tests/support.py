"""Building blocks the tests share: a validated config with its env and scenario batches, a training run through
the library (no Kedro), and a watched subprocess to wait for lines of its output."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from pathlib import Path

import jax
import pytest

from rlpipe.rl import algorithm, training
from rlpipe.rl.envs import env_spec, generate_scenarios, scenarios_to_batch
from rlpipe.rl.keys import stage_key


def setup(algo: str, raw: dict, num_devices: int | None = None):
    """(algorithm, config, spec, train batch, eval batch) for ``raw`` validated for ``num_devices`` devices."""
    plugin = algorithm.get(algo)
    cfg = algorithm.load_config(algo, raw, num_devices or jax.device_count())
    spec = env_spec(cfg.env)
    s = cfg.scenarios
    train_table, eval_table = generate_scenarios(spec, s.ranges, s.num_train, s.num_eval, cfg.seed)
    return plugin, cfg, spec, scenarios_to_batch(train_table, spec, "train"), scenarios_to_batch(eval_table, spec,
                                                                                                  "eval")


def device_data(algo: str, cfg, spec, train_batch):
    """What the train stage gets beside the initial state: SAC's prefill transitions, nothing for PPO."""
    make = algorithm.get(algo).initial_device_data  # SAC's and MASAC's random prefill
    return None if make is None else make(cfg, spec, train_batch, cfg.seed)


def train(algo: str, raw: dict, *, evaluate: bool = True, **kwargs):
    """A whole training run as the pipeline does it: ``(TrainResult, config)``."""
    plugin, cfg, spec, train_batch, eval_batch = setup(algo, raw)
    state = plugin.init_training_state(cfg, spec, stage_key(cfg.seed, "init"))
    result = training.train(plugin, cfg, spec, train_batch, state, stage_key(cfg.seed, "train"),
                            device_data=device_data(algo, cfg, spec, train_batch),
                            eval_scenarios=eval_batch if evaluate else None, **kwargs)
    return result, cfg


class Watched:
    """A process whose merged output is read line by line on a thread, so a test can wait for a line."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]):
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first line (from now on, or already seen) matching ``pattern``; fails after ``timeout`` seconds."""
        regex = re.compile(pattern)
        for line in list(self.lines):
            if match := regex.search(line):
                return match
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n{self.text[-4000:]}")
            if line is None:
                pytest.fail(f"the process ended without a line matching {pattern!r}:\n{self.text[-4000:]}")
            if match := regex.search(line):
                return match

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running after {timeout} s:\n{self.text[-4000:]}")
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    @property
    def text(self) -> str:
        return "".join(self.lines)
