"""The `openai_images` generator against a real HTTP server on 127.0.0.1 (tests/image_api_server.py) through the
real openai client: what is sent, retries and refusals, the pool's once-only, paid-for images, the spend cap, the
upload opt-in, and a sweep whose files and output never hold the API key."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import yaml

from generators import GeneratorError, OpenAIImagesSettings, create_generator
from generators.actors.generator_actor import create_generator_actors
from generators.actors.pool_actor import get_synthetic_pool
from generators.errors import BudgetError
from generators.pool import PoolKey, SyntheticPool
from search import pool as pool_command
from search.run import main
from search.sweep_input import prepare
from spaces import ConfigError
from tests.image_api_server import Fault, ImageApiServer, running_server
from trainables.datasets import load_dataset

# Set when this file is collected, before any test starts Ray, so Ray's workers inherit it as a user's shell would
# pass it on; a random value, so finding it anywhere can only mean it leaked.
PLANTED_KEY = "sk-planted-" + secrets.token_hex(16)
os.environ["OPENAI_API_KEY"] = PLANTED_KEY

TRAIN_IDS = [f"train/{index:03d}" for index in range(6)]
SHAPE = (1, 16, 16)


@pytest.fixture(scope="module")
def server() -> Iterator[ImageApiServer]:
    with running_server(PLANTED_KEY) as running:
        yield running


@pytest.fixture
def api(server: ImageApiServer) -> ImageApiServer:
    """The module's server, with no scripted faults and nothing received yet."""
    server.reset()
    return server


def sources(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *SHAPE), dtype=np.uint8)


def generator(server: ImageApiServer, **settings: object):
    return create_generator(
        OpenAIImagesSettings(base_url=server.base_url, **settings), num_classes=2, channels=1, image_size=16,
        class_names=["healthy", "mild"],
    )


def looks_like_variation_of(image: np.ndarray, source: np.ndarray) -> bool:
    # The server inverts the uploaded (upscaled, RGB) source; back at 16 px gray it is close to 255 - source.
    return float(np.abs(image.astype(int) - (255 - source.astype(int))).mean()) < 25


# ----- the generator and the client


def test_variations_send_square_rgb_pngs_and_the_settings_and_return_the_datasets_shape(api: ImageApiServer) -> None:
    images = sources(3)
    images[1] = images[0]
    made = generator(api, n=2, size=512).generate(1, [11, 12, 13], images)
    assert made.shape == (3, *SHAPE) and made.dtype == np.uint8
    for image, source in zip(made, images):
        assert looks_like_variation_of(image, source)
    # Positions 0 and 1 share a source: one call with n = 2; position 2 has a call of its own.
    assert sorted(request.fields["n"] for request in api.received) == ["1", "2"]
    for request in api.received:
        assert request.path == "/v1/images/variations" and request.authorized
        assert request.fields == {"model": "dall-e-2", "n": request.fields["n"], "size": "512x512", "response_format": "b64_json"}
        assert (request.image_format, request.image_mode, request.image_size) == ("PNG", "RGB", (512, 512))
        assert request.image_bytes < 4 * 2**20


def test_edits_send_the_prompt_with_the_class_name(api: ImageApiServer) -> None:
    made = generator(
        api, endpoint="edits", model="gpt-image-2", size=1024, prompt="a brain MRI slice, {class} dementia",
        price_per_image_usd=0.04,
    ).generate(1, [5], sources(1))
    assert made.shape == (1, *SHAPE)
    (request,) = api.received
    assert request.path == "/v1/images/edits"
    assert request.fields == {"model": "gpt-image-2", "n": "1", "size": "1024x1024", "prompt": "a brain MRI slice, mild dementia"}


