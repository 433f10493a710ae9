"""Loading a config spec: ``PATH.py``, ``PATH.py:FN``, ``PATH.py:FN(args)`` or ``PATH.json``.

A ``.py`` file is imported as a real module (by its dotted name relative to the
current directory when it lies under it), so that the functions and classes it
defines serialize by reference and load again from a run's ``config.json``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re
import sys
import types
from typing import Any

import fiddle as fdl

from theseus.config.errors import ConfigError, did_you_mean
from theseus.config.serialize import from_json

DEFAULT_FUNCTION = "config"
_SPEC_RE = re.compile(r"^(?P<path>.+?\.py)(?::(?P<call>.*))?$", re.DOTALL)
# Modules (and their packages) imported from config files; only these may be re-imported.
_CONFIG_MODULES: set[str] = set()
_SPEC_HELP = "expected PATH.py, PATH.py:FN, PATH.py:FN(literal args) or PATH.json, e.g. configs/gpt.py:tiny"


def parse_call(text: str, what: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """Parses ``name`` or ``name(literal, key=literal)`` into (name, args, kwargs).

    ``name`` may be dotted. Arguments must be Python literals; nothing is
    evaluated. ``what`` names the thing parsed in error messages ("fiddler").
    """
    bad_syntax = ConfigError(
        f"cannot parse {what} {text!r}; expected NAME or NAME(literal args) without * or **, "
        "e.g. tiny or small(4, d_model=64)"
    )
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        raise bad_syntax from None
    func, arg_nodes, kw_nodes = (node.func, node.args, node.keywords) if isinstance(node, ast.Call) else (node, [], [])
    name = _dotted_name(func)
    if name is None or any(isinstance(a, ast.Starred) for a in arg_nodes) or any(k.arg is None for k in kw_nodes):
        raise bad_syntax
    args = tuple(_literal(a, text, what) for a in arg_nodes)
    kwargs = {k.arg: _literal(k.value, text, what) for k in kw_nodes if k.arg is not None}
    return name, args, kwargs


def _dotted_name(node: ast.expr) -> str | None:
    """Returns ``a.b.c`` for a Name/Attribute chain, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _literal(node: ast.expr, text: str, what: str) -> Any:
    """Evaluates a literal argument node, or raises ConfigError naming it."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        source = ast.get_source_segment(text.strip(), node) or ast.unparse(node)
        raise ConfigError(
            f"argument {source!r} of {what} {text!r} is not a Python literal; "
            "use numbers, 'strings' in quotes, True/False/None, or lists/tuples/dicts of them"
        ) from None


def public_functions(module: types.ModuleType) -> list[str]:
    """Names of the public functions defined in ``module`` itself, sorted."""
    return sorted(
        name
        for name, obj in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module.__name__
    )


def load_config(spec: str) -> tuple[fdl.Buildable, types.ModuleType | None]:
    """Loads the config a spec names, and the module it came from (None for JSON).

    ``spec`` is ``PATH.py`` (calls ``config()``), ``PATH.py:FN``,
    ``PATH.py:FN(literal args)`` or ``PATH.json`` (a run's saved config).
    Every user mistake raises :class:`ConfigError`.
    """
    spec = spec.strip()
    if spec.endswith(".json"):
        return _load_json(pathlib.Path(spec)), None
    path, call = split_spec(spec)
    module = import_file(path)
    name, args, kwargs = parse_call(call, "config function")
    fn = _lookup_function(module, name, path)
    return _call_config(fn, args, kwargs, f"{path}:{name}"), module


def split_spec(spec: str) -> tuple[pathlib.Path, str]:
    """Splits ``PATH.py[:CALL]`` into the path and the call text (``config`` if absent)."""
    match = _SPEC_RE.match(spec.strip())
    if not match or match["call"] == "":
        raise ConfigError(f"invalid config spec {spec!r}; {_SPEC_HELP}")
    call = match["call"] or DEFAULT_FUNCTION
    if not re.match(r"^\s*[A-Za-z_]\w*\s*(\(|$)", call):
        raise ConfigError(f"invalid function {call!r} in config spec {spec!r}; {_SPEC_HELP}")
    return pathlib.Path(match["path"]), call


def _load_json(path: pathlib.Path) -> fdl.Buildable:
    """Reads a saved ``config.json``; modules it names are imported from the cwd."""
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file '{path}': {e}") from None
    _put_first_on_sys_path(pathlib.Path.cwd())
    return from_json(text, source=f"'{path}'")


def import_file(path: pathlib.Path) -> types.ModuleType:
    """Imports a ``.py`` file as a module that can be imported again by name.

    Under the cwd: by its dotted name relative to the cwd (cwd goes first on
    ``sys.path``). Elsewhere: by its stem, with its directory first on ``sys.path``.
    """
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    resolved, cwd = path.resolve(), pathlib.Path.cwd().resolve()
    parts = resolved.relative_to(cwd).with_suffix("").parts if resolved.is_relative_to(cwd) else ()
    if parts and all(p.isidentifier() for p in parts):
        root = cwd
    else:
        root, parts = resolved.parent, (resolved.stem,)
    if not all(p.isidentifier() for p in parts):
        raise ConfigError(
            f"config file '{path}' cannot be imported: '{resolved.stem}' is not a valid Python module name"
        )
    _put_first_on_sys_path(root)
    name = ".".join(parts)
    _forget_stale_modules(name, root, path)
    before = set(sys.modules)
    try:
        module = importlib.import_module(name)
    except SyntaxError as e:
        raise ConfigError(f"syntax error in config file '{path}' at line {e.lineno}: {e.msg}") from None
    _CONFIG_MODULES.update(n for n in sys.modules if n not in before and (n == name or name.startswith(n + ".")))
    return module


def _put_first_on_sys_path(directory: pathlib.Path) -> None:
    """Makes ``directory`` the first entry of ``sys.path`` (once)."""
    entry = str(directory)
    if not sys.path or sys.path[0] != entry:
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


def _forget_stale_modules(name: str, root: pathlib.Path, path: pathlib.Path) -> None:
    """Drops config modules named ``name`` (or its packages) that came from another file.

    Only modules this loader imported are dropped; any other clash is an error.
    """
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        module = sys.modules.get(prefix)
        leaf = i == len(parts)
        expected = root.joinpath(*parts[:i]).with_suffix(".py") if leaf else root.joinpath(*parts[:i])
        if module is None or _module_locations(module, leaf) & {expected.resolve()}:
            continue
        if prefix not in _CONFIG_MODULES:
            raise ConfigError(
                f"config file '{path}' would be imported as module '{name}', but '{prefix}' is already "
                "imported from elsewhere; rename the file or its directory"
            )
        for key in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
            del sys.modules[key]
        importlib.invalidate_caches()
        return


def _module_locations(module: types.ModuleType, leaf: bool) -> set[pathlib.Path]:
    """The file of a module (``leaf``) or the directories of a package."""
    if leaf:
        file = getattr(module, "__file__", None)
        return {pathlib.Path(file).resolve()} if file else set()
    return {pathlib.Path(p).resolve() for p in getattr(module, "__path__", [])}


def _lookup_function(module: types.ModuleType, name: str, path: pathlib.Path) -> Any:
    """Returns ``module.name`` if it is a function, else raises ConfigError."""
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        available = public_functions(module)
        raise ConfigError(
            f"config file '{path}' has no function '{name}'{did_you_mean(name, available)}; "
            f"available functions: {', '.join(available) or '(none)'}"
        )
    return fn


def _call_config(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], where: str) -> fdl.Buildable:
    """Calls a config function after checking the arguments bind to its signature."""
    problem = bind_error(fn, args, kwargs)
    if problem:
        raise ConfigError(f"wrong arguments for {where}: {problem}")
    cfg = fn(*args, **kwargs)
    if not isinstance(cfg, fdl.Buildable):
        raise ConfigError(
            f"{where} returned {type(cfg).__name__}, not a fiddle config; it must return e.g. fdl.Config(...)"
        )
    return cfg


def bind_error(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Why ``fn(*args, **kwargs)`` would not bind, with the signature to use; None if it binds.

    Checking first keeps a TypeError raised *inside* ``fn`` (a bug) apart from
    a wrong call (a user mistake).
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # No signature available: let the call decide.
    try:
        signature.bind(*args, **kwargs)
    except TypeError as e:
        params = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
        bare = signature.replace(parameters=params, return_annotation=inspect.Signature.empty)
        return f"{e}; its signature is {getattr(fn, '__name__', 'fn')}{bare}"
    return None
