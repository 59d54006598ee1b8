"""The command line of `python -m search.run`, generated from SweepConfig so every flag is also a YAML key."""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from search.settings.sweep_config import SweepConfig
from spaces.space import yaml_problem

EPILOG_TEMPLATE = """\
Every flag is also a key of the --config YAML file (nested ones as mappings: `resources: {{cpus: 2}}`,
`wandb: {{mode: online}}`). Precedence: built-in defaults < the space's own `sweep:` block < --config < flags.

Data sources (--data):
{sources}

Search spaces (--space): {presets}, or the path of your own YAML file with `fixed:`, `parameters:`
(each with one of choice / uniform / loguniform / integer, optional `when:` and `mutable:`) and `sweep:`.

Outputs, in the report folder: leaderboard.csv, best_config.yaml (run it again with --config),
plots/*.png, test_metrics.json; Ray Tune's results under --storage; W&B runs (offline by default).
"""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar_type(annotation: Any) -> tuple[Any, list[Any] | None, bool]:
    """(argparse type, choices, is_bool) for a field annotation such as `int | None` or Literal[...]."""
    arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(arguments) == 1:
        return _scalar_type(arguments[0])
    if origin is typing.Literal:
        values = list(typing.get_args(annotation))
        return type(values[0]), values, False
    if annotation is bool:
        return None, None, True
    if annotation in (int, float):
        return annotation, None, False
    return str, None, False


def _mapping(text: str) -> dict[str, Any]:
    """A mapping flag is written as YAML: --generator-resources-custom '{generator_gpu: 1}'."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(
            f"expected a YAML mapping such as '{{name: 1}}', got {text!r}: {yaml_problem(error)}"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as '{{name: 1}}', got {text!r}")
    return value


def _add_field(parser: argparse.ArgumentParser, name: str, field: FieldInfo, destination: str) -> None:
    help_text = field.description or ""
    if name == "split_fractions":
        parser.add_argument(
            _flag(name),
            dest=destination,
            type=float,
            nargs=3,
            metavar=("TRAIN", "VAL", "TEST"),
            help=help_text,
            default=argparse.SUPPRESS,
        )
        return
    nested = [argument for argument in typing.get_args(field.annotation) if isinstance(argument, type)
              and issubclass(argument, BaseModel)]
    if typing.get_origin(field.annotation) is dict or nested:
        parser.add_argument(
            _flag(name), dest=destination, type=_mapping, metavar="YAML", help=help_text, default=argparse.SUPPRESS
        )
        return
    argument_type, choices, is_bool = _scalar_type(field.annotation)
    if is_bool:
        parser.add_argument(
            _flag(name), dest=destination, action=argparse.BooleanOptionalAction, help=help_text, default=argparse.SUPPRESS
        )
        return
    parser.add_argument(
        _flag(name), dest=destination, type=argument_type, choices=choices, help=help_text, default=argparse.SUPPRESS
    )


def build_parser(sources_help: str, presets: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m search.run",
        description="Search augmentation policy, real-data fraction and backbone settings for a medical image "
        "classifier with Ray Tune.",
        epilog=EPILOG_TEMPLATE.format(sources=sources_help, presets=", ".join(presets)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", help="YAML file of sweep settings (a best_config.yaml reruns a found configuration)", default=None
    )
    for name, field in SweepConfig.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            group = parser.add_argument_group(name)
            for sub_name, sub_field in annotation.model_fields.items():
                _add_field(group, f"{name}_{sub_name}", sub_field, f"{name}.{sub_name}")
        else:
            _add_field(parser, name, field, name)
    return parser


def flags_to_settings(namespace: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the user gave (others are suppressed), nested like the YAML file."""
    settings: dict[str, Any] = {}
    for destination, value in vars(namespace).items():
        if destination == "config":
            continue
        if "." in destination:
            group, key = destination.split(".", 1)
            settings.setdefault(group, {})[key] = value
        else:
            settings[destination] = value
    return settings