def test_rate_limits_and_server_errors_are_retried_after_retry_after(api: ImageApiServer) -> None:
    api.script(Fault(status=429, headers={"Retry-After": "1"}), Fault(status=503))
    made = generator(api, max_retries=2).generate(0, [1], sources(1))
    assert made.shape == (1, *SHAPE)
    first, second, third = api.received
    # The client waited as the server asked before trying again.
    assert second.at - first.at >= 0.95
    assert first.image_digest == second.image_digest == third.image_digest


def test_retries_and_waits_are_bounded(api: ImageApiServer) -> None:
    api.script(*[Fault(status=500)] * 5)
    with pytest.raises(GeneratorError, match="failed \\(1 retries allowed.*500"):
        generator(api, max_retries=1).generate(0, [1], sources(1))
    assert len(api.received) == 2
    api.reset()
    api.script(Fault(delay_s=2.0))
    with pytest.raises(GeneratorError, match="failed \\(0 retries allowed.*timed out"):
        generator(api, max_retries=0, timeout_s=0.3).generate(0, [1], sources(1))


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault(status=400), "refused the source image.*400.*safety system"),
        (Fault(malformed=True), "malformed JSON"),
        (Fault(bad_image=True), "not a readable image"),
        (Fault(too_few=True), "answered 1 images for a call of n = 2"),
    ],
)
def test_a_refused_or_malformed_answer_is_an_error_never_an_image(api: ImageApiServer, fault: Fault, message: str) -> None:
    api.script(fault)
    with pytest.raises(GeneratorError, match=message):
        generator(api, n=2, max_retries=3).generate(0, [1, 2], np.repeat(sources(1), 2, axis=0))
    assert len(api.received) == 1  # none of these is retried


