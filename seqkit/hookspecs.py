"""Every hook a seqkit plugin can implement.

A plugin is a module (or any object) with functions marked `@seqkit.hookimpl`
whose names match the specs below. Built-in components register through these
same hooks. Each `seqkit_add_*` hook returns a mapping from component name to
component class. The results of all plugins are collected, so no first result
wins. Two plugins that return the same name for the same kind raise
`PluginError`.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("seqkit")
hookimpl = pluggy.HookimplMarker("seqkit")


# ---------------------------------------------------------------- models


@hookspec
def seqkit_add_encoders() -> dict[str, type]:
    """Called once when the registry is built.

    Return {name: class} of `seqkit.Encoder` subclasses. A recipe selects one
    with `[encoder] plugin = "name"`.
    """


@hookspec
def seqkit_add_decoders() -> dict[str, type]:
    """Called once when the registry is built.

    Return {name: class} of `seqkit.Decoder` subclasses, selected with
    `[decoder] plugin = "name"`.
    """


@hookspec
def seqkit_add_attentions() -> dict[str, type]:
    """Called once when the registry is built.

    Return {name: class} of `seqkit.Attention` subclasses, selected with
    `[attention] plugin = "name"` and built by the decoder.
    """


# ---------------------------------------------------------------- decoding


@hookspec
def seqkit_add_samplers() -> dict[str, type]:
    """Called once when the registry is built.

    Return {name: class} of `seqkit.Sampler` subclasses, selected with
    `[sampler] plugin = "name"`.
    """


# ---------------------------------------------------------------- data


@hookspec
def seqkit_add_data_sources() -> dict[str, type]:
    """Called once when the registry is built.

    Return {name: class} of `seqkit.DataSource` subclasses, selected with
    `[data] plugin = "name"`.
    """


@hookspec
def seqkit_add_tokenizers() -> dict[str, type]:
    """Called once when the registry is built.

    Return {name: class} of `seqkit.Tokenizer` subclasses, selected with
    `[tokenizer] plugin = "name"`.
    """


# ---------------------------------------------------------------- training


@hookspec
def seqkit_add_tasks() -> dict[str, type]:
    """Called once when the registry is built.

    Return {name: class} of `seqkit.Task` subclasses. A data source names the
    task that batches, scores and samples its examples.
    """


@hookspec
def seqkit_add_metrics() -> dict[str, type]:
    """Called once when the registry is built.

    Return {name: class} of `seqkit.Metric` subclasses, listed in
    `[evaluate] metrics = [...]`.
    """
