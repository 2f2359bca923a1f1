"""Plugin discovery and the registry of components by kind and name.

Entry-point plugins are isolated from each other: one that fails to import,
has an invalid or unknown hook, or returns components that break the plugin
contract is skipped whole and recorded as a `PluginFailure`, and the other
plugins still load. Plugins that a recipe names in `plugins` are requested
explicitly, so any fault of theirs raises `PluginError`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import logging
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pluggy

from seqkit import hookspecs
from seqkit.errors import PluginError, suggest
from seqkit.interfaces import (
    Attention,
    DataSource,
    Decoder,
    Encoder,
    Metric,
    Sampler,
    Tokenizer,
)
from seqkit.paths import resolve_inside
from seqkit.task import Task

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

# Component kind -> the class that every component of that kind subclasses.
INTERFACES: dict[str, type] = {
    "data": DataSource,
    "tokenizer": Tokenizer,
    "encoder": Encoder,
    "decoder": Decoder,
    "attention": Attention,
    "sampler": Sampler,
    "task": Task,
    "metric": Metric,
}


@dataclasses.dataclass(frozen=True)
class PluginFailure:
    """An entry-point plugin that was skipped, with the reason.

    components: the component names the plugin's hooks returned, by kind, so
    that a recipe naming one of them gets this failure as the reason. A kind
    whose hook the plugin does not implement maps to no names. A kind whose
    hook raised or returned no mapping is absent, and components is None when
    the plugin failed before its hooks were called.
    """

    plugin: str
    fault: str
    components: Mapping[str, tuple[str, ...]] | None = None

    def may_provide(self, kind: str, name: str) -> bool:
        """Return False only when the plugin is known not to provide `name`."""
        if self.components is None or kind not in self.components:
            return True
        return name in self.components[kind]


class Registry:
    """Components by kind and name, each with the plugin that provides it.

    Each plugin's hooks are called one plugin at a time, so that a fault is
    attributed to its plugin. A faulty plugin named in `requested` raises
    `PluginError`. Any other faulty plugin is unregistered and added to
    `failures`.
    """

    def __init__(
        self,
        manager: pluggy.PluginManager,
        failures: Iterable[PluginFailure] = (),
        requested: Iterable[str] = (),
    ):
        self.manager = manager
        self.failures: list[PluginFailure] = list(failures)
        requested = set(requested)
        returned: dict[str, dict[str, Mapping]] = {}
        for name, plugin in manager.list_name_plugin():
            if plugin is None:
                continue
            mappings, faults = self._call_hooks(plugin)
            if not faults:
                returned[name] = mappings
                continue
            fault = "; ".join(faults)
            if name in requested:
                raise PluginError(f"plugin {name!r}: {fault}")
            components = {
                kind: tuple(n for n in mapping if isinstance(n, str))
                for kind, mapping in mappings.items()
            }
            self.failures.append(PluginFailure(name, fault, components))
            manager.unregister(plugin)
        self.components: dict[str, dict[str, tuple[type, str]]] = {
            kind: self._collect(kind, getattr(manager.hook, hook_name), returned)
            for kind, hook_name in KINDS.items()
        }

    def _call_hooks(self, plugin: object) -> tuple[dict[str, Mapping], list[str]]:
        """Call each hook that `plugin` implements; return its mappings and faults.

        The mappings are by kind, and include those that break the contract.
        A kind whose hook the plugin does not implement maps to an empty dict,
        and a kind whose hook raised or returned no mapping is absent.
        """
        mappings: dict[str, Mapping] = {}
        faults: list[str] = []
        others = [other for other in self.manager.get_plugins() if other is not plugin]
        for kind, hook_name in KINDS.items():
            hook = getattr(self.manager.hook, hook_name)
            if not any(impl.plugin is plugin for impl in hook.get_hookimpls()):
                mappings[kind] = {}
                continue
            # The subset caller runs only this plugin's implementation, through
            # pluggy's hook execution, so that hook call monitoring records it.
            caller = self.manager.subset_hook_caller(hook_name, others)
            try:
                results = caller()
            except Exception as error:  # noqa: BLE001 - reported as the plugin's fault
                faults.append(
                    f"hook {hook_name} raised {type(error).__name__}: {error}"
                )
                continue
            # pluggy leaves None out of the results.
            returned = results[0] if results else None
            if not isinstance(returned, Mapping):
                faults.append(
                    f"hook {hook_name} must return a dict of name to class, got "
                    f"{type(returned).__name__}"
                )
                continue
            mappings[kind] = returned
            for name, cls in returned.items():
                fault = _contract_fault(kind, hook_name, name, cls)
                if fault is not None:
                    faults.append(fault)
        return mappings, faults

    @staticmethod
    def _collect(
        kind: str, hook: pluggy.HookCaller, returned: dict[str, dict[str, Mapping]]
    ) -> dict[str, tuple[type, str]]:
        """Merge the plugins' components of `kind`, rejecting duplicate names."""
        found: dict[str, tuple[type, str]] = {}
        for impl in reversed(hook.get_hookimpls()):
            plugin_name = impl.plugin_name
            for name, cls in returned[plugin_name].get(kind, {}).items():
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
        if name not in self.components[kind]:
            raise PluginError(self.missing_message(kind, name))
        return self.components[kind][name][0]

    def missing_message(self, kind: str, name: str) -> str:
        """Describe why no component `name` of `kind` is registered.

        When failed plugins may provide it, the message names them and their
        faults.
        """
        suspects = [f for f in self.failures if f.may_provide(kind, name)]
        known = [f for f in suspects if name in (f.components or {}).get(kind, ())]
        message = f"unknown {kind} plugin {name!r}."
        if not known:
            available = self.names(kind)
            names = ", ".join(available) or "none"
            message += f"{suggest(name, available)} Available: {names}."
        for failure in known or suspects:
            fault = failure.fault.rstrip(".")
            message += f" Plugin {failure.plugin!r} failed to load: {fault}."
        return message

    def names(self, kind: str) -> list[str]:
        """Return the sorted component names of `kind`."""
        return sorted(self.components[kind])

    def provider(self, kind: str, name: str) -> str:
        """Return the name of the plugin that registered `name` for `kind`."""
        return self.components[kind][name][1]


