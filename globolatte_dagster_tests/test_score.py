"""score.py in process: init() from AZUREML_MODEL_DIR, run() on real requests, bad input answered 400."""

from __future__ import annotations

import json
import os
import platform
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import sklearn
from werkzeug.test import EnvironBuilder

from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.environment import IncompatibleEnvironment
from globolatte_dagster.serving import score
from globolatte_dagster_tests.serving_fixtures import champions_bundle, trained_models

FIELDS = {"region", "customer_id", "recommendations", "segment", "model_version", "candidate", "cold_start"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """score.init() on a bundle laid out as Azure ML mounts a registered folder (one level down)."""
    case = trained_models()
    root = tmp_path_factory.mktemp("score")
    bundle, versions, _ = champions_bundle(case, root)
    model_dir = root / "azureml-models" / "globolatte-champions" / "1"
    shutil.copytree(bundle, model_dir / "champions")
    mp = pytest.MonkeyPatch()
    mp.setenv("AZUREML_MODEL_DIR", str(model_dir))
    score.init()
    yield case, versions
    mp.undo()
    score._scorer = None


def call(body, method: str = "POST"):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    request = EnvironBuilder(
        method=method, path="/score", data=data, content_type="application/json"
    ).get_request()
    response = score.run(request)
    return response.status_code, json.loads(response.get_data())


def day_after(case) -> str:
    return (case.case.last_day + timedelta(days=1)).isoformat()


def test_init_loads_every_regions_champion_and_get_names_the_versions(served):
    _, versions = served
    status, body = call(b"", method="GET")
    assert status == 200
    assert body["model_versions"] == versions
    assert set(versions) == set(REGION_KEYS)
    assert all(v.startswith(f"globolatte-{r}:") for r, v in versions.items())


def test_single_request_answers_the_contract_with_the_models_own_answer(served):
    case, versions = served
    model = case.models["canada"]
    customer = str(model.customers[3])
    req = {"region": "canada", "customer_id": customer, "date": day_after(case), "temp_max_c": 28.5, "k": 3}
    status, body = call(req)
    assert status == 200
    assert set(body) == FIELDS
    assert body["model_version"] == versions["canada"]
    assert body["cold_start"] is False
    assert len(body["recommendations"]) == 3
    scores = [r["score"] for r in body["recommendations"]]
    assert scores == sorted(scores, reverse=True)
    own = json.loads(json.dumps(model.recommend([req])[0]))
    assert body["recommendations"] == own["recommendations"] and body["segment"] == own["segment"]


def test_batch_keeps_request_order_across_regions_and_names_each_regions_version(served):
    case, versions = served
    reqs = []
    for i in range(12):
        region = REGION_KEYS[i % 3]
        cid = str(case.models[region].customers[i])
        reqs.append({"region": region, "customer_id": cid, "date": day_after(case), "k": 1 + i % 4})
    status, body = call({"requests": reqs})
    assert status == 200
    answers = body["responses"]
    assert [(a["region"], a["customer_id"]) for a in answers] == [
        (r["region"], r["customer_id"]) for r in reqs
    ]
    assert [len(a["recommendations"]) for a in answers] == [r["k"] for r in reqs]
    assert all(a["model_version"] == versions[a["region"]] for a in answers)
    assert body["model_versions"] == versions


def test_unknown_customer_gets_cold_start_picks_for_the_region(served):
    case, versions = served
    status, body = call({"region": "mexico", "customer_id": "NEVER-SEEN", "date": day_after(case), "k": 4})
    assert status == 200
    assert body["cold_start"] is True
    assert len(body["recommendations"]) == 4
    assert {r["product_id"] for r in body["recommendations"]} <= set(case.models["mexico"].products)
    assert body["model_version"] == versions["mexico"]


def test_discover_list_holds_only_products_the_customer_never_bought(served):
    case, _versions = served
    model = case.models["america"]
    bought = {
        str(c): {str(model.products[j]) for j in model.bought[i].indices}
        for i, c in enumerate(model.customers)
    }
    customers = [c for c, b in bought.items() if 0 < len(b) <= len(model.products) - 3][:5]
    reqs = [
        {"region": "america", "customer_id": c, "date": day_after(case), "k": 3, "exclude_purchased": True}
        for c in customers
    ]
    status, body = call({"requests": reqs})
    assert status == 200 and customers
    for c, answer in zip(customers, body["responses"], strict=True):
        picks = {r["product_id"] for r in answer["recommendations"]}
        assert len(picks) == 3 and not picks & bought[c], (c, picks, bought[c])
        assert answer["candidate"] == model.discover_champion and answer["cold_start"] is False
    top = call({**reqs[0], "exclude_purchased": False})[1]
    assert top["candidate"] == model.champion


def test_a_known_customer_with_one_visit_is_scored_from_their_purchases_not_as_a_cold_start(served):
    case, _ = served
    model = case.models["canada"]
    one_visit = [str(c) for i, c in enumerate(model.customers) if len(model.bought[i].indices) == 1]
    assert one_visit, "the simulated case has customers with a single product bought"
    status, body = call({"region": "canada", "customer_id": one_visit[0], "date": day_after(case)})
    assert status == 200 and body["cold_start"] is False


GOOD = {"region": "america", "customer_id": "C1", "date": "2025-02-01"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"region": "america", "customer_id": ', "malformed JSON"),
        (b"[1, 2]", "JSON object"),
        ({**GOOD, "region": "atlantis"}, "unknown region"),
        ({k: v for k, v in GOOD.items() if k != "customer_id"}, "customer_id"),
        ({**GOOD, "customer_id": 17}, "customer_id"),
        ({k: v for k, v in GOOD.items() if k != "date"}, "date"),
        ({**GOOD, "date": "01/02/2025"}, "date"),
        ({**GOOD, "temp_max_c": "hot"}, "temp_max_c"),
        ({**GOOD, "k": 0}, "k must be"),
        ({**GOOD, "k": 21}, "k must be"),
        ({**GOOD, "k": "3"}, "k must be"),
        ({**GOOD, "exclude_purchased": "yes"}, "exclude_purchased"),
        ({"requests": {"region": "america"}}, "must be a list"),
        ({"requests": [GOOD] * 1001}, "too many requests"),
        ({"requests": [GOOD, {**GOOD, "k": 99}]}, "requests[1]"),
    ],
)
def test_bad_input_gets_400_with_a_json_message(served, body, words):
    status, answer = call(body)
    assert status == 400
    assert words in answer["message"]


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (NESTED, "nested deeper than"),
        (b'{"requests": [' + NESTED + b"]}", "nested deeper than"),
        ({"requests": [[[[[[[[[[GOOD]]]]]]]]]]}, "nested deeper than"),
        ({**GOOD, "customer_id": "C" * 65}, "customer_id must have 1 to 64 characters"),
        ({**GOOD, "customer_id": "C" * 1_000_000}, "customer_id must have 1 to 64 characters"),
        ({**GOOD, "customer_id": ""}, "customer_id"),
        ({**GOOD, "customer_id": "C1\u0000"}, "printable"),
        ({**GOOD, "customer_id": "C1\nC2"}, "printable"),
        ({**GOOD, "date": "0001-01-01"}, "outside the served window"),
        ({**GOOD, "date": "9999-12-31"}, "outside the served window"),
        ({"requests": [GOOD, {**GOOD, "customer_id": "\u0007"}]}, "requests[1]: customer_id"),
    ],
)
def test_requests_out_of_bounds_get_400_and_a_short_message(served, body, words):
    status, answer = call(body)
    assert status == 400
    assert words in answer["message"] and len(answer["message"]) < 300


