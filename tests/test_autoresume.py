"""``train.resume: auto`` both ways (nothing to resume, an interrupted run of the same config, one of another
config) and a checkpoint directory on a full or a read-only disk. Every run is in this process, through the run's
spine (``rlpipe.rl.run.train``), on the tiny SAC config: an interruption is an exception raised from the progress
callback once a checkpoint is on disk, as a crash between two checkpoints would leave the run."""

from __future__ import annotations

import copy
import errno
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from rlpipe.rl import run
from rlpipe.rl.checkpoint import CheckpointWriteError, load_checkpoint
from rlpipe.rl.config import ConfigError
from rlpipe.rl.training_run import find_resume
from tests.conftest import TINY_SAC
from tests.support import Lines

pytestmark = pytest.mark.xdist_group("autoresume")  # one worker: the uninterrupted reference is trained once

# checkpoints at 128 and 256 env steps and the final one at 320; progress lines every 64
RAW = copy.deepcopy(TINY_SAC)
RAW["train"]["keep_checkpoints"] = 5


class Interrupted(Exception):
    """Stands for the crash of a run between two checkpoints."""


def config(resume=False, **train):
    raw = copy.deepcopy(RAW)
    raw["train"].update(resume=resume, **train)
    return run.validated_config("sac", raw)


def train(cfg, root: Path, on_progress=None):
    with Lines("rlpipe.rl.training_run") as lines:
        outputs = run.train(cfg, root=root, on_progress=on_progress)
    return outputs, lines


def interrupt_after(env_steps: int):
    """A progress callback that crashes the run at its progress line of ``env_steps`` (after the checkpoint of
    128 env steps: a checkpoint is written after the progress line of its chunk)."""
    def on_progress(row):
        if row["env_steps"] >= env_steps:
            raise Interrupted(f"interrupted at {row['env_steps']} env steps")
    return on_progress


def run_dirs(root: Path) -> list[Path]:
    folder = root / RAW_CHECKPOINTS
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


RAW_CHECKPOINTS = "data/06_models/sac_checkpoints"  # the SAC default, relative to the root
AUTO = "train.resume is auto"  # in every line about what resume: auto chose


