"""Static checks of deploy/: Terraform, checkov, the Dockerfile, the Helm values and the Azure ML specs.

The checks live in deploy/tools/checks.py as functions of a deploy directory. Each is run on the real
tree, and on a copy with one planted mistake to show that it would catch that mistake. checkov comes
from .venv-tools (bash deploy/tools/install.sh); a missing checkov fails these tests.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from globolatte_dagster.settings import SETTINGS, Setting

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY = REPO_ROOT / "deploy"


def _load_checks():
    spec = importlib.util.spec_from_file_location("globolatte_deploy_checks", DEPLOY / "tools" / "checks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


checks = _load_checks()


def _report(problems: list[str]) -> str:
    return "\n".join(f"- {p}" for p in problems)


@pytest.fixture(scope="module")
def checkov_report():
    """checkov over the real deploy/ (Terraform and the Dockerfile), run once for the module."""
    return checks.run_checkov(DEPLOY)


@pytest.fixture
def deploy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "deploy"
    shutil.copytree(DEPLOY, target, ignore=shutil.ignore_patterns(".terraform", "__pycache__"))
    return target


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"planted mistake needs {old!r} in {path.name}; update the test"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _edit_values(deploy_dir: Path, edit) -> None:
    path = deploy_dir / "helm" / "values.yaml"
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(values)
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")


def _user_env(values: dict) -> list[dict]:
    return values["dagster-user-deployments"]["deployments"][0]["env"]


# --- the real tree ------------------------------------------------------------------------------------------
def test_every_terraform_file_parses_with_python_hcl2():
    assert len(checks.terraform_files(DEPLOY)) >= 10
    problems = checks.check_terraform_parses(DEPLOY)
    assert not problems, _report(problems)


def test_terraform_holds_no_secret_or_hard_coded_password():
    problems = checks.check_terraform_has_no_secret(DEPLOY)
    assert not problems, _report(problems)


def test_checkov_reports_no_failed_check_outside_the_allowance(checkov_report):
    problems = checks.check_checkov(DEPLOY, checkov_report)
    assert not problems, _report(problems)
    # It really scanned both: dozens of passed checks, Terraform and Dockerfile.
    assert checkov_report.passed > 50
    assert {"terraform", "dockerfile", "kubernetes"} <= checkov_report.frameworks


def test_every_checkov_allowance_names_its_resources_and_reason():
    allowed, problems = checks.load_allowance(DEPLOY)
    assert not problems, _report(problems)
    assert allowed, "the allowance file is empty: delete it rather than keep an empty list"
    assert len({check for check, _ in allowed}) <= 4, "keep checkov skips few"


def test_dockerfile_is_slim_multi_stage_non_root_and_serves_the_code_location():
    problems = checks.check_dockerfile(DEPLOY) + checks.check_dockerignore()
    assert not problems, _report(problems)


def test_hadolint_finds_nothing_in_the_dockerfile():
    findings = checks.run_hadolint(DEPLOY)
    if findings is None:
        pytest.skip(
            "hadolint is not installed (Debian bookworm has no package); checkov covered the Dockerfile"
        )
    assert not findings, _report(findings)


def test_helm_values_configure_the_platform_on_the_official_chart():
    problems = checks.check_helm_values(DEPLOY)
    assert not problems, _report(problems)


def test_every_setting_read_in_azure_mode_is_set_in_helm_or_provided_as_a_secret():
    problems = checks.check_settings_coverage(DEPLOY, SETTINGS)
    assert not problems, _report(problems)
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text(encoding="utf-8"))
    names = {item["name"] for item in _user_env(values)}
    assert {s.name for s in SETTINGS if s.required_in_azure and not s.secret} <= names


def test_azureml_endpoint_and_deployment_load_with_the_sdk():
    problems = checks.check_azureml(DEPLOY)
    assert not problems, _report(problems)


def test_every_pod_has_a_read_only_root_and_the_runtime_default_seccomp_profile():
    problems = checks.check_pod_security(DEPLOY)
    assert not problems, _report(problems)


def test_the_warehouse_pool_and_one_run_per_partition_are_limited():
    problems = checks.check_concurrency_pools(DEPLOY)
    assert not problems, _report(problems)
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text(encoding="utf-8"))
    assert values["concurrency"]["pools"]["defaultLimit"] == 1


def test_only_the_webserver_and_daemon_reach_the_code_servers_grpc_port():
    problems = checks.check_network_policy(DEPLOY)
    assert not problems, _report(problems)


def test_serving_environments_pin_the_training_environment():
    installed = checks.installed_versions()
    problems = checks.check_serving_pins(DEPLOY, installed)
    assert not problems, _report(problems)
    python, pins = checks.read_constraints(DEPLOY)
    assert python == ".".join(map(str, sys.version_info[:2]))
    assert {"scikit-learn", "numpy", "pandas", "joblib", "azureml-inference-server-http"} <= set(pins)
    import sklearn

    assert pins["scikit-learn"] == sklearn.__version__


def test_azureml_deployment_points_at_the_real_scoring_script():
    problems = checks.check_scoring_script_exists(DEPLOY)
    assert not problems, _report(problems)


# --- planted mistakes: the same checks must fail -----------------------------------------------------------
def test_a_terraform_syntax_error_fails_the_parse_check(deploy_copy):
    _replace(
        deploy_copy / "terraform" / "azure" / "storage.tf",
        'container_access_type = "private"',
        "container_access_type = ",
    )
    problems = checks.check_terraform_parses(deploy_copy)
    assert any("storage.tf" in p and "does not parse" in p for p in problems), problems


def test_a_hard_coded_password_fails_the_secret_check(deploy_copy):
    _replace(
        deploy_copy / "terraform" / "azure" / "postgres.tf",
        "administrator_password = random_password.postgres_admin.result",
        # built from parts so that this test file itself holds no password literal
        "administrator_pass" + "word = " + json.dumps("planted-" + "literal"),
    )
    problems = checks.check_terraform_has_no_secret(deploy_copy)
    assert any("administrator_password" in p for p in problems), problems


def test_a_public_landing_container_fails_checkov(deploy_copy):
    storage = deploy_copy / "terraform" / "azure" / "storage.tf"
    _replace(storage, 'container_access_type = "private"', 'container_access_type = "blob"')
    report = checks.run_checkov(deploy_copy, subdir="terraform/azure", frameworks=["terraform"])
    problems = checks.check_checkov(deploy_copy, report, strict_allowance=False)
    # CKV_AZURE_34: "Ensure that 'Public access level' is set to Private for blob containers"
    assert any("CKV_AZURE_34 azurerm_storage_container.landing" in p for p in problems), _report(problems)


def test_a_storage_account_open_to_the_internet_fails_checkov(deploy_copy):
    storage = deploy_copy / "terraform" / "azure" / "storage.tf"
    _replace(storage, "public_network_access_enabled     = false", "public_network_access_enabled     = true")
    report = checks.run_checkov(deploy_copy, subdir="terraform/azure", frameworks=["terraform"])
    problems = checks.check_checkov(deploy_copy, report, strict_allowance=False)
    # CKV_AZURE_59: "Ensure that Storage accounts disallow public access"
    assert any("CKV_AZURE_59 azurerm_storage_account.data" in p for p in problems), _report(problems)


def test_a_root_dockerfile_fails_the_dockerfile_checks_and_checkov(deploy_copy):
    _replace(deploy_copy / "docker" / "Dockerfile", "USER 10001:10001", "USER root")
    problems = checks.check_dockerfile(deploy_copy)
    assert any("non-root" in p for p in problems), problems
    report = checks.run_checkov(deploy_copy, subdir="docker", frameworks=["dockerfile"])
    problems = checks.check_checkov(deploy_copy, report, strict_allowance=False)
    assert any("CKV_DOCKER_8" in p for p in problems), _report(problems)


def test_a_missing_environment_variable_fails_the_cross_check(deploy_copy):
    def drop_snowflake_role(values):
        env = _user_env(values)
        env[:] = [item for item in env if item["name"] != "SNOWFLAKE_ROLE"]

    _edit_values(deploy_copy, drop_snowflake_role)
    problems = checks.check_settings_coverage(deploy_copy, SETTINGS)
    assert any(p.startswith("SNOWFLAKE_ROLE ") for p in problems), problems


def test_a_required_secret_not_synced_from_key_vault_fails_the_cross_check(deploy_copy):
    external = deploy_copy / "helm" / "external-secrets.yaml"
    docs = list(yaml.safe_load_all(external.read_text(encoding="utf-8")))
    for doc in docs:
        if doc.get("kind") == "ExternalSecret" and doc["spec"]["target"]["name"] == "globolatte-secrets":
            doc["spec"]["data"] = [d for d in doc["spec"]["data"] if d["secretKey"] != "GLOBOLATTE_HASH_KEY"]
    external.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    problems = checks.check_settings_coverage(deploy_copy, SETTINGS)
    assert any(p.startswith("GLOBOLATTE_HASH_KEY ") for p in problems), problems


def test_a_secret_in_plain_helm_env_fails_the_cross_check(deploy_copy):
    _edit_values(
        deploy_copy, lambda v: _user_env(v).append({"name": "SNOWFLAKE_PASSWORD", "value": "planted-value"})
    )
    problems = checks.check_settings_coverage(deploy_copy, SETTINGS)
    assert any("SNOWFLAKE_PASSWORD is a secret" in p for p in problems), problems


def test_a_new_setting_that_deploy_does_not_know_fails_the_cross_check():
    new = (
        Setting("GLOBOLATTE_NEW_REQUIRED", "new required setting", required_in_azure=True),
        Setting("GLOBOLATTE_NEW_TOKEN", "new secret", secret=True),
    )
    problems = checks.check_settings_coverage(DEPLOY, (*SETTINGS, *new))
    assert any(p.startswith("GLOBOLATTE_NEW_REQUIRED ") for p in problems), problems
    assert any(p.startswith("GLOBOLATTE_NEW_TOKEN ") for p in problems), problems


def test_a_compute_log_manager_with_bad_config_fails_the_helm_check(deploy_copy):
    def break_config(values):
        config = values["computeLogManager"]["config"]["customComputeLogManager"]["config"]
        config["storage_acount"] = config.pop("storage_account")

    _edit_values(deploy_copy, break_config)
    problems = checks.check_helm_values(deploy_copy)
    assert any("compute log manager config is invalid" in p for p in problems), problems


def test_a_missing_checkov_fails_rather_than_skips(tmp_path):
    report = checks.run_checkov(DEPLOY, checkov=tmp_path / "no-checkov")
    problems = checks.check_checkov(DEPLOY, report)
    assert problems and "install.sh" in problems[0]


def test_a_writable_root_or_missing_seccomp_fails_the_pod_security_check(deploy_copy):
    def loosen(values):
        run = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
        run["containerConfig"]["securityContext"] = {"allowPrivilegeEscalation": False}
        values["dagsterDaemon"]["podSecurityContext"] = {"runAsNonRoot": True}
        values["dagsterDaemon"]["securityContext"] = {
            k: v for k, v in values["dagsterDaemon"]["securityContext"].items() if k != "seccompProfile"
        }

    _edit_values(deploy_copy, loosen)
    problems = checks.check_pod_security(deploy_copy)
    assert any("run pods: securityContext.readOnlyRootFilesystem" in p for p in problems), problems
    assert any("dagsterDaemon: no RuntimeDefault seccomp" in p for p in problems), problems


def test_no_pool_limit_fails_the_concurrency_check(deploy_copy):
    def unlimited(values):
        values.pop("concurrency")
        limits = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
        limits["tagConcurrencyLimits"] = limits["tagConcurrencyLimits"][:1]

    _edit_values(deploy_copy, unlimited)
    problems = checks.check_concurrency_pools(deploy_copy)
    assert any("defaultLimit" in p and "'warehouse'" in p for p in problems), problems
    assert any("dagster/partition" in p for p in problems), problems


def test_a_network_policy_open_to_every_pod_fails_the_check(deploy_copy):
    path = deploy_copy / "helm" / "networkpolicy.yaml"
    policy = yaml.safe_load(path.read_text(encoding="utf-8"))
    policy["spec"]["ingress"] = [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 3030}]}]
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    problems = checks.check_network_policy(deploy_copy)
    assert any("admits more than the webserver and the daemon" in p for p in problems), problems
    path.unlink()
    assert "missing" in checks.check_network_policy(deploy_copy)[0]


def test_loose_or_diverging_serving_pins_fail_the_check(deploy_copy):
    _replace(deploy_copy / "azureml" / "conda.yml", "scikit-learn==", "scikit-learn>=")
    _replace(deploy_copy / "docker" / "Dockerfile", "--constraint deploy/constraints.txt", "")
    _replace(
        deploy_copy / "azureml" / "deployment.yml",
        "minimal-py311-inference:59",
        "minimal-py311-inference:latest",
    )
    installed = {**checks.installed_versions(), "numpy": "0.0.1"}
    problems = checks.check_serving_pins(deploy_copy, installed)
    assert any("unpinned requirements" in p and "scikit-learn" in p for p in problems), problems
    assert any("--constraint" in p for p in problems), problems
    assert any("is not pinned by version" in p for p in problems), problems
    assert any("not the training environment" in p and "numpy" in p for p in problems), problems


def test_an_endpoint_spec_with_another_auth_mode_than_the_helm_values_fails(deploy_copy):
    _replace(deploy_copy / "azureml" / "endpoint.yml", "auth_mode: aad_token", "auth_mode: key")
    problems = checks.check_azureml(deploy_copy)
    assert any("differs from the Helm values' AZUREML_ENDPOINT_AUTH_MODE" in p for p in problems), problems


# --- the Azure ML training infrastructure (deploy/tools/training_checks.py) ----------------------------------
training_checks = checks.load_training_checks()


def test_the_training_cluster_datastore_and_identity_pass_the_training_checks():
    problems = training_checks.check_training_infrastructure(DEPLOY)
    assert not problems, _report(problems)


def test_the_training_job_spec_loads_and_pins_its_environment():
    problems = training_checks.check_training_job(DEPLOY)
    assert not problems, _report(problems)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "min_node_count                       = 0",
            "min_node_count                       = 1",
            "min_node_count",
        ),
        ("node_public_ip_enabled        = false", "node_public_ip_enabled        = true", "no public IP"),
        (
            'type         = "UserAssigned"\n    identity_ids = [azurerm_user_assigned_identity.training.id]',
            'type = "SystemAssigned"',
            "user-assigned identity",
        ),
        (
            "scope                = azurerm_storage_container.training.id",
            "scope                = azurerm_storage_account.ml.id",
            "training_data: the training identity may only hold",
        ),
        (
            'role_definition_name = "AcrPull"',
            'role_definition_name = "Contributor"',
            "training_acr_pull: the training identity may only hold",
        ),
        (
            'service_data_auth_identity = "WorkspaceSystemAssignedIdentity"',
            "account_key                = azurerm_storage_account.ml.primary_access_key",
            "must be credential-less",
        ),
    ],
    ids=[
        "keeps-a-node",
        "public-ip",
        "system-identity",
        "account-wide-data-role",
        "contributor",
        "keyed-datastore",
    ],
)
def test_a_planted_mistake_in_the_training_infrastructure_fails_the_check(deploy_copy, old, new, expected):
    _replace(deploy_copy / "terraform" / "azure" / "ml.tf", old, new)
    problems = training_checks.check_training_infrastructure(deploy_copy)
    assert any(expected in p for p in problems), _report(problems)


def test_a_training_cluster_outside_any_private_network_fails_the_check(deploy_copy):
    ml = deploy_copy / "terraform" / "azure" / "ml.tf"
    _replace(ml, 'isolation_mode = "AllowOnlyApprovedOutbound"', 'isolation_mode = "Disabled"')
    problems = training_checks.check_training_infrastructure(deploy_copy)
    assert any("no private network" in p for p in problems), _report(problems)


def test_an_unpinned_training_environment_fails_the_job_check(deploy_copy):
    _replace(
        deploy_copy / "azureml" / "training-job.yml",
        "openmpi4.1.0-ubuntu22.04:20250601.v1",
        "openmpi4.1.0-ubuntu22.04:latest",
    )
    problems = training_checks.check_training_job(deploy_copy)
    assert any("is not pinned" in p for p in problems), _report(problems)
