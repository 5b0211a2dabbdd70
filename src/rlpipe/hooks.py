"""Process-wide JAX setup for every Kedro run: the persistent compilation cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

CACHE_ENV = "RLPIPE_JAX_CACHE_DIR"


class JaxRuntimeHooks:
    @hook_impl
    def after_context_created(self, context) -> None:
        """Compiled XLA programs are cached on disk, so a second run skips most compilation.

        The cache lives in ``<project>/.jax_cache`` unless ``RLPIPE_JAX_CACHE_DIR`` names another folder; set it to
        an empty string to turn the cache off. Deleting the folder is always safe.
        """
        import jax

        cache_dir = os.environ.get(CACHE_ENV, str(Path(context.project_path) / ".jax_cache"))
        if not cache_dir:
            return
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
