"""Fuzzed input: any search space, sweep config file or command line is either a valid sweep or one ConfigError naming
the field, never a traceback (TypeError, KeyError, AttributeError, a bare ValueError or pydantic's ValidationError).

Inputs are generated near the valid ones (real field names with wrong types and values, unknown keys, nesting where
scalars belong, YAML anchors, tags and odd scalars, huge and non-finite numbers, unicode) and as mutations of the real
presets. The examples are derandomized, so a failure found once is found on every run and in CI.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from search.settings.cli import build_parser, flags_to_settings
from search.settings.sweep_checks import max_epochs
from search.settings.sweep_config import SweepConfig, build_sweep_config, read_config_file
from search.tuning.schedulers import SCHEDULERS
from search.tuning.searchers import SEARCHERS, SearchGoal
from spaces import ConfigError, TrialConfig, list_presets, load_space
from spaces.space import PRESET_DIRECTORY

FUZZ = settings(
    max_examples=200, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REPOSITORY = Path(__file__).resolve().parents[1]

# Real keys, so that generated inputs reach the validators behind the first "unknown field".
TRIAL_KEYS = sorted(TrialConfig().to_flat()) + [
    "real_fraction.0", "synthetic.proportion.1", "synthetic.generator", "synthetic.settings.training_steps",
    "synthetic.settings.block_out_channels", "synthetic.settings.strength", "augmentation.magnitude",
]
SPACE_KEYS = ["name", "description", "fixed", "parameters", "sweep"]
PARAMETER_KEYS = ["choice", "uniform", "loguniform", "integer", "when", "mutable"]
SWEEP_KEYS = sorted(SweepConfig.model_fields)
NESTED_SWEEP_KEYS = {
    "resources": ["cpus", "gpus"], "wandb": ["mode", "project", "entity"], "generator_resources": ["cpus", "gpus", "custom"],
    "quality": ["max_images_per_class", "memorization_percentile", "kid_subset_size"],
}

# Odd scalars YAML and pydantic disagree about, or that break arithmetic downstream.
EDGE_NUMBERS = [0, -1, 1, 2, 10**30, -(10**30), 2**63, 1e308, -1e-308, math.inf, -math.inf, math.nan, 0.5, 1e-12]
scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(EDGE_NUMBERS), st.integers(), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["", "none", "ddpm", "basic_cnn", "adam", "all", "randaugment", "..", "a/b",
                                           "é🙂", "0", "1e3", "null", "~", "yes", "NaN"]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(TRIAL_KEYS)),
                                                        children, max_size=3),
    ),
    max_leaves=8,
)
keys = st.one_of(st.sampled_from(TRIAL_KEYS), st.text(max_size=10), st.integers(-2, 3), st.booleans(), st.none())


@st.composite
def parameters(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    parameter: dict[Any, Any] = {}
    for key in draw(st.lists(st.one_of(st.sampled_from(PARAMETER_KEYS), st.text(max_size=6)), max_size=3, unique=True)):
        if key in ("uniform", "loguniform", "integer"):
            parameter[key] = draw(st.one_of(st.lists(st.sampled_from(EDGE_NUMBERS), min_size=0, max_size=3), values))
        elif key == "when":
            parameter[key] = draw(st.one_of(st.dictionaries(st.sampled_from(TRIAL_KEYS), values, max_size=2), values))
        else:
            parameter[key] = draw(values)
    return parameter


@st.composite
def spaces(draw: st.DrawFn) -> Any:
    """A search-space mapping near the valid ones, or (rarely) something that is not a mapping at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(values)
    space: dict[Any, Any] = {}
    chosen_keys = draw(st.lists(st.sampled_from(SPACE_KEYS), max_size=4, unique=True))
    if draw(st.integers(0, 9)) == 0:
        chosen_keys.append(draw(st.text(max_size=6)))
    for key in chosen_keys:
        if key in ("name", "description") and draw(st.integers(0, 4)):
            space[key] = draw(st.text(max_size=12))
        elif key == "fixed":
            space[key] = draw(st.one_of(st.dictionaries(keys, values, max_size=4), values))
        elif key == "parameters":
            space[key] = draw(st.one_of(st.dictionaries(keys, parameters(), max_size=4), values))
        elif key == "sweep":
            space[key] = draw(st.one_of(st.dictionaries(st.sampled_from(SWEEP_KEYS), values, max_size=3), values))
        else:
            space[key] = draw(values)
    return space


