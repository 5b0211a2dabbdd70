"""JAX's persistent compilation cache as every rlpipe run uses it (``kedro run``, ``rlpipe.train``, the tests and
the benchmarks): every compiled program kept on disk, those that call back into Python (a host env) included, so
a second run of the same job loads its programs instead of compiling them.

The folder is ``<project>/.jax_cache`` unless ``RLPIPE_JAX_CACHE_DIR`` names another one; an empty
``RLPIPE_JAX_CACHE_DIR`` turns the cache off. Deleting the folder is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

from rlpipe.compat import cache_programs_with_host_callbacks, write_compilation_cache_in_every_process

CACHE_ENV = "RLPIPE_JAX_CACHE_DIR"


def cache_dir_for(project: str | os.PathLike) -> str:
    """The cache folder of a project at ``project`` ("" when ``RLPIPE_JAX_CACHE_DIR`` turns it off)."""
    return os.environ.get(CACHE_ENV, str(Path(project) / ".jax_cache"))


def use_compilation_cache(cache_dir: str) -> None:
    """Cache every program this process compiles from now on in ``cache_dir`` (nothing if it is empty)."""
    if not cache_dir:
        return
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    changed = jax.config.jax_compilation_cache_dir != cache_dir
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if changed:  # JAX decides once per process whether it uses a cache: at its first compilation
        compilation_cache.reset_cache()
    write_compilation_cache_in_every_process()  # not only process 0: every process finds its programs
    cache_programs_with_host_callbacks()  # a host env's programs too, not only the pure JAX ones
