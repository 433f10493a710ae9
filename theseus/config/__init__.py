"""Configs as code: load ``PATH.py:FN(args)``, override from flags, save as JSON and text.

Typical use (what ``launch.py`` does)::

    define_flags()
    ...  # absl parses argv
    cfg = config_from_flags()           # ConfigError on any user mistake
    write_config(cfg, workdir_from_flags())
"""

from theseus.config.errors import ConfigError
from theseus.config.flags import (
    config_from_flags,
    default_workdir,
    define_flags,
    ordered_overrides,
    workdir_from_flags,
)
from theseus.config.loading import import_file, load_config, parse_call, public_functions
from theseus.config.overrides import (
    apply_fiddler,
    apply_overrides,
    apply_set,
    find_fiddler,
    parse_value,
    set_value,
)
from theseus.config.serialize import (
    MISSING,
    atomic_write_text,
    flatten,
    from_json,
    to_json,
    to_text,
    write_config,
)

__all__ = [
    "MISSING",
    "ConfigError",
    "apply_fiddler",
    "apply_overrides",
    "apply_set",
    "atomic_write_text",
    "config_from_flags",
    "default_workdir",
    "define_flags",
    "find_fiddler",
    "flatten",
    "from_json",
    "import_file",
    "load_config",
    "ordered_overrides",
    "parse_call",
    "parse_value",
    "public_functions",
    "set_value",
    "to_json",
    "to_text",
    "workdir_from_flags",
    "write_config",
]