def preset(name: str) -> dict[str, Any]:
    return yaml.safe_load((PRESET_DIRECTORY / f"{name}.yaml").read_text())


def paths_of(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every position in a nested mapping/list, as a path of keys and indices."""
    found = [prefix]
    if isinstance(node, Mapping):
        for key, child in node.items():
            found += paths_of(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += paths_of(child, (*prefix, index))
    return found


@st.composite
def mutated_presets(draw: st.DrawFn) -> Any:
    """A real preset with one to three values replaced, keys deleted or unknown keys added."""
    document = preset(draw(st.sampled_from(list_presets())))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths_of(document)))
        if not path:
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(values)
    return document


def check_sweep(sweep: SweepConfig) -> None:
    """What `search.run.prepare` checks before it loads data, so these runs stay in-process and fast."""
    space = sweep.search_space()
    space.validate_samples(f"space {space.name!r}")
    SEARCHERS.get(sweep.searcher)(space, SearchGoal(metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples,
                                                seed=sweep.seed))
    SCHEDULERS.get(sweep.scheduler)(space, max_epochs(space))


def assert_named(error: ConfigError) -> None:
    assert error.field and isinstance(error.field, str), error
    assert error.allowed, error
    assert "\n" not in str(error), str(error)


def check_space_mapping(document: Any, tmp_path: Path) -> None:
    """As an inline mapping and as a YAML file: a SearchSpace whose corner samples validate, or a ConfigError."""
    path = tmp_path / "fuzzed_space.yaml"
    try:
        text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        return  # not representable as YAML (cannot happen for these strategies, kept for safety)
    path.write_text(text)
    for reference in ([document] if isinstance(document, Mapping) else []) + [str(path)]:
        try:
            space = load_space(reference)
            space.validate_samples("fuzz")
            SCHEDULERS.get("asha")(space, max_epochs(space))
        except ConfigError as error:
            assert_named(error)
            event(f"ConfigError {error.field.split('[')[0].split('.')[0]}")
        else:
            event("valid space")


@FUZZ
@given(document=spaces())
@example(document={"fixed": {"training.epochs": math.nan}})
@example(document={"fixed": {"real_fraction": 10**30}})
@example(document={"parameters": {"optimizer.lr": {"uniform": [math.nan, 1.0]}}})
@example(document={"parameters": {"optimizer.lr": {"loguniform": [-math.inf, math.inf]}}})
@example(document={"parameters": {"training.epochs": {"integer": [1, 10**30]}}})
@example(document={"parameters": {"x": {"choice": [1], "when": {"x": 1}}}})
@example(document={"parameters": {1: {"choice": [1]}}})
@example(document={"parameters": {"model.backbone": {"choice": ["basic_cnn"]},
                                  "x": {"choice": [1], "when": {"model.backbone": []}}}})
@example(document={"fixed": {None: 1}})
def test_fuzzed_space_is_valid_or_a_named_config_error(tmp_path_factory: pytest.TempPathFactory, document: Any) -> None:
    check_space_mapping(document, tmp_path_factory.mktemp("space"))


@FUZZ
@given(document=mutated_presets())
def test_mutated_preset_is_valid_or_a_named_config_error(tmp_path_factory: pytest.TempPathFactory, document: Any) -> None:
    check_space_mapping(document, tmp_path_factory.mktemp("preset"))


YAML_EDGE_TEXTS = [
    "", "~", "[]", "- 1\n- 2", "42", "'quick'", "fixed: &a {training.epochs: 2}\nparameters: *a",
    "base: &b {choice: [1]}\nparameters:\n  model.dropout:\n    <<: *b\n    uniform: [0, 0.5]",
    "fixed:\n  training.epochs: 1\n  training.epochs: 2", "fixed: !!python/object:os.system {}", "fixed: {a: !!binary aGk=}",
    "parameters: {optimizer.lr: {uniform: [.nan, .inf]}}", "fixed: {training.epochs: 1e400}", "\t- bad indent",
    "fixed: {model.backbone: \"\\u0000\"}", "fixed: {2001-01-01: 1}", "parameters: {optimizer.lr: {choice: [0x10, 0o7]}}",
    "fixed:\n  ? [a, b]\n  : 1", "%YAML 1.2\n---\nfixed: {}", "--- a\n--- b", "fixed: {training.epochs: !!float 3}",
]


def nested_aliases(depth: int, key: str) -> str:
    """A few lines of YAML whose aliases expand to 9 ** depth values (a "billion laughs")."""
    lines = ["defs:", "  - &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"  - &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]" for level in range(1, depth)]
    return "\n".join(lines) + f"\n{key}: *a{depth - 1}\n"


@pytest.mark.parametrize(
    "text",
    [nested_aliases(9, "parameters"), "parameters: {x: &p {choice: [*p]}}", "fixed: &r {training.epochs: 2, loop: *r}"],
    ids=["billion-laughs", "self-referring-parameter", "self-referring-fixed"],
)
def test_yaml_aliases_that_expand_without_bound_are_refused_quickly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    for load in (load_space, read_config_file):
        with pytest.raises(ConfigError, match=r"aliases expand to more than 100000 values \(or refer to themselves\)") as error:
            load(str(path))
        assert len(str(error.value)) < 2000


@FUZZ
@given(text=st.one_of(st.sampled_from(YAML_EDGE_TEXTS), st.text(max_size=60),
                      st.builds(lambda a, b: a + b, st.sampled_from(YAML_EDGE_TEXTS), st.text(max_size=20))))
def test_fuzzed_yaml_text_is_a_space_or_a_named_config_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("yaml") / "space.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if _encodable(text) else path.write_bytes(b"\xff\xfe")
    for load in (load_space, read_config_file):
        try:
            loaded = load(str(path))
            if load is load_space:
                loaded.validate_samples("fuzz")
            else:
                check_sweep(build_sweep_config(loaded, {}, str(path)))
        except ConfigError as error:
            assert_named(error)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def sweep_settings(draw: st.DrawFn) -> Any:
    """A --config mapping near the valid ones: real settings with wrong values, nested groups, unknown keys."""
    if draw(st.integers(0, 19)) == 0:
        return draw(values)
    chosen: dict[Any, Any] = {}
    for key in draw(st.lists(st.one_of(st.sampled_from(SWEEP_KEYS), st.text(max_size=6)), max_size=4, unique=True)):
        if key in NESTED_SWEEP_KEYS and draw(st.booleans()):
            chosen[key] = draw(st.dictionaries(st.sampled_from([*NESTED_SWEEP_KEYS[key], "bogus"]), values, max_size=2))
        elif key == "space" and draw(st.booleans()):
            chosen[key] = draw(st.one_of(st.sampled_from([*list_presets(), "nope", "/no/such.yaml", ""]), spaces()))
        elif key == "split_fractions":
            chosen[key] = draw(st.one_of(st.lists(st.sampled_from(EDGE_NUMBERS + [0.7, 0.1, 0.2]), max_size=4), values))
        else:
            chosen[key] = draw(values)
    return chosen


@FUZZ
@given(config=sweep_settings())
@example(config={"num_samples": 10**30, "space": "quick"})
@example(config={"time_budget_s": math.nan})
@example(config={"time_budget_s": math.inf})
@example(config={"split_fractions": [math.nan, 0.5, 0.5]})
@example(config={"resources": {"cpus": math.inf}})
@example(config={"metric": None})
@example(config={"space": {"sweep": {"space": "quick"}}})
@example(config={"space": {"sweep": {"bogus": 1}}})
@example(config={"name": "../../outside"})
@example(config={"seed": 2**32})
def test_fuzzed_config_file_is_a_sweep_or_a_named_config_error(tmp_path_factory: pytest.TempPathFactory, config: Any) -> None:
    path = tmp_path_factory.mktemp("config") / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    try:
        sweep = build_sweep_config(read_config_file(str(path)), {}, str(path))
        check_sweep(sweep)
    except ConfigError as error:
        assert_named(error)
        event(f"ConfigError {error.field.split('.')[0]}")
        return
    event("valid sweep")
    for number in (sweep.time_budget_s, sweep.resources.cpus, sweep.resources.gpus, *sweep.split_fractions):
        assert number is None or math.isfinite(number), sweep
    # The name is a folder under storage: it never climbs out of it or nests.
    assert sweep.name is None or (Path(sweep.name).name == sweep.name and sweep.name not in (".", "..")), sweep.name


@pytest.mark.parametrize(("field", "location"), [("storage", ""), ("report_dir", "a\x00b"), ("pool", " ")])
def test_an_empty_or_nul_holding_location_is_refused(field: str, location: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: .* a folder or URI is needed"):
        build_sweep_config({}, {field: location})


@pytest.mark.parametrize("name", ["../elsewhere", "a/b", "..", ".", "", "a\\b", "tab\there"])
def test_a_sweep_name_that_is_not_one_folder_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^name: .* a sweep name is one folder name"):
        build_sweep_config({}, {"name": name})


FLAG_VALUES = ["0", "-1", "1", "3", "1e400", "nan", "inf", "-inf", "1.5", "", "quick", "full", "ddpm", "{}", "{a: 1}",
               "[1, 2]", "'", "{generator_gpu: nan}", "..", "é", "--", "none", "pbt", "random", "grid", "max", "val_loss"]


def flag_arities() -> dict[str, int]:
    """Each flag and how many values it takes (0 for --x / --no-x switches)."""
    arities = {}
    for action in build_parser("sources", list_presets())._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                arities[option] = action.nargs if isinstance(action.nargs, int) else (0 if action.nargs == 0 else 1)
    return arities


def flag_strings() -> list[str]:
    return sorted(flag_arities())


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """Flags with the number of values each takes, so that most command lines get past argparse to validation."""
    arities = flag_arities()
    argv: list[str] = []
    for flag in draw(st.lists(st.sampled_from(sorted(arities)), max_size=5)):
        argv.append(flag)
        for _ in range(arities[flag]):
            argv.append(draw(st.one_of(st.sampled_from(FLAG_VALUES), st.from_regex(r"-?[0-9]{1,3}(\.[0-9]+)?", fullmatch=True),
                                       st.text(max_size=6))))
    return argv


@settings(FUZZ, suppress_health_check=[*FUZZ.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(argv=st.one_of(command_lines(), st.lists(st.one_of(st.sampled_from(flag_strings()), st.sampled_from(FLAG_VALUES),
                                                             st.text(max_size=6)), max_size=8)))
@example(argv=["--time-budget-s", "nan"])
@example(argv=["--config", "\x00"])
@example(argv=["--split-fractions", "nan", "0.5", "0.5"])
@example(argv=["--generator-resources-custom", "{generator_gpu: nan}"])
@example(argv=["--resources-cpus", "inf"])
@example(argv=["--max-api-spend-usd", "inf"])
@example(argv=["--space", str(PRESET_DIRECTORY / "quick.yaml"), "--scheduler", "pbt", "--searcher", "random"])
def test_fuzzed_command_line_is_a_sweep_or_an_error_line(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()  # hypothesis runs many examples in one test call: start each with empty output
    parser = build_parser("sources", list_presets())
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_info:
        # argparse's own refusal: usage plus one `error:` line, exit 2.
        assert exit_info.code == 2
        assert "error:" in capsys.readouterr().err
        return
    try:
        config_file = read_config_file(arguments.config) if arguments.config else {}
        check_sweep(build_sweep_config(config_file, flags_to_settings(arguments), arguments.config))
    except ConfigError as error:
        assert_named(error)
        event(f"ConfigError {error.field.split('.')[0]}")
    else:
        event("valid sweep")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--time-budget-s", "nan"], "time_budget_s"),
        (["--num-samples", "many"], "--num-samples"),
    ],
)
def test_the_command_prints_one_error_line_and_exits_2(tmp_path: Path, flags: list[str], expected: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "search.run", "--storage", str(tmp_path), *flags],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2, completed.stderr
    error_lines = [line for line in completed.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and expected in error_lines[0], completed.stderr
    assert "Traceback" not in completed.stderr
