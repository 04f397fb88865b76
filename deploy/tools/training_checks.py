"""Static checks of the Azure ML training infrastructure (GLOBOLATTE_TRAINING=azureml, docs/training.md).

Like checks.py: plain functions of a deploy directory returning problems, run on the real tree and on
copies with one planted mistake (globolatte_dagster_tests/test_deploy.py). They hold Terraform to what the
code submits (resources/training_azureml.py): the cluster the jobs name, scaled to zero, without public
IPs, inside a private network, with a user-assigned identity whose only roles are the data role on the
training container and AcrPull on the workspace's registry; the credential-less datastore the jobs mount;
and deploy/azureml/training-job.yml, which must load with the SDK and pin its environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

TRAINING_IDENTITY_ROLES = {
    ("Storage Blob Data Contributor", "azurerm_storage_container"),
    ("AcrPull", "azurerm_container_registry"),
}
PRIVATE_ISOLATION = ("AllowOnlyApprovedOutbound", "AllowInternetOutbound")


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted (`'"cpu-cluster"'`): plain values, recursively."""
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__comments__"}
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _resources(deploy_dir: Path) -> dict[str, dict[str, Any]]:
    """Every Terraform resource of terraform/azure as {"type.name": body}."""
    import hcl2

    found: dict[str, dict[str, Any]] = {}
    for path in sorted((deploy_dir / "terraform" / "azure").glob("*.tf")):
        with path.open(encoding="utf-8") as f:
            doc = hcl2.load(f)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for rname, body in named.items():
                    found[f"{unquote(rtype)}.{unquote(rname)}"] = unquote(body)
    return found


def _of_type(resources: dict[str, dict], rtype: str) -> dict[str, dict]:
    return {address: body for address, body in resources.items() if address.split(".")[0] == rtype}


def _refs(value: Any) -> set[str]:
    """Resource addresses (type.name) an expression refers to."""
    return set(re.findall(r"\b(azurerm_[a-z_]+\.[a-z0-9_]+)\b", str(value)))


def _block(body: dict, name: str) -> dict:
    value = body.get(name) or [{}]
    return value[0] if isinstance(value, list) else value


def check_training_infrastructure(deploy_dir: Path) -> list[str]:
    from globolatte_dagster.resources.training_azureml import DEFAULT_COMPUTE, DEFAULT_DATASTORE

    try:
        resources = _resources(deploy_dir)
    except Exception as exc:  # reported in full by check_terraform_parses
        return [f"terraform/azure does not parse: {type(exc).__name__}"]
    problems: list[str] = []
    clusters = _of_type(resources, "azurerm_machine_learning_compute_cluster")
    named = {a: b for a, b in clusters.items() if b.get("name") == DEFAULT_COMPUTE}
    if len(named) != 1:
        return [
            f"expected one compute cluster named {DEFAULT_COMPUTE} (the jobs' compute), found {len(named)}"
        ]
    address, cluster = next(iter(named.items()))
    scale = _block(cluster, "scale_settings")
    if scale.get("min_node_count") != 0:
        problems.append(f"{address}: min_node_count must be 0 (scale to zero between trainings)")
    if cluster.get("node_public_ip_enabled") is not False:
        problems.append(f"{address}: nodes must have no public IP (node_public_ip_enabled = false)")
    if cluster.get("local_auth_enabled") is not False:
        problems.append(f"{address}: local authentication must be disabled")
    workspaces = _of_type(resources, "azurerm_machine_learning_workspace")
    isolation = {_block(w, "managed_network").get("isolation_mode") for w in workspaces.values()}
    if not cluster.get("subnet_resource_id") and not isolation & set(PRIVATE_ISOLATION):
        problems.append(
            f"{address}: the nodes are in no private network (no subnet_resource_id, and the workspace "
            "has no managed network isolation)"
        )
    identity = _block(cluster, "identity")
    identities = sorted(
        ref
        for ref in _refs(identity.get("identity_ids"))
        if ref.startswith("azurerm_user_assigned_identity.")
    )
    if identity.get("type") != "UserAssigned" or len(identities) != 1:
        problems.append(
            f"{address}: must run as exactly one user-assigned identity (identity.type UserAssigned)"
        )
        return problems
    training_identity = identities[0]

    data_scopes: set[str] = set()
    for ra, body in _of_type(resources, "azurerm_role_assignment").items():
        if training_identity not in _refs(body.get("principal_id")):
            continue
        role, scopes = body.get("role_definition_name"), _refs(body.get("scope"))
        scope_types = {s.split(".")[0] for s in scopes}
        if len(scopes) != 1 or (role, next(iter(scope_types))) not in TRAINING_IDENTITY_ROLES:
            problems.append(
                f"{ra}: the training identity may only hold Storage Blob Data Contributor on a container and "
                f"AcrPull on the registry, not {role} on {body.get('scope')}"
            )
        elif role == "Storage Blob Data Contributor":
            data_scopes |= scopes

    stores = {
        a: b
        for a, b in _of_type(resources, "azurerm_machine_learning_datastore_blobstorage").items()
        if b.get("name") == DEFAULT_DATASTORE
    }
    if len(stores) != 1:
        problems.append(f"expected one blob datastore named {DEFAULT_DATASTORE} (the jobs' datastore)")
        return problems
    store_address, store = next(iter(stores.items()))
    for secret in ("account_key", "shared_access_signature"):
        if store.get(secret):
            problems.append(f"{store_address}: must be credential-less (identity-based), not use {secret}")
    containers = _refs(store.get("storage_container_id"))
    if not containers or not containers <= data_scopes:
        problems.append(
            f"{store_address}: the training identity has no data role on its container {sorted(containers)}"
        )
    return problems


def check_training_job(deploy_dir: Path) -> list[str]:
    """azureml/training-job.yml loads with the SDK, names the cluster, and pins its environment."""
    from azure.ai.ml import load_job

    from globolatte_dagster.resources.training_azureml import DEFAULT_COMPUTE

    path = deploy_dir / "azureml" / "training-job.yml"
    if not path.exists():
        return ["azureml/training-job.yml: missing"]
    job = load_job(path)
    problems = []
    if job.compute != DEFAULT_COMPUTE:
        problems.append(f"azureml/training-job.yml: compute {job.compute}, expected {DEFAULT_COMPUTE}")
    if "globolatte_dagster.training.job" not in str(job.command):
        problems.append("azureml/training-job.yml: the command does not run globolatte_dagster.training.job")
    image = str(job.environment.image)
    if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
        problems.append(f"azureml/training-job.yml: environment image {image} is not pinned to a tag")
    pip = next(
        (d["pip"] for d in (job.environment.conda_file or {}).get("dependencies", []) if isinstance(d, dict)),
        [],
    )
    loose = [p for p in pip if "==" not in p]
    if not pip or loose:
        problems.append(
            f"azureml/training-job.yml: unpinned packages in the environment: {loose or 'none listed'}"
        )
    if getattr(job.identity, "type", None) != "managed_identity":
        problems.append("azureml/training-job.yml: the job must run as the cluster's managed identity")
    return problems
