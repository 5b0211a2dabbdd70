"""MkDocs hooks (mkdocs.yml `hooks:`): the pages generated at build time from the project's own files.

The configuration reference comes from conf/schemas/*.json and the benchmark page from benchmarks/results/*.json;
neither is committed as Markdown, so neither can be hand-edited out of step with what it describes.
"""

from __future__ import annotations

from pathlib import Path

import benchmark_page  # this folder is on sys.path while MkDocs loads a hook
import config_reference
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
GENERATED = {
    "reference/configuration.md": lambda: config_reference.page(ROOT / "conf" / "schemas"),
    "benchmarks.md": lambda: benchmark_page.page(ROOT),
}


def on_files(files, config):
    """Add the generated pages before the navigation is built, so mkdocs.yml's nav and links can name them."""
    for uri, render in GENERATED.items():
        files.append(File.generated(config, uri, content=render()))
    return files