def test_the_key_comes_from_the_environment_only(api: ImageApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(GeneratorError, match="OPENAI_API_KEY is not set"):
        generator(api).generate(0, [1], sources(1))
    assert api.received == []
    assert "api_key" not in OpenAIImagesSettings.model_fields


def test_settings_price_known_models_and_hash_only_what_changes_the_images() -> None:
    assert OpenAIImagesSettings(size=1024).price_per_image_usd == 0.020
    with pytest.raises(ValueError, match="price of model 'gpt-image-2' at size 256 is not known.*price_per_image_usd"):
        OpenAIImagesSettings(model="gpt-image-2")
    with pytest.raises(ValueError, match="'edits' needs a prompt"):
        OpenAIImagesSettings(endpoint="edits")
    with pytest.raises(ValueError, match="takes no prompt"):
        OpenAIImagesSettings(prompt="a {class} scan")
    with pytest.raises(ValueError, match=r"other than \{class\}"):
        OpenAIImagesSettings(endpoint="edits", prompt="a {grade} scan")
    with pytest.raises(ValueError, match="http"):
        OpenAIImagesSettings(base_url="127.0.0.1:8000")
    with pytest.raises(ValueError, match="less than or equal to 10"):
        OpenAIImagesSettings(n=11)
    base = OpenAIImagesSettings()
    fetched_differently = OpenAIImagesSettings(n=4, max_concurrent_requests=16, timeout_s=5, max_retries=0, price_per_image_usd=1)
    assert fetched_differently.settings_hash == base.settings_hash
    for other in (OpenAIImagesSettings(size=512), OpenAIImagesSettings(base_url="http://127.0.0.1:9/v1")):
        assert other.settings_hash != base.settings_hash


# ----- through the pool


# One call at a time, so scripted answers meet the calls in canonical order; two images per call of one source.
POOL_SETTINGS = {"n": 2, "max_concurrent_requests": 1}


@pytest.fixture(scope="module")
def generator_actor(server: ImageApiServer, module_ray: None) -> Iterator[OpenAIImagesSettings]:
    """The generator actor every pool test's key finds by name (each test has a pool root of its own)."""
    settings = OpenAIImagesSettings(base_url=server.base_url, **POOL_SETTINGS)
    key = PoolKey(generator="openai_images", settings_hash=settings.settings_hash, dataset="api-16px-1ch")
    actors = create_generator_actors(
        1, {"num_cpus": 0, "max_concurrency": settings.concurrent_calls}, key, settings, num_classes=2, channels=1,
        image_size=16,
    )
    yield settings
    for actor in actors:
        ray.kill(actor, no_restart=True)


class PoolUnderTest:
    """A fresh pool root with one dataset, and its pool actor."""

    def __init__(self, root: Path, settings: OpenAIImagesSettings, cap_usd: float) -> None:
        self.root = str(root)
        self.settings = settings
        self.key = PoolKey(generator="openai_images", settings_hash=settings.settings_hash, dataset="api-16px-1ch")
        SyntheticPool(self.root).register_dataset(self.key.dataset, TRAIN_IDS, image_shape=SHAPE)
        self.actor = get_synthetic_pool(self.root)
        ray.get(self.actor.set_api_spend_cap.remote(cap_usd))
        self.sources = dict(zip(TRAIN_IDS, sources(len(TRAIN_IDS), seed=1)))

    def request(self, count: int, allowed: list[str]) -> tuple[np.ndarray, list[dict]]:
        return ray.get(self.submit(count, allowed), timeout=120)

    def submit(self, count: int, allowed: list[str], class_index: int = 0) -> ray.ObjectRef:
        return self.actor.request.remote(self.key, class_index, count, TRAIN_IDS, allowed, {i: self.sources[i] for i in allowed})

    def spend(self) -> dict:
        cap, rows = SyntheticPool(self.root).spend.summary()
        return {"cap": cap, **(rows[0] if rows else {"images": 0, "calls": 0, "usd": 0.0})}


@pytest.fixture
def pool(api: ImageApiServer, generator_actor: OpenAIImagesSettings, tmp_path: Path) -> Iterator[PoolUnderTest]:
    """A pool with a cap of 1 USD (tests lower it with set_api_spend_cap)."""
    under_test = PoolUnderTest(tmp_path / "pool", generator_actor, cap_usd=1.0)
    yield under_test
    ray.kill(under_test.actor, no_restart=True)


def test_the_pool_asks_for_each_image_once_stores_it_and_counts_its_cost(
    api: ImageApiServer, pool: PoolUnderTest, capsys: pytest.CaptureFixture
) -> None:
    allowed = TRAIN_IDS[:3]
    images, records = pool.request(5, allowed)
    # Canonical order: round 0 over the sorted sources, then round 1; calls of up to n = 2 per source.
    assert [(record["source_id"], record["slot"]) for record in records] == [
        (allowed[0], 0), (allowed[1], 0), (allowed[2], 0), (allowed[0], 1), (allowed[1], 1)
    ]
    for image, record in zip(images, records):
        assert looks_like_variation_of(image, pool.sources[record["source_id"]])
    assert sorted(request.fields["n"] for request in api.received) == ["1", "2", "2"]
    assert (pool.spend()["cap"], pool.spend()["images"], pool.spend()["calls"]) == (1.0, 5, 3)
    assert pool.spend()["usd"] == pytest.approx(5 * 0.016)

    # Asked again, by the same or a restarted pool actor: served from the pool, nothing requested twice.
    again, _ = pool.request(5, allowed)
    np.testing.assert_array_equal(again, images)
    ray.kill(pool.actor, no_restart=False)
    pool.actor = get_synthetic_pool(pool.root)
    more, _ = pool.request(6, allowed)
    np.testing.assert_array_equal(more[:5], images)
    assert len(api.received) == 4 and api.received[-1].fields["n"] == "1"
    assert pool.spend()["images"] == 6 and pool.spend()["usd"] == pytest.approx(6 * 0.016)

    assert pool_command.main(["--pool", pool.root, "list"]) == 0
    listed = capsys.readouterr().out
    assert "image API spend: 0.0960 USD in total; cap 1.00 USD" in listed
    assert pool.settings.settings_hash in listed.splitlines()[-1]


def test_a_request_past_the_cap_is_refused_before_anything_is_sent(api: ImageApiServer, pool: PoolUnderTest) -> None:
    ray.get(pool.actor.set_api_spend_cap.remote(0.05))
    pool.request(2, TRAIN_IDS[:2])
    with pytest.raises(BudgetError, match=r"spent 0\.0320 USD so far.*would cost 0\.0320 USD.*--max-api-spend-usd"):
        pool.request(4, TRAIN_IDS[:4])
    assert len(api.received) == 2 and pool.spend()["images"] == 2
    # Within the cap, what is left is made.
    pool.request(3, TRAIN_IDS[:4])
    assert len(api.received) == 3 and pool.spend()["usd"] == pytest.approx(0.048)


def test_requests_in_flight_at_once_cannot_pass_the_cap_together(api: ImageApiServer, pool: PoolUnderTest) -> None:
    ray.get(pool.actor.set_api_spend_cap.remote(0.05))
    api.script(Fault(delay_s=1.0))
    # Two trials ask at once, for different classes (so neither waits on the other's lock): each alone fits the cap.
    references = [pool.submit(2, TRAIN_IDS[:2], class_index) for class_index in (0, 1)]
    outcomes = []
    for reference in references:
        try:
            outcomes.append(ray.get(reference, timeout=120))
        except BudgetError as error:
            outcomes.append(error)
    refused = [outcome for outcome in outcomes if isinstance(outcome, BudgetError)]
    assert len(refused) == 1 and "requests in flight hold 0.0320 USD" in str(refused[0])
    assert len(api.received) == 2 and pool.spend()["usd"] == pytest.approx(0.032)


def test_a_refused_source_is_named_and_the_other_paid_images_are_kept(api: ImageApiServer, pool: PoolUnderTest) -> None:
    allowed = TRAIN_IDS[:3]
    api.script(Fault(status=400), Fault(), Fault(malformed=True))
    with pytest.raises(GeneratorError, match=rf"from source image \['{allowed[0]}'\].*400"):
        pool.request(3, allowed)
    stored = SyntheticPool(pool.root).records(pool.key, 0)
    # The refused and the malformed answer left nothing in the pool; the one image that came is kept and paid.
    assert [record.source_id for record in stored] == [allowed[1]]
    assert pool.spend()["images"] == 1
    _, records = pool.request(3, allowed)
    assert [record["source_id"] for record in records] == allowed
    assert len(api.received) == 5 and pool.spend()["images"] == 3


# ----- the sweep


def space_file(tmp_path: Path, base_url: str) -> Path:
    space = {
        "fixed": {"training.epochs": 1, "training.batch_size": 32, "model.backbone": "basic_cnn", "real_fraction": 0.5,
                  "synthetic.classes": "minority"},
        "parameters": {
            "synthetic.proportion": {"choice": [0.0, 1.0]},
            "synthetic.generator": {"choice": ["openai_images"], "when": {"synthetic.proportion": [1.0]}},
            "synthetic.settings.base_url": {"choice": [base_url], "when": {"synthetic.generator": "openai_images"}},
            "synthetic.settings.n": {"choice": [2], "when": {"synthetic.generator": "openai_images"}},
        },
    }
    path = tmp_path / "api_space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def sweep_arguments(tmp_path: Path, base_url: str, name: str) -> list[str]:
    return [
        "--space", str(space_file(tmp_path, base_url)), "--data", "phantom", "--phantom-count", "300",
        "--image-size", "16", "--searcher", "grid", "--scheduler", "none", "--storage", str(tmp_path / "results"),
        "--name", name, "--wandb-mode", "offline", "--no-final-test", "--max-api-spend-usd", "1",
    ]


def test_a_space_that_can_upload_images_needs_consent_and_a_key_before_ray_starts(
    api: ImageApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    arguments = sweep_arguments(tmp_path, api.base_url, "refused")
    host = api.base_url.split("/")[2]
    refusal = rf"allow_image_upload.*openai_images.*real training images.*{host}.*--allow-image-upload"
    with pytest.raises(ConfigError, match=refusal):
        prepare(arguments)
    assert main(arguments) == 2
    assert capsys.readouterr().err.count("\n") == 1
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match=f"OPENAI_API_KEY.*{host}.*environment variable OPENAI_API_KEY"):
        prepare([*arguments, "--allow-image-upload"])
    assert not (tmp_path / "results").exists() and api.received == []


@pytest.mark.parametrize(("preset", "generators"), [("kwon2024", "ddpm, stable_diffusion"), ("berdjouh2023", "ddpm, oversample")])
def test_the_thesis_presets_offer_openai_images_behind_the_opt_in(
    preset: str, generators: str, tmp_path: Path, preset_models: None
) -> None:
    # The preset's commented openai_images block, put to use as its comment says.
    text = (Path(__file__).parents[1] / "spaces" / "presets" / f"{preset}.yaml").read_text()
    assert f"choice: [{generators}]\n" in text
    text = text.replace(f"choice: [{generators}]\n", f"choice: [{generators}, openai_images]\n")
    text = re.sub(r"\n  # (synthetic\.settings\.)", r"\n  \1", text)
    space = tmp_path / f"{preset}_api.yaml"
    space.write_text(text)
    assert yaml.safe_load(text)["parameters"]["synthetic.settings.model"] == {
        "choice": ["dall-e-2"], "when": {"synthetic.generator": "openai_images"}
    }
    arguments = ["--space", str(space), "--phantom-count", "200", "--image-size", "16"]
    # Per-class proportions decide whether a trial draws it; the opt-in still sees it, with or without pregeneration.
    for pregenerate in ("--pregenerate", "--no-pregenerate"):
        with pytest.raises(ConfigError, match="openai_images.*127.0.0.1:8000.*--allow-image-upload"):
            prepare([*arguments, pregenerate])
    prepared = prepare([*arguments, "--allow-image-upload"])
    expected = {*generators.split(", "), "openai_images"} - {"oversample"}
    assert {demand.settings.generator for demand in prepared.generator_demands} >= expected


@pytest.mark.slow
def test_a_sweep_with_openai_images_pays_once_and_never_writes_the_key(
    api: ImageApiServer, tmp_path: Path, module_ray: None, capfd: pytest.CaptureFixture
) -> None:
    arguments = [*sweep_arguments(tmp_path, api.base_url, "first"), "--allow-image-upload"]
    assert main(arguments) == 0
    leaderboard = pd.read_csv(tmp_path / "results" / "first" / "leaderboard.csv")
    assert len(leaderboard) == 2 and set(leaderboard["status"]) == {"ok"}
    with_synthetic = leaderboard[leaderboard["synthetic.proportion"] > 0]
    assert int(with_synthetic["synthetic_images"].iloc[0]) > 0

    pool = SyntheticPool(str(tmp_path / "results" / "synthetic_pool"))
    train_ids = set(load_dataset("phantom", image_size=16, phantom_count=300).train.ids)
    stored = [
        record for row in pool.summary() for record in pool.records(PoolKey.from_dict(row), row["class_index"])
    ]
    assert len(stored) == int(with_synthetic["synthetic_images"].iloc[0])
    assert {record.generator for record in stored} == {"openai_images"} and {r.source_id for r in stored} <= train_ids
    # Every image the server made is in the pool: none was asked for twice, none thrown away.
    assert sum(int(request.fields["n"]) for request in api.received) == len(stored)
    assert all(request.authorized for request in api.received)
    assert pool.spend.summary()[1][0]["usd"] == pytest.approx(len(stored) * 0.016)

    output = capfd.readouterr()
    assert PLANTED_KEY not in output.out + output.err
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) > 20
    leaking = [str(path) for path in written if PLANTED_KEY.encode() in path.read_bytes()]
    assert leaking == []
