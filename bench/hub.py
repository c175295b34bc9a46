"""Loading models, tokenizers and data sets that may come from the Hugging Face hub.

:func:`load_from_hub` wraps one load. A name that is a local folder or file is loaded as it
is. A hub id is loaded from the local cache when it is there; otherwise, when the hub is
switched off (``HF_HUB_OFFLINE``) or does not answer one quick request, the load ends with
a :class:`HubLoadError`: one line that names the command-line flag taking a local path,
instead of the hub client's minute of retries and a long traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from bench.substrate.errors import InputError

__all__ = [
    "OFFLINE_VARIABLES",
    "HubLoadError",
    "hub_is_offline",
    "load_from_hub",
    "looks_like_local_path",
]

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PROBE_TIMEOUT_SECONDS = 10.0
RepoType = Literal["model", "dataset"]
T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}


class HubLoadError(InputError):
    """A hub id that could not be loaded: offline, unreachable, not found or gated."""

    def __init__(self, what: str, name: str, flag: str, reason: str) -> None:
        super().__init__(
            f"could not load {what} {name!r} from the Hugging Face hub: {reason}",
            hint=f"pass a local path with {flag}",
        )
        self.what = what
        self.name = name
        self.flag = flag
        self.reason = reason


def hub_is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in OFFLINE_VARIABLES)


def looks_like_local_path(name: str) -> bool:
    """Whether ``name`` can only mean a local path (a hub id is ``name`` or ``owner/name``)."""
    return (
        name.startswith((".", "~", os.sep, "/"))
        or name.count("/") > 1
        or (os.altsep is not None and os.altsep in name)
        or name.endswith(("/", ".json", ".bin", ".safetensors"))
    )


def load_from_hub(
    load: Callable[[], T],
    name: str,
    what: str,
    flag: str,
    repo_type: RepoType = "model",
    revision: str | None = None,
) -> T:
    """``load()`` for ``name``, a local path or a hub id, with one-line errors for the hub.

    ``what`` says what is loaded ("tokenizer", "target model") and ``flag`` how a local
    path is given ("--tokenizer", "pretrained=" in --model_args); both go into the message.
    """
    path = Path(name).expanduser()
    if path.exists():
        return _load_local(load, path, what, flag)
    if looks_like_local_path(name):
        raise InputError("no such file or folder", path, field=flag,
                         hint=f"give the local folder of the {what} or a hub id")
    if hub_is_offline():
        return _load_or_explain(load, name, what, flag,
                                "offline (HF_HUB_OFFLINE is set) and not in the local cache")
    if not _in_local_cache(name, repo_type, revision):
        _probe(name, what, flag, repo_type, revision)
    return _load_or_explain(load, name, what, flag, None)


def _load_local(load: Callable[[], T], path: Path, what: str, flag: str) -> T:
    try:
        return load()
    except (OSError, ValueError) as error:  # a config.json that is not JSON, an unknown type
        raise InputError(f"cannot load the {what}: {_first_line(error)}", path,
                         field=flag) from error


def _load_or_explain(load: Callable[[], T], name: str, what: str, flag: str,
                     reason: str | None) -> T:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return load()
    except (OSError, ConnectionError, HfHubHTTPError) as error:
        raise HubLoadError(what, name, flag, reason or _first_line(error)) from error


def _in_local_cache(name: str, repo_type: RepoType, revision: str | None) -> bool:
    """Whether a snapshot of ``name`` is in the hub cache (nothing is sent)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(name, repo_type=repo_type, revision=revision, local_files_only=True)
    except Exception:
        return False
    return True


def _probe(name: str, what: str, flag: str, repo_type: RepoType, revision: str | None) -> None:
    """One request without retries: does the hub answer, and does it know ``name``?"""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        HfApi().repo_info(name, repo_type=repo_type, revision=revision,
                          timeout=PROBE_TIMEOUT_SECONDS)
    except GatedRepoError as error:
        raise HubLoadError(what, name, flag, "it is gated: accept its licence on the hub and "
                           "log in with `hf auth login`") from error
    except RepositoryNotFoundError as error:
        raise HubLoadError(what, name, flag, f"no {repo_type} of that name on the hub (or it "
                           "is private: log in with `hf auth login`)") from error
    except RevisionNotFoundError as error:
        raise HubLoadError(what, name, flag, f"it has no revision {revision!r}") from error
    except HfHubHTTPError as error:
        raise HubLoadError(what, name, flag, _first_line(error)) from error
    except Exception as error:
        raise HubLoadError(what, name, flag, f"offline? the hub did not answer "
                           f"({type(error).__name__}: {_first_line(error)})") from error


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
