"""Jinja2 rendering shared by the SLURM, wq and local job writers.

Every value that reaches a job file goes through the ``q`` filter (:func:`shlex.quote`), so
a path with spaces or a hostile string stays one shell word. ``sbatch`` parses ``#SBATCH``
lines with the same quoting rules, so ``q`` is right there too. Newlines cannot be quoted
for a line-oriented file: :func:`balrog_runner.campaign.config_check.check_config` rejects them earlier,
and :func:`render` refuses any that slip through as a second line of defence.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import jinja2

from ..errors import ConfigError

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _quote(value: Any) -> str:
    text = str(value)
    if "\n" in text or "\r" in text or _CONTROL_RE.search(text):
        raise ConfigError(f"value {text!r} contains a newline or control character; cannot write it to a job file")
    return shlex.quote(text)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("balrog_runner.jobs", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # shell and YAML, not HTML: quoting is done by the filters
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = _quote
    env.filters["json"] = json.dumps  # a JSON string is a valid YAML double-quoted scalar
    return env


_ENV: jinja2.Environment | None = None


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context`` (undefined names are errors)."""
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV.get_template(template).render(**context)