def test_a_body_over_2_mib_gets_413(served):
    body = json.dumps({"requests": [GOOD] * 1000, "padding": " " * (2 * 1024 * 1024)})
    status, answer = call(body)
    assert status == 413 and "over the limit" in answer["message"]


def test_bounds_accept_the_edges(served):
    case, _ = served
    as_of = case.models["america"].as_of
    edges = [
        {**GOOD, "customer_id": "C" * 64, "date": day_after(case)},
        {**GOOD, "customer_id": "Ñandú-7 ☕", "date": (as_of + timedelta(days=731)).isoformat()},
        {**GOOD, "date": (as_of - timedelta(days=731)).isoformat()},
    ]
    status, body = call({"requests": edges})
    assert status == 200 and [a["customer_id"] for a in body["responses"]] == [
        e["customer_id"] for e in edges
    ]
    status, body = call({**GOOD, "date": (as_of + timedelta(days=732)).isoformat()})
    assert status == 400 and as_of.isoformat() in body["message"]


def test_the_largest_batch_is_accepted(served):
    case, _ = served
    status, body = call({"requests": [{**GOOD, "date": day_after(case)}] * 1000})
    assert status == 200 and len(body["responses"]) == 1000


def test_an_unexpected_error_is_not_turned_into_a_400(served, monkeypatch):
    """A plain exception leaves run(): the inference server answers it with a 500."""

    def broken(requests):
        raise RuntimeError("boom")

    monkeypatch.setattr(score._scorer, "score", broken)
    with pytest.raises(RuntimeError, match="boom"):
        call(GOOD)


