"""CloudFormation YAML as plain data, and the values in it evaluated locally. Pure.

The local deployment reads ``template.yaml``, the file AWS SAM deploys, instead of a
second description of its resources in Python. This module is the reading half, shared
by the resource translations (:mod:`checkpoint_journal.local._template`: table, bucket)
and the event source mappings (:mod:`checkpoint_journal.local._esm`):

* :func:`template_path` and :func:`load_template` find and parse the template as
  CloudFormation does (short-form tags become long-form dicts, dates stay strings);
* :class:`Resolver` evaluates a property value: a literal, or ``!Ref`` to a template
  parameter (its ``Default`` or an override) or to a resource the local deployment
  created. Any other intrinsic function is an error, because it cannot be evaluated
  without AWS;
* :func:`resource_properties`, :func:`required`, :func:`non_empty_list`,
  :func:`mapping` and :func:`number` check a property's shape and name its place in
  the template when it is wrong.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any, Final

import yaml

__all__ = [
    "TEMPLATE_ENV",
    "Resolver",
    "load_template",
    "mapping",
    "non_empty_list",
    "number",
    "required",
    "resource_properties",
    "template_path",
]

#: Environment variable naming a template file to use instead of the packaged one.
TEMPLATE_ENV: Final = "CHECKPOINT_JOURNAL_TEMPLATE"

# CloudFormation's short-form tags and the long-form key each one stands for.
_SHORT_FORMS: Final[Mapping[str, str]] = {
    "!Ref": "Ref",
    "!Condition": "Condition",
    "!Sub": "Fn::Sub",
    "!GetAtt": "Fn::GetAtt",
    "!If": "Fn::If",
    "!Equals": "Fn::Equals",
    "!Not": "Fn::Not",
    "!And": "Fn::And",
    "!Or": "Fn::Or",
    "!Join": "Fn::Join",
    "!Select": "Fn::Select",
    "!Split": "Fn::Split",
    "!FindInMap": "Fn::FindInMap",
    "!Base64": "Fn::Base64",
    "!Cidr": "Fn::Cidr",
    "!ImportValue": "Fn::ImportValue",
    "!GetAZs": "Fn::GetAZs",
}

_TIMESTAMP_TAG: Final = "tag:yaml.org,2002:timestamp"


# ---------------------------------------------------------------------------------------
# Loading


def template_path() -> pathlib.Path:
    """Where the template is: ``$CHECKPOINT_JOURNAL_TEMPLATE`` if set, else the package's.

    The package's ``checkpoint_journal/template.yaml`` is, in the repository, a symlink to
    the root ``template.yaml`` that SAM deploys, and a copy of it in an installed wheel.

    Raises:
        FileNotFoundError: the chosen file does not exist.
    """
    override = os.environ.get(TEMPLATE_ENV)
    if override:
        path = pathlib.Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{TEMPLATE_ENV}={override!r} does not name an existing file: point it at "
                "the SAM template.yaml, or unset it to use the packaged template"
            )
        return path
    path = pathlib.Path(__file__).parent.parent / "template.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"no SAM template at {path}: in a source checkout it is the symlink "
            "checkpoint_journal/template.yaml -> ../template.yaml (recreate it with "
            "`ln -s ../template.yaml checkpoint_journal/template.yaml`); or set "
            f"{TEMPLATE_ENV} to the template's path"
        )
    return path


def _construct_plain(loader: Any, node: Any) -> Any:
    """The value under a tag, built as if the tag were absent."""
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _construct_short_form(loader: Any, tag_suffix: str, node: Any) -> dict[str, Any]:
    """``!Fn value`` -> ``{"Fn::Fn": value}`` (``!Ref`` and ``!Condition`` lose no prefix)."""
    key = _SHORT_FORMS.get("!" + tag_suffix)
    if key is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation short-form tag !{tag_suffix}", node.start_mark
        )
    value = _construct_plain(loader, node)
    if key == "Fn::GetAtt" and isinstance(value, str):
        # "Resource.Attribute": the logical id has no dot, the attribute may
        # (e.g. Outputs.Name of a nested stack), so split on the first dot only.
        resource, dot, attribute = value.partition(".")
        if not dot or not resource or not attribute:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"!GetAtt {value!r} is not of the form Resource.Attribute",
                node.start_mark,
            )
        value = [resource, attribute]
    return {key: value}


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """A SafeLoader that reads CloudFormation YAML as CloudFormation does.

    Short-form tags become their long-form dicts, and timestamps stay strings (an
    unquoted ``AWSTemplateFormatVersion: 2010-09-09`` is a string to CloudFormation,
    a ``datetime.date`` to plain YAML).
    """


# A per-class copy, so SafeLoader itself keeps resolving timestamps.
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CfnLoader.add_multi_constructor("!", _construct_short_form)


def load_template(path: pathlib.Path | None = None) -> dict[str, Any]:
    """Parse the template (by default :func:`template_path`) into plain long-form data.

    Raises:
        FileNotFoundError: no template file.
        ValueError: the file is not a CloudFormation template (no ``Resources`` mapping),
            or uses a ``!`` tag that CloudFormation does not define.
    """
    if path is None:
        path = template_path()
    text = path.read_text(encoding="utf-8")
    try:
        # The loader is a SafeLoader: no arbitrary Python objects can be built.
        data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid CloudFormation YAML: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise ValueError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return data


# ---------------------------------------------------------------------------------------
# Resolving values


def resource_properties(
    template: Mapping[str, Any], logical_id: str, expected_type: str
) -> dict[str, Any]:
    """The ``Properties`` of resource ``logical_id``, which must be of ``expected_type``.

    Raises:
        ValueError: no such resource, another type, or no Properties mapping.
    """
    resources = template.get("Resources")
    if not isinstance(resources, Mapping) or logical_id not in resources:
        raise ValueError(f"template has no resource {logical_id!r} (a {expected_type})")
    resource = resources[logical_id]
    if not isinstance(resource, Mapping) or resource.get("Type") != expected_type:
        found = resource.get("Type") if isinstance(resource, Mapping) else resource
        raise ValueError(
            f"template resource {logical_id!r} is {found!r}, expected {expected_type}"
        )
    properties = resource.get("Properties")
    if not isinstance(properties, dict):
        raise ValueError(f"template resource {logical_id!r} has no Properties")
    return properties


class Resolver:
    """Evaluates template values: literals, and ``Ref`` to a parameter (or a resource).

    ``resources`` maps logical ids (or pseudo parameters) to what ``Ref`` gives for them
    locally (a table's or bucket's local name, a queue's local URL); without it, a
    ``Ref`` must name a template parameter.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        overrides: Mapping[str, Any] | None,
        resources: Mapping[str, str] | None = None,
    ):
        params = template.get("Parameters") or {}
        self._params: Mapping[str, Any] = params if isinstance(params, Mapping) else {}
        self._overrides: Mapping[str, Any] = overrides or {}
        self._resources: Mapping[str, str] = resources or {}

    def value(self, value: Any, where: str) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                if isinstance(arg, str) and arg in self._resources:
                    return self._resources[arg]
                return self._parameter(arg, where)
            if key.startswith("Fn::") or key == "Condition":
                refs = " or a resource created locally" if self._resources else ""
                raise ValueError(
                    f"{where}: {key} cannot be evaluated locally; only a literal or "
                    f"a Ref to a template parameter{refs} is supported here"
                )
        if isinstance(value, dict):
            return {k: self.value(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def _parameter(self, name: Any, where: str) -> Any:
        if not isinstance(name, str) or name not in self._params:
            if self._resources:
                raise ValueError(
                    f"{where}: Ref {name!r} is neither a template parameter nor a resource "
                    f"the local deployment creates ({', '.join(sorted(self._resources))}), "
                    "so it cannot be evaluated locally"
                )
            raise ValueError(
                f"{where}: Ref {name!r} is not a template parameter, so it cannot be "
                "evaluated locally"
            )
        definition = self._params[name]
        if name in self._overrides:
            raw = self._overrides[name]
        elif isinstance(definition, Mapping) and "Default" in definition:
            raw = definition["Default"]
        else:
            raise ValueError(
                f"{where}: parameter {name!r} has no Default; pass a value for it "
                "in parameters="
            )
        ptype = definition.get("Type") if isinstance(definition, Mapping) else None
        if ptype == "Number":
            return number(raw, f"{where} (parameter {name})")
        return raw

    def string(self, value: Any, where: str) -> str:
        resolved = self.value(value, where)
        if not isinstance(resolved, str):
            raise ValueError(f"{where}: expected a string, got {resolved!r}")
        return resolved

    def integer(self, value: Any, where: str) -> int:
        resolved = number(self.value(value, where), where)
        if not isinstance(resolved, int):
            raise ValueError(f"{where}: expected a whole number, got {resolved!r}")
        return resolved

    def boolean(self, value: Any, where: str) -> bool:
        resolved = self.value(value, where)
        # CloudFormation accepts booleans and their string spellings alike.
        if isinstance(resolved, bool):
            return resolved
        if isinstance(resolved, str) and resolved.lower() in ("true", "false"):
            return resolved.lower() == "true"
        raise ValueError(f"{where}: expected true or false, got {resolved!r}")


def number(raw: Any, where: str) -> int | float:
    """A CloudFormation number (a number or its string spelling): int when whole."""
    if isinstance(raw, bool):
        raise ValueError(f"{where}: expected a number, got {raw!r}")
    if isinstance(raw, int | float):
        return int(raw) if float(raw).is_integer() else raw
    if isinstance(raw, str):
        try:
            parsed = float(raw)
        except ValueError:
            pass
        else:
            return int(parsed) if parsed.is_integer() else parsed
    raise ValueError(f"{where}: expected a number, got {raw!r}")


def required(props: Mapping[str, Any], key: str, where: str) -> Any:
    """``props[key]``; a ValueError naming ``where`` when it is absent or null."""
    if key not in props or props[key] is None:
        raise ValueError(f"{where} has no {key}")
    return props[key]


def non_empty_list(value: Any, where: str) -> list[Any]:
    """``value`` if it is a non-empty list; a ValueError naming ``where`` otherwise."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list, got {value!r}")
    return value


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping; a ValueError naming ``where`` otherwise."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    return value