def fingerprint(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_agent(a, b) -> None:
    state_a, meta_a = load_checkpoint(a.trained.agent.path)
    state_b, meta_b = load_checkpoint(b.trained.agent.path)
    flat_a, tree_a = jax.tree.flatten(state_a)
    flat_b, tree_b = jax.tree.flatten(state_b)
    assert tree_a == tree_b
    for x, y in zip(flat_a, flat_b):
        np.testing.assert_array_equal(x, y)
    assert meta_a["env_steps"] == meta_b["env_steps"] == RAW["train"]["total_env_steps"]
    assert a.eval_summary == b.eval_summary
    steps_a = list(a.trained.history["env_steps"])
    assert steps_a == list(b.trained.history["env_steps"]) and steps_a[0] < 128  # the full history


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: a fresh run of RAW, never interrupted, with train.resume false."""
    outputs, _ = train(config(), tmp_path_factory.mktemp("uninterrupted"))
    return outputs


def test_auto_with_nothing_to_resume_starts_fresh_as_a_fresh_run_does(tmp_path, uninterrupted):
    outputs, lines = train(config("auto"), tmp_path)
    assert lines.containing(AUTO) == [f"sac: train.resume is auto: starting fresh, as {tmp_path / RAW_CHECKPOINTS} "
                                  "holds no interrupted run"]
    assert not any("resuming" in m for m in lines.messages)
    assert_same_agent(outputs, uninterrupted)


def test_auto_resumes_the_interrupted_run_of_the_same_config_past_another_configs(tmp_path, uninterrupted):
    with pytest.raises(Interrupted):
        train(config("auto"), tmp_path, interrupt_after(192))
    [interrupted] = run_dirs(tmp_path)
    assert [p.name for p in interrupted.glob("step_*")] == ["step_0000000128"]
    kept = fingerprint(interrupted)

    # a run of another config (one that compiles the same program), interrupted too, newer: auto starts it fresh,
    # says why, and leaves the first run alone
    with pytest.raises(Interrupted):
        _, lines = train(config("auto", keep_checkpoints=4), tmp_path, interrupt_after(192))
    other = [p for p in run_dirs(tmp_path) if p != interrupted]
    assert len(other) == 1 and fingerprint(interrupted) == kept
    assert [p.name for p in other[0].glob("step_*")] == ["step_0000000128"]  # from the start, not from 128

    # the first config again: its own run resumes, the newer run of the other config passed over
    outputs, lines = train(config("auto"), tmp_path)
    assert lines.containing(AUTO) == [f"sac: train.resume is auto: resuming {interrupted.name}, the interrupted run of "
                                  "this config, from step_0000000128"]
    assert outputs.trained.agent.path.parent == interrupted
    assert_same_agent(outputs, uninterrupted)

    # a third config: the other config's run is the one interrupted run left, and not this config's
    with Lines("rlpipe.rl.training_run") as lines:
        assert not find_resume(config("auto", keep_checkpoints=3), tmp_path).resuming
    assert lines.containing(AUTO) == [f"sac: train.resume is auto: starting fresh, as no interrupted run in "
                                  f"{tmp_path / RAW_CHECKPOINTS} has this config (not continued: {other[0].name} "
                                  "(train.keep_checkpoints: checkpoint 4, now 3))"]


def test_resume_true_still_refuses_another_config(tmp_path):
    with pytest.raises(Interrupted):
        train(config(True), tmp_path, interrupt_after(192))
    with pytest.raises(ConfigError, match="differs from the run being resumed") as err:
        train(config(True, learning_rate=0.01), tmp_path)
    assert err.value.key == "sac.train.learning_rate"


def test_resume_true_with_nothing_to_resume_starts_fresh_and_says_so(tmp_path):
    with Lines("rlpipe.rl.training_run") as lines:
        assert not find_resume(config(True), tmp_path).resuming
    assert lines.messages == [f"sac: train.resume is set but {tmp_path / RAW_CHECKPOINTS} holds no interrupted run "
                              "with a checkpoint: starting fresh"]


def test_the_environment_can_ask_for_auto_without_editing_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("RLPIPE_RESUME", "auto")
    with Lines("rlpipe.rl.training_run") as lines:
        assert not find_resume(config(), tmp_path).resuming
    assert lines.containing(AUTO) and "holds no interrupted run" in lines.containing(AUTO)[0]
    monkeypatch.setenv("RLPIPE_RESUME", "maybe")
    with pytest.raises(ConfigError, match=r"RLPIPE_RESUME='maybe' .* is not one of true, false, auto") as err:
        config()
    assert err.value.key == "sac.train.resume"


def test_auto_goes_with_init_from_and_bad_values_name_the_key():
    from rlpipe.rl.algorithm import load_config

    assert load_config("sac", {"train": {"resume": "auto", "init_from": "latest"}}, None).train.resume == "auto"
    with pytest.raises(ConfigError, match="init_from starts a new run"):
        load_config("sac", {"train": {"resume": True, "init_from": "latest"}}, None)
    with pytest.raises(ConfigError) as err:
        load_config("sac", {"train": {"resume": "maybe"}}, None)
    assert str(err.value) == "sac.train.resume: expected true, false or 'auto', got 'maybe' (str)"


# ------------------------------------------------------------------------------- a full or read-only disk
@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs of its own (a disk to fill, or to make read-only, without touching the machine's); the
    tests skip where mounting is not allowed."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


def fill(disk: Path) -> None:
    """Write ``disk/filler`` until the disk refuses: a disk that is already full (even to a new file) is full."""
    try:
        with open(disk / "filler", "ab") as out:
            while True:
                out.write(bytes(1 << 16))
                out.flush()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise


@pytest.mark.parametrize("fault", [pytest.param("full", marks=pytest.mark.slow), "read-only"])
def test_a_full_or_read_only_disk_stops_the_run_and_keeps_its_checkpoints(tmp_path, small_disk, uninterrupted,
                                                                          fault, caplog):
    checkpoint_dir = small_disk / "checkpoints"
    before: dict[str, dict[str, str]] = {}

    def break_the_disk(row):
        if row["env_steps"] >= 192 and not before:  # the checkpoint of 128 env steps is written
            [written] = checkpoint_dir.glob("*/step_*")
            before[written.name] = fingerprint(written)
            if fault == "full":
                fill(small_disk)
            else:
                subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, timeout=30)

    with pytest.raises(CheckpointWriteError) as err:
        run.train(config(checkpoint_dir=str(checkpoint_dir)), root=tmp_path, on_progress=break_the_disk)
    [run_dir] = [p for p in checkpoint_dir.iterdir() if not p.name.startswith(".")]
    cause = "No space left on device (ENOSPC)" if fault == "full" else "Read-only file system (EROFS)"
    assert str(err.value) == (f"cannot write a checkpoint in {run_dir}: {cause}; the checkpoints before it are "
                              f"kept, the newest {run_dir / 'step_0000000128'}. Make room (or make the directory "
                              "writable), then run again with train.resume=auto to continue from it")
    # said once, by the error: not again by orbax's threads (an error and a traceback per array store)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage()[:200] for r in caplog.records]
    if fault == "full":
        (small_disk / "filler").unlink(missing_ok=True)
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True, timeout=30)
    # nothing half-written beside it: at most the hidden folder of the write that failed, which array writes still
    # in flight in the array store (its own threads) may create again once the disk has room; the next save clears it
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) == ["step_0000000128"]
    assert {p.name for p in run_dir.iterdir() if p.name.startswith(".")} <= {".step_0000000256.partial"}
    assert fingerprint(run_dir / "step_0000000128") == before["step_0000000128"]
    if fault == "full":  # and it resumes, to the bits of a run never interrupted
        resumed, lines = train(config("auto", checkpoint_dir=str(checkpoint_dir)), tmp_path)
        assert "resuming" in lines.containing(AUTO)[0]
        assert_same_agent(resumed, uninterrupted)
    else:
        assert find_resume(config("auto", checkpoint_dir=str(checkpoint_dir)), tmp_path).checkpoint == \
            run_dir / "step_0000000128"


@pytest.mark.slow
def test_kedro_run_on_a_read_only_checkpoint_directory_is_one_block_before_any_training(project, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, timeout=30)
    raw = copy.deepcopy(RAW)
    raw["train"]["checkpoint_dir"] = str(small_disk / "checkpoints")
    (project / "conf" / "local" / "parameters_sac.yml").write_text(yaml.safe_dump({"sac": raw}))
    kedro = Path(sys.executable).with_name("kedro")
    done = subprocess.run([str(kedro), "run", "--pipelines=sac"], cwd=project, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    output = done.stdout + done.stderr
    assert done.returncode == 74, output[-3000:]
    block = ("Checkpoint error:\n  cannot write a checkpoint in " + str(small_disk / "checkpoints") +
             ": Read-only file system (EROFS); no checkpoint of this run was written before it.")
    assert block in " ".join(output.split(" ")), output[-3000:]
    assert output.count("cannot write a checkpoint") == 1  # said once, in the block
    assert "Traceback" not in output and "--from-nodes" not in output
    assert "sac.init_agent" not in output and "compiled" not in output  # stopped before the expensive stages


def test_a_read_only_checkpoint_directory_is_found_before_the_run_starts(tmp_path, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, timeout=30)
    with pytest.raises(CheckpointWriteError, match=r"Read-only file system \(EROFS\); no checkpoint of this run "
                                                   r"was written before it\. Make room") as err:
        find_resume(config(checkpoint_dir=str(small_disk / "checkpoints")), tmp_path)
    assert err.value.directory == small_disk / "checkpoints"


def test_a_refused_write_is_kept_quiet_only_until_a_checkpoint_is_written_again(caplog):
    """The reports a failed checkpoint's abandoned writes make are dropped; once a checkpoint is written again, a
    disk's refusal is news and is printed, and a failure that is not the disk's is never dropped."""
    from rlpipe.rl.failed_writes import quiet_disk_failures

    def report(text: str) -> bool:
        caplog.clear()
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=(ValueError, ValueError(
            text), None))
        return bool(caplog.records)

    full = "RESOURCE_EXHAUSTED: Failed to write 214 bytes [os_error_code='28']"
    with pytest.raises(OSError), quiet_disk_failures():
        assert not report(full)  # while written
        raise OSError(errno.ENOSPC, "No space left on device")
    assert not report(full)  # after the failure
    assert report("INVALID_ARGUMENT: a bug, not the disk")
    with quiet_disk_failures():
        pass
    assert report(full)  # written again
