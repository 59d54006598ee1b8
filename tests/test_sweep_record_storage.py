"""A sweep on a URI storage keeps its record (sweep.json) beside its results there as well as in its report folder,
so `--resume --name X --storage s3://...` on another machine continues it with its recorded settings and space
(moto's S3 server on 127.0.0.1; no Ray: the functions `python -m search.run` calls, and its exit for bad input)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from loopback_cluster import free_port
from s3_server import S3Server, s3_server

from search.run import main
from search.settings.locations import report_directory
from search.settings.sweep_config import build_sweep_config
from search.settings.sweep_record import RECORD_FILE, SweepRecord, new_record
from search.sweep_input import resumed_settings
from spaces import ConfigError

SPACE = {"fixed": {"training.epochs": 1}, "parameters": {"optimizer.lr": {"choice": [0.001, 0.01]}}}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server(free_port(), bucket="records") as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with the AWS_* variables that point pyarrow at it set for this test."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


def stored(s3: S3Server, key: str) -> bytes:
    return s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def start_sweep(machine: Path, storage: str, name: str, monkeypatch: pytest.MonkeyPatch, **settings: object) -> Path:
    """What `python -m search.run --name NAME --storage STORAGE ...` records before its trials start, on `machine`;
    returns the report folder."""
    machine.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(machine)
    space_file = machine / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE))
    sweep = build_sweep_config({}, {"space": str(space_file), "name": name, "storage": storage, **settings})
    report_dir = report_directory(sweep, name)
    report_dir.mkdir(parents=True)
    new_record(sweep, sweep.search_space(), name, f"{storage}/{name}", "phantom").write(report_dir)
    return report_dir


def resume(machine: Path, monkeypatch: pytest.MonkeyPatch, **given: object):  # noqa: ANN201 - a SweepConfig
    """`--resume` with the flags `given` (as flags_to_settings gives them), from `machine`'s working directory."""
    machine.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(machine)
    given = {"resume": True, **given}
    return resumed_settings(build_sweep_config({}, given), given, None)