def _contract_fault(kind: str, hook_name: str, name: Any, cls: Any) -> str | None:
    """Return how one returned component breaks the plugin contract, or None."""
    if not isinstance(name, str):
        return (
            f"hook {hook_name} returned the key {name!r}; component names must be "
            "strings"
        )
    if not isinstance(cls, type):
        return (
            f"hook {hook_name} maps {name!r} to {cls!r}; the values must be "
            "component classes"
        )
    interface = INTERFACES[kind]
    if not issubclass(cls, interface):
        return (
            f"hook {hook_name} maps {name!r} to {_qualified_name(cls)}, which is not "
            f"a subclass of seqkit.{interface.__name__}"
        )
    options = getattr(cls, "Options", type(None))
    if options is not type(None) and not (
        isinstance(options, type) and dataclasses.is_dataclass(options)
    ):
        return (
            f"{kind} {name!r} ({_qualified_name(cls)}) has Options {options!r}, "
            "which is not a dataclass"
        )
    return None


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def create_registry(
    plugins: Iterable[str] = (),
    base_dir: Path | None = None,
    trace_hooks: bool = False,
) -> Registry:
    """Load entry-point plugins plus `plugins` (module names or .py paths).

    A broken entry-point plugin is skipped with a warning and listed in
    `Registry.failures`. A broken plugin of `plugins` raises `PluginError`.
    `trace_hooks` logs every hook call at INFO.
    """
    manager = pluggy.PluginManager("seqkit")
    manager.add_hookspecs(hookspecs)
    if trace_hooks:
        _trace_hook_calls(manager)
    failures = _load_entry_points(manager)
    base_dir = base_dir or Path.cwd()
    seen: set[str] = set()
    requested: set[str] = set()
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
        if not manager.get_hookcallers(module):
            log.warning(
                "plugin %r implements no seqkit hook, so it adds no components; "
                "mark its hook functions with @seqkit.hookimpl",
                spec,
            )
        requested.add(manager.get_name(module))
    failures += _reject_unknown_hooks(manager, requested)
    # A requested plugin that registered is no failure, even where its entry
    # point under the same name failed.
    failures = [f for f in failures if f.plugin not in requested]
    registry = Registry(manager, failures, requested)
    for failure in registry.failures:
        log.warning(
            "plugin %r failed to load and is skipped: %s",
            failure.plugin,
            failure.fault,
        )
    return registry


