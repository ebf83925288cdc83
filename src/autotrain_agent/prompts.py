"""Load the prompt templates in `prompts/` and fill in their `$placeholders`."""

from __future__ import annotations

import logging
from string import Template

from ._resources import resource_dir
from .errors import ConfigError

logger = logging.getLogger(__name__)


def render_prompt(name: str, **values: object) -> str:
    """Return the template `prompts/<name>.md` with each `$key` replaced by `values[key]`.

    Templates use `string.Template` syntax, so JSON braces in them need no escaping; write `$$` for a dollar sign.

    Raises:
        ConfigError: If the template is missing or uses a placeholder that `values` does not fill.
    """
    path = resource_dir("prompts") / f"{name}.md"
    if not path.is_file():
        raise ConfigError(f"No prompt template {name!r} in {path.parent}; reinstall autotrain-agent.")
    try:
        return Template(path.read_text(encoding="utf-8")).substitute({key: str(value) for key, value in values.items()})
    except KeyError as err:
        raise ConfigError(f"The prompt template {name!r} needs a value for {err.args[0]!r}.") from err
