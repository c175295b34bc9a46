"""The suite writes only into temporary folders: every cache location points there."""

from __future__ import annotations

import tempfile
from pathlib import Path


def test_cache_locations_are_temporary():
    from platformdirs import user_cache_dir

    temporary = Path(tempfile.gettempdir()).resolve()
    for location in (user_cache_dir("compressbench"), user_cache_dir("huggingface")):
        assert temporary in Path(location).resolve().parents, location