def _trace_hook_calls(manager: pluggy.PluginManager) -> None:
    """Log each hook call with its plugins, result and duration at INFO."""
    starts: list[float] = []

    def before(
        hook_name: str,
        hook_impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, object],
    ) -> None:
        starts.append(time.perf_counter())

    def after(
        outcome: pluggy.Result,
        hook_name: str,
        hook_impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, object],
    ) -> None:
        milliseconds = (time.perf_counter() - starts.pop()) * 1000
        plugins = ", ".join(repr(impl.plugin_name) for impl in hook_impls)
        error = outcome.exception
        if error is not None:
            result = f"raised {type(error).__name__}: {error}"
        else:
            results = outcome.get_result()
            descriptions = [_describe_result(value) for value in results] or ["None"]
            result = f"returned {'; '.join(descriptions)}"
        log.info(
            "hook %s: plugin %s %s (%.2f ms)", hook_name, plugins, result, milliseconds
        )

    manager.add_hookcall_monitoring(before, after)


def _describe_result(value: object) -> str:
    """Return `{name: ClassName, ...}` for a component mapping, else a short repr."""
    if isinstance(value, Mapping):
        items = (
            f"{name}: {cls.__qualname__ if isinstance(cls, type) else repr(cls)}"
            for name, cls in value.items()
        )
        return "{" + ", ".join(items) + "}"
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _reject_unknown_hooks(
    manager: pluggy.PluginManager, requested: set[str]
) -> list[PluginFailure]:
    """Report each `@hookimpl` function that matches no hook spec.

    pluggy ignores such functions, so a misspelled hook name would silently
    register nothing. A plugin in `requested` raises `PluginError`. Any other
    such plugin is unregistered and returned as a failure.
    """
    valid = list(KINDS.values())
    faults: dict[str, list[str]] = {}
    for hook_name, hook in vars(manager.hook).items():
        if hook_name.startswith("_") or hook.has_spec():
            continue
        for impl in hook.get_hookimpls():
            if impl.optionalhook:
                continue
            fault = (
                f"unknown hook {hook_name!r}.{suggest(hook_name, valid)} Valid "
                f"hooks: {', '.join(valid)}."
            )
            if impl.plugin_name in requested:
                raise PluginError(f"plugin {impl.plugin_name!r} implements {fault}")
            faults.setdefault(impl.plugin_name, []).append(fault)
    for plugin_name in faults:
        manager.unregister(name=plugin_name)
    return [PluginFailure(name, " ".join(found)) for name, found in faults.items()]


def _load_entry_points(manager: pluggy.PluginManager) -> list[PluginFailure]:
    """Register the plugins of the `seqkit` entry-point group; return failures."""
    failures: list[PluginFailure] = []
    seen: set[str] = set()
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for entry_point in sorted(entry_points, key=lambda ep: ep.name):
        # Two installed distributions may declare the same name, as a stale
        # copy next to an editable install does; the first one wins.
        if entry_point.name in seen:
            continue
        seen.add(entry_point.name)
        fault = _load_entry_point(manager, entry_point)
        if fault is not None:
            failures.append(PluginFailure(entry_point.name, fault))
    return failures


def _load_entry_point(
    manager: pluggy.PluginManager, entry_point: importlib.metadata.EntryPoint
) -> str | None:
    """Import and register one entry-point plugin; return its fault, if any."""
    try:
        module = entry_point.load()
    except Exception as error:  # noqa: BLE001 - one broken plugin must not stop the rest
        return f"cannot import {entry_point.value}: {type(error).__name__}: {error}"
    other = manager.get_name(module)
    if other is not None:
        return f"its module {entry_point.value} is already registered as {other!r}"
    try:
        manager.register(module, name=entry_point.name)
    except pluggy.PluginValidationError as error:
        return f"invalid hook: {_one_line(error)}"
    log.debug("plugin %r registered from %s", entry_point.name, entry_point.value)
    return None


def _one_line(error: Exception) -> str:
    # pluggy's messages span several lines; the CLI prints errors as one.
    return " ".join(str(error).split())


def _register(manager: pluggy.PluginManager, module: object, name: str) -> None:
    try:
        manager.register(module, name=name)
    except pluggy.PluginValidationError as error:
        raise PluginError(
            f"plugin {name!r} has an invalid hook: {_one_line(error)}"
        ) from None
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