def test_init_fails_clearly_without_models(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    saved = score._scorer
    try:
        with pytest.raises(FileNotFoundError, match="no champion model"):
            score.init()
    finally:
        score._scorer = saved


def test_score_py_imports_no_dagster():
    source = Path(score.__file__).read_text()
    assert "import dagster" not in source and "from dagster" not in source
    imported = [line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))]
    allowed = (
        "__future__",
        "json",
        "logging",
        "os",
        "sys",
        "pathlib",
        "typing",
        "azureml_inference_server_http",
        "globolatte_dagster.lib",
        "globolatte_dagster.serving.bounds",
        "globolatte_dagster",  # `from globolatte_dagster import settings`, checked below
    )
    assert all(name.startswith(allowed) for name in imported), imported
    assert [line for line in source.splitlines() if line.startswith("from globolatte_dagster import")] == [
        "from globolatte_dagster import settings  # noqa: E402"
    ]
    # settings.py, which score.py reads AZUREML_MODEL_DIR through, imports only the standard library at the top
    settings_source = (Path(score.__file__).parents[1] / "settings.py").read_text()
    top = [line.split()[1] for line in settings_source.splitlines() if line.startswith(("import ", "from "))]
    assert set(top) <= {"__future__", "os", "dataclasses", "pathlib"}, top
    bounds_source = (Path(score.__file__).parent / "bounds.py").read_text()
    assert "dagster" not in bounds_source.replace("globolatte_dagster", "")


# ------------------------------------------------------------------ one environment from training to serving
def test_registered_models_record_the_libraries_they_were_trained_with(served):
    bundle = Path(os.environ["AZUREML_MODEL_DIR"]) / "champions"
    for region in REGION_KEYS:
        recorded = json.loads((bundle / region / "lineage.json").read_text())["environment"]
        assert recorded["scikit-learn"] == sklearn.__version__ and recorded["numpy"] == np.__version__
        assert recorded["python"] == platform.python_version() and recorded["joblib"]


def _copy_bundle(tmp_path: Path) -> Path:
    source = Path(os.environ["AZUREML_MODEL_DIR"]) / "champions"
    target = tmp_path / "bundle"
    shutil.copytree(source, target)
    return target


def test_a_bundle_trained_with_another_scikit_learn_is_refused_with_a_clear_message(served, tmp_path):
    bundle = _copy_bundle(tmp_path)
    lineage_file = bundle / "canada" / "lineage.json"
    lineage = json.loads(lineage_file.read_text())
    lineage["environment"]["scikit-learn"] = "1.5.2"
    lineage_file.write_text(json.dumps(lineage))
    with pytest.raises(IncompatibleEnvironment, match=r"canada: .*scikit-learn 1\.5\.2 \(serving has "):
        score.Scorer.from_dir(bundle)


def test_an_artefact_pickled_by_another_scikit_learn_is_refused_even_without_lineage(served, tmp_path):
    bundle = _copy_bundle(tmp_path)
    artefact = bundle / "mexico" / "model.joblib"
    (bundle / "mexico" / "lineage.json").unlink()
    version = sklearn.__version__.encode()
    other = b"0" + version[1:]  # same length: the pickle stays valid, its recorded version changes
    artefact.write_bytes(artefact.read_bytes().replace(version, other))
    with pytest.raises(IncompatibleEnvironment, match="pickled by scikit-learn 0"):
        score.Scorer.from_dir(bundle)
