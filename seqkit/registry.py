"""Plugin discovery and the registry of components by kind and name."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

import pluggy

from seqkit import hookspecs
from seqkit.errors import PluginError, suggest
from seqkit.paths import resolve_inside

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "seqkit"

# Component kind -> the hook that lists components of that kind.
KINDS = {
    "data": "seqkit_add_data_sources",
    "tokenizer": "seqkit_add_tokenizers",
    "encoder": "seqkit_add_encoders",
    "decoder": "seqkit_add_decoders",
    "attention": "seqkit_add_attentions",
    "sampler": "seqkit_add_samplers",
    "task": "seqkit_add_tasks",
    "metric": "seqkit_add_metrics",
}


class Registry:
    """Components by kind and name, each with the plugin that provides it."""

    def __init__(self, manager: pluggy.PluginManager):
        self.manager = manager
        self.components: dict[str, dict[str, tuple[type, str]]] = {}
        for kind, hook_name in KINDS.items():
            self.components[kind] = self._collect(
                kind, getattr(manager.hook, hook_name)
            )

    def _collect(
        self, kind: str, hook: pluggy.HookCaller
    ) -> dict[str, tuple[type, str]]:
        found: dict[str, tuple[type, str]] = {}
        for impl in reversed(hook.get_hookimpls()):
            plugin_name = impl.plugin_name
            result = impl.function()
            if not isinstance(result, dict):
                raise PluginError(
                    f"plugin {plugin_name!r}: hook {hook.name} must return a dict "
                    f"of name to class, got {type(result).__name__}"
                )
            for name, cls in result.items():
                if not isinstance(cls, type):
                    raise PluginError(
                        f"plugin {plugin_name!r}: hook {hook.name} maps {name!r} to "
                        f"{cls!r}; the values must be component classes"
                    )
                if name in found:
                    other = found[name][1]
                    raise PluginError(
                        f"{kind} {name!r} is registered by both plugin {other!r} "
                        f"and plugin {plugin_name!r}; uninstall or rename one of them"
                    )
                found[name] = (cls, plugin_name)
        return found

    def get(self, kind: str, name: str) -> type:
        """Return the class registered as `name` for `kind`, or raise `PluginError`."""
        available = self.components[kind]
        if name not in available:
            names = ", ".join(sorted(available)) or "none"
            raise PluginError(
                f"unknown {kind} plugin {name!r}.{suggest(name, available)} "
                f"Available: {names}."
            )
        return available[name][0]

    def names(self, kind: str) -> list[str]:
        """Return the sorted component names of `kind`."""
        return sorted(self.components[kind])

    def provider(self, kind: str, name: str) -> str:
        """Return the name of the plugin that registered `name` for `kind`."""
        return self.components[kind][name][1]


def create_registry(
    plugins: Iterable[str] = (), base_dir: Path | None = None
) -> Registry:
    """Load entry-point plugins plus `plugins` (module names or .py paths)."""
    manager = pluggy.PluginManager("seqkit")
    manager.add_hookspecs(hookspecs)
    _load_entry_points(manager)
    base_dir = base_dir or Path.cwd()
    seen: set[str] = set()
    for spec in plugins:
        # The same file may be listed twice, for example once by a base recipe.
        key = (
            str(resolve_inside(base_dir, spec, "plugins"))
            if spec.endswith(".py")
            else spec
        )
        if key in seen:
            continue
        seen.add(key)
        module = _import_plugin(spec, base_dir)
        # A recipe may name a module that is also installed as an entry point.
        if not manager.is_registered(module):
            _register(manager, module, spec)
    _reject_unknown_hooks(manager)
    return Registry(manager)


def _reject_unknown_hooks(manager: pluggy.PluginManager) -> None:
    """Raise `PluginError` for a `@hookimpl` function that matches no hook spec.

    pluggy ignores such functions, so a misspelled hook name would silently
    register nothing.
    """
    valid = list(KINDS.values())
    for hook_name, hook in vars(manager.hook).items():
        if hook_name.startswith("_") or hook.has_spec():
            continue
        for impl in hook.get_hookimpls():
            if not impl.optionalhook:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} implements unknown hook "
                    f"{hook_name!r}.{suggest(hook_name, valid)} Valid hooks: "
                    f"{', '.join(valid)}."
                )


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for entry_point in sorted(entry_points, key=lambda ep: ep.name):
        if manager.get_plugin(entry_point.name) is not None:
            continue
        try:
            module = entry_point.load()
        except Exception as error:  # noqa: BLE001 - one broken plugin must not stop the rest
            log.warning(
                "plugin %r (%s) failed to import and is skipped: %s: %s",
                entry_point.name,
                entry_point.value,
                type(error).__name__,
                error,
            )
            continue
        _register(manager, module, entry_point.name)


def _register(manager: pluggy.PluginManager, module: object, name: str) -> None:
    try:
        manager.register(module, name=name)
    except pluggy.PluginValidationError as error:
        # pluggy's message spans several lines; the CLI prints errors as one.
        detail = " ".join(str(error).split())
        raise PluginError(f"plugin {name!r} has an invalid hook: {detail}") from None
    except ValueError:
        raise PluginError(
            f"plugin {name!r} cannot be registered: another plugin already has "
            "that name"
        ) from None


def _import_plugin(spec: str, base_dir: Path) -> object:
    """Import a plugin given as a module name or as a path to a .py file."""
    if spec.endswith(".py"):
        path = resolve_inside(base_dir, spec, "plugins")
        if not path.is_file():
            raise PluginError(f"plugin file not found: {path}")
        module_name = f"seqkit_recipe_plugin_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[module_name]
            raise PluginError(
                f"plugin file {path} failed to import: {type(error).__name__}: {error}"
            ) from error
        return module
    try:
        return importlib.import_module(spec)
    except ImportError as error:
        raise PluginError(
            f"plugin module {spec!r} failed to import: {error}. Install it, or give "
            "a path ending in .py"
        ) from error
