"""Locate the data folders (`tools/`, `policies/`, `prompts/`, `reports/`) in a wheel or a source checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import ConfigError

_FOLDERS = ("tools", "policies", "prompts", "reports")


def resource_dir(name: str) -> Path:
    """Return the folder `name`: packaged as `autotrain_agent/_data/<name>` in a wheel, at the repo root otherwise.

    Raises:
        ConfigError: If `name` is not a data folder or the installation lacks it.
    """
    if name not in _FOLDERS:
        raise ConfigError(f"Unknown resource folder {name!r}; expected one of {_FOLDERS}.")
    packaged = Path(str(resources.files("autotrain_agent"))) / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / name
    if checkout.is_dir():
        return checkout
    raise ConfigError(
        f"The data folder {name!r} is missing from this installation (looked in {packaged} and {checkout}); "
        f"reinstall autotrain-agent."
    )