def test_the_record_is_in_the_bucket_each_time_it_is_written_whole_and_alone(
    bucket: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = f"s3://{bucket.bucket}/written"
    report_dir = start_sweep(tmp_path / "machine1", storage, "first", monkeypatch, seed=7)
    key = f"written/first/{RECORD_FILE}"
    assert stored(bucket, key) == (report_dir / RECORD_FILE).read_bytes()
    assert json.loads(stored(bucket, key))["settings"]["seed"] == 7

    record = SweepRecord.read(report_dir)
    record.seconds["search"] = 12.5
    record.not_computed["gradcam"] = "a reason"
    record.write(report_dir)
    assert stored(bucket, key) == (report_dir / RECORD_FILE).read_bytes()
    assert json.loads(stored(bucket, key))["seconds"] == {"search": 12.5}
    # One put of the whole file: no temporary object beside it.
    assert bucket.keys("written/") == [key]


def test_resume_on_another_machine_takes_the_settings_and_space_from_the_bucket_under_the_flags_given(
    bucket: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = f"s3://{bucket.bucket}/elsewhere"
    first = tmp_path / "machine1"
    start_sweep(first, storage, "moved", monkeypatch, seed=7, phantom_count=200, searcher="grid",
                report_dir=str(first / "report"))
    (first / "space.yaml").unlink()  # the space file is gone too: only the bucket is shared

    resumed = resume(tmp_path / "machine2", monkeypatch, name="moved", storage=storage, seed=8)
    assert resumed.resume and resumed.phantom_count == 200 and resumed.searcher == "grid"
    assert resumed.seed == 8  # a flag given now wins over the record
    space = resumed.search_space()
    assert space.parameters.keys() == {"optimizer.lr"} and space.fixed["training.epochs"] == 1
    # The first machine's report folder is not this one's: the command's own (./sweeps/<name>) is used.
    assert resumed.report_dir is None
    assert not (tmp_path / "machine2" / "sweeps").exists()


def test_the_report_folders_record_is_read_before_the_buckets(
    bucket: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = f"s3://{bucket.bucket}/both"
    machine = tmp_path / "machine"
    report_dir = start_sweep(machine, storage, "both", monkeypatch, seed=7)
    record = SweepRecord.read(report_dir)
    record.settings["seed"] = 9
    bucket.client().put_object(Bucket=bucket.bucket, Key=f"both/both/{RECORD_FILE}", Body=json.dumps(record.__dict__))
    assert resume(machine, monkeypatch, name="both", storage=storage).seed == 7


def test_without_a_record_anywhere_resume_says_so_and_uses_the_flags_given(
    bucket: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    storage = f"s3://{bucket.bucket}/none"
    resumed = resume(tmp_path, monkeypatch, name="unrecorded", storage=storage, seed=3)
    assert resumed.seed == 3 and resumed.space == "quick"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "No record of sweep 'unrecorded'" in lines[0], lines
    assert f"{storage}/unrecorded/{RECORD_FILE}" in lines[0] and "settings given" in lines[0]


def valid_record(**changes: object) -> dict:
    sweep = build_sweep_config({}, {"space": SPACE})
    return {**new_record(sweep, sweep.search_space(), "damaged", "s3://x/damaged", "phantom").__dict__, **changes}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"name": "damaged", "settings": {', "not valid JSON"),
        (b"\xff\xfe not text", "not valid JSON"),
        (b"[1, 2]", "holds a list"),
        (json.dumps({"name": "damaged"}).encode(), "missing fields ['experiment_path'"),
        (json.dumps(valid_record(extra=1)).encode(), "unknown fields ['extra']"),
        (json.dumps(valid_record(settings={"searcher": "nope"})).encode(), "searcher"),
        (json.dumps(valid_record(space={"parameters": {"optimizer.lr": {"choice": []}}})).encode(), "optimizer.lr"),
    ],
)
def test_a_damaged_record_in_the_bucket_is_a_config_error_naming_it(
    bucket: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, expected: str
) -> None:
    storage = f"s3://{bucket.bucket}/damaged"
    bucket.client().put_object(Bucket=bucket.bucket, Key=f"damaged/damaged/{RECORD_FILE}", Body=content)
    with pytest.raises(ConfigError) as error:
        resume(tmp_path, monkeypatch, name="damaged", storage=storage)
    assert f"{storage}/damaged/{RECORD_FILE}" in str(error.value) and expected in str(error.value), str(error.value)


def test_a_damaged_record_stops_the_command_with_one_error_line(
    bucket: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    storage = f"s3://{bucket.bucket}/cut"
    bucket.client().put_object(Bucket=bucket.bucket, Key=f"cut/cut/{RECORD_FILE}", Body=b'{"name": "cu')
    monkeypatch.chdir(tmp_path)
    assert main(["--resume", "--name", "cut", "--storage", storage]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and f"{storage}/cut/{RECORD_FILE}" in error, error


def test_a_damaged_record_in_the_report_folder_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / RECORD_FILE).write_text('{"name": ')
    with pytest.raises(ConfigError, match="not valid JSON") as error:
        SweepRecord.read(tmp_path)
    assert str(tmp_path / RECORD_FILE) in str(error.value)


def test_a_record_that_cannot_be_uploaded_is_kept_on_disk_and_the_sweep_goes_on(
    bucket: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = build_sweep_config({}, {"space": SPACE})
    record = new_record(sweep, sweep.search_space(), "lost", "s3://no-such-bucket/lost", "phantom")
    path = record.write(tmp_path)
    assert SweepRecord.read(tmp_path) == record
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and f"s3://no-such-bucket/lost/{RECORD_FILE}" in lines[0]
    assert str(path) in lines[0]


def test_a_storage_uri_without_object_puts_gets_the_record_through_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = f"file://{tmp_path / 'store'}"
    report_dir = start_sweep(tmp_path / "machine1", storage, "local", monkeypatch, seed=5)
    copy = tmp_path / "store" / "local" / RECORD_FILE
    assert copy.read_bytes() == (report_dir / RECORD_FILE).read_bytes()
    assert sorted(path.name for path in copy.parent.iterdir()) == [RECORD_FILE]
    assert resume(tmp_path / "machine2", monkeypatch, name="local", storage=storage).seed == 5
