"""Static checks of deploy/: Terraform, Dockerfile, Helm values and Azure ML specs.

Every check is a plain function that takes a deploy directory and returns a list of problems (empty when
the check passes), so the real tree and deliberately broken copies go through the same code
(globolatte_dagster_tests/test_deploy.py). Run all of them from the repository root with

    .venv/bin/python deploy/tools/checks.py

checkov comes from .venv-tools (deploy/tools/install.sh); hadolint runs only where it is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKOV = REPO_ROOT / ".venv-tools" / "bin" / "checkov"
ALLOWANCE_FILE = "checkov-allowance.yaml"
HELM_VALUES = Path("helm") / "values.yaml"
EXTERNAL_SECRETS = Path("helm") / "external-secrets.yaml"
DOCKERFILE = Path("docker") / "Dockerfile"
README = "README.md"

USER_CODE_IMAGE = "globolatte-user-code"
ENDPOINT_NAME = "globolatte-scoring"
DEPLOYMENT_COLOURS = frozenset({"blue", "green"})
# Settings that only mean something on a developer's machine, so the Helm values need not set them.
LOCAL_ONLY_SETTINGS = frozenset({"GLOBOLATTE_LANDING"})

if str(REPO_ROOT) not in sys.path:  # when run as a script
    sys.path.insert(0, str(REPO_ROOT))


# --- shared helpers ---------------------------------------------------------------------------------------
def code_location_module(repo_root: Path = REPO_ROOT) -> str:
    """The code location module named in pyproject.toml ([tool.dagster] module_name)."""
    with (repo_root / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["dagster"]["module_name"]


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _user_deployments(values: dict) -> list[dict]:
    return ((values.get("dagster-user-deployments") or {}).get("deployments")) or []


# --- Terraform ----------------------------------------------------------------------------------------------
def terraform_files(deploy_dir: Path) -> list[Path]:
    return sorted((deploy_dir / "terraform").rglob("*.tf"))


def check_terraform_parses(deploy_dir: Path) -> list[str]:
    """Every .tf file parses with python-hcl2, and each Terraform root has at least one."""
    import hcl2

    problems = []
    for root in ("azure", "snowflake"):
        if not list((deploy_dir / "terraform" / root).glob("*.tf")):
            problems.append(f"terraform/{root}: no .tf file")
    for path in terraform_files(deploy_dir):
        try:
            with path.open(encoding="utf-8") as f:
                hcl2.load(f)
        except Exception as exc:  # the parser raises several exception types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            problems.append(f"{path.relative_to(deploy_dir)}: does not parse: {first_line}")
    return problems


_SECRET_ATTRIBUTE = re.compile(
    r"(^|_)(password|secret|private_key|access_key|client_secret|connection_string|sas_token|token)$"
)


def _walk_attributes(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            name = key.strip('"')
            if isinstance(value, dict | list):
                yield from _walk_attributes(value, f"{path}.{name}" if path else name)
            else:
                yield path, name, value
    elif isinstance(node, list):
        for item in node:
            yield from _walk_attributes(item, path)


def _is_literal_string(value: Any) -> bool:
    return isinstance(value, str) and value.startswith('"') and "${" not in value and value != '""'


def check_terraform_has_no_secret(deploy_dir: Path) -> list[str]:
    """No password, key or token is written into a .tf file or a committed tfvars file."""
    import hcl2

    problems = []
    for path in sorted((deploy_dir / "terraform").rglob("*.tfvars*")):
        if not path.name.endswith(".example"):
            problems.append(
                f"{path.relative_to(deploy_dir)}: tfvars files hold environment values; commit only *.example"
            )
    for path in terraform_files(deploy_dir):
        rel = path.relative_to(deploy_dir)
        text = path.read_text(encoding="utf-8")
        if "-----BEGIN" in text:
            problems.append(f"{rel}: contains a PEM block")
        try:
            doc = hcl2.loads(text)
        except Exception:
            continue  # reported by check_terraform_parses
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for rname, body in named.items():
                    address = f"{rtype.strip(chr(34))}.{rname.strip(chr(34))}"
                    for where, attr, value in _walk_attributes(body):
                        secretish = _SECRET_ATTRIBUTE.search(attr) or (
                            attr == "value" and "secret" in address and not where
                        )
                        if secretish and _is_literal_string(value):
                            problems.append(f"{rel}: {address} sets {attr} to a literal string")
        for block in doc.get("variable", []):
            for vname, body in block.items():
                name = vname.strip('"')
                if _SECRET_ATTRIBUTE.search(name) and _is_literal_string(body.get("default")):
                    problems.append(f"{rel}: variable {name} has a literal default")
    return problems


# --- checkov ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckovFailure:
    check_id: str
    resource: str
    file: str
    name: str

    def __str__(self) -> str:
        return f"{self.check_id} {self.resource} ({self.file}): {self.name}"


@dataclass
class CheckovReport:
    failures: list[CheckovFailure] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)
    passed: int = 0
    frameworks: set[str] = field(default_factory=set)
    requested: set[str] = field(default_factory=set)
    error: str | None = None


def run_checkov(
    deploy_dir: Path,
    checkov: Path = CHECKOV,
    *,
    subdir: str = ".",
    frameworks: Sequence[str] = ("terraform", "dockerfile", "kubernetes"),
) -> CheckovReport:
    """Runs checkov once over deploy_dir/subdir and parses its JSON output.

    By default it scans all of deploy/ for Terraform, Dockerfiles and Kubernetes manifests
    (helm/networkpolicy.yaml, helm/external-secrets.yaml); the planted-mistake tests narrow it to one
    folder and framework to keep the run short.
    """
    if not checkov.exists():
        return CheckovReport(error=f"checkov not found at {checkov}: run `bash deploy/tools/install.sh`")
    cmd = [
        str(checkov),
        "--directory", str(deploy_dir / subdir),
        "--framework", *frameworks,
        "--skip-download",  # no network for guidelines or policies
        "--compact", "--quiet",
        "--output", "json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode not in (0, 1):
        return CheckovReport(error=f"checkov exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return CheckovReport(error=f"checkov printed no JSON: {proc.stdout[:500]} {proc.stderr[-1000:]}")
    report = CheckovReport(requested=set(frameworks))
    for run in data if isinstance(data, list) else [data]:
        report.frameworks.add(run.get("check_type", "?"))
        report.passed += int(run.get("summary", {}).get("passed", 0))
        report.parsing_errors += run.get("results", {}).get("parsing_errors", [])
        for failed in run.get("results", {}).get("failed_checks", []):
            report.failures.append(
                CheckovFailure(
                    check_id=failed["check_id"],
                    resource=failed["resource"],
                    file=failed.get("file_path", "?"),
                    name=failed.get("check_name", ""),
                )
            )
    return report


def load_allowance(deploy_dir: Path) -> tuple[dict[tuple[str, str], str], list[str]]:
    """The checkov allowance file as {(check, resource): reason}, and its own problems."""
    path = deploy_dir / ALLOWANCE_FILE
    if not path.exists():
        return {}, []
    problems, allowed = [], {}
    for entry in (_load_yaml(path) or {}).get("allowances", []) or []:
        check, reason = entry.get("check"), str(entry.get("reason") or "").strip()
        if not check or len(reason) < 20:
            problems.append(f"{ALLOWANCE_FILE}: entry {check or '?'} needs a check id and a real reason")
        if not entry.get("resources"):
            problems.append(f"{ALLOWANCE_FILE}: entry {check} must name the resources it covers")
        for resource in entry.get("resources") or []:
            allowed[(check, resource)] = reason
    return allowed, problems


def check_checkov(deploy_dir: Path, report: CheckovReport, *, strict_allowance: bool = True) -> list[str]:
    """No failed checkov check outside the allowance file; with strict_allowance, no stale allowance."""
    if report.error:
        return [report.error]
    allowed, problems = load_allowance(deploy_dir)
    problems += [f"checkov could not parse {err}" for err in report.parsing_errors]
    if not report.requested <= report.frameworks:
        problems.append(
            f"checkov scanned only {sorted(report.frameworks)}; expected {sorted(report.requested)}"
        )
    problems += [
        f"checkov failed: {failure}"
        for failure in report.failures
        if (failure.check_id, failure.resource) not in allowed
    ]
    if strict_allowance:
        seen = {(f.check_id, f.resource) for f in report.failures}
        problems += [
            f"{ALLOWANCE_FILE}: {check} on {resource} no longer fails; remove the allowance"
            for (check, resource) in allowed
            if (check, resource) not in seen
        ]
    return problems


# --- Dockerfile ---------------------------------------------------------------------------------------------
def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        logical.append((keyword.upper(), rest.strip()))
        current = ""
    return logical


def check_dockerfile(deploy_dir: Path, repo_root: Path = REPO_ROOT) -> list[str]:
    """Multi-stage, pinned base, non-root, installs .[azure] + dagster-k8s + dagster-postgres, serves gRPC."""
    path = deploy_dir / DOCKERFILE
    if not path.exists():
        return [f"{DOCKERFILE}: missing"]
    instructions = _dockerfile_instructions(path.read_text(encoding="utf-8"))
    problems = []
    froms = [rest for kw, rest in instructions if kw == "FROM"]
    if len(froms) < 2:
        problems.append(f"{DOCKERFILE}: not multi-stage ({len(froms)} FROM)")
    stages = {rest.split()[-1].lower() for rest in froms if " as " in rest.lower()}
    for rest in froms:
        image = rest.split()[0]
        if image.lower() in stages:
            continue
        tag = image.split("@")[0].rpartition(":")[2] if ":" in image.split("@")[0] else ""
        if "@sha256:" not in image and not re.match(r"^\d+\.\d+\.\d+", tag):
            problems.append(f"{DOCKERFILE}: base image {image} is not pinned to a patch version or digest")
        if "slim" not in tag and "distroless" not in image and "@sha256:" not in image:
            problems.append(f"{DOCKERFILE}: base image {image} is not a slim image")
    users = [rest for kw, rest in instructions if kw == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"{DOCKERFILE}: the final stage does not switch to a non-root USER")
    runs = " ".join(rest for kw, rest in instructions if kw == "RUN")
    for needed in ('".[azure]"', "dagster-k8s", "dagster-postgres"):
        if needed not in runs:
            problems.append(f"{DOCKERFILE}: does not install {needed}")
    module = code_location_module(repo_root)
    cmd = " ".join(rest for kw, rest in instructions if kw in ("CMD", "ENTRYPOINT"))
    if not re.search(r'"dagster",\s*"api",\s*"grpc"', cmd) or f'"{module}"' not in cmd:
        problems.append(f"{DOCKERFILE}: CMD does not serve {module} with `dagster api grpc`")
    if not any(kw == "HEALTHCHECK" for kw, _ in instructions):
        problems.append(f"{DOCKERFILE}: no HEALTHCHECK")
    return problems


def check_dockerignore(repo_root: Path = REPO_ROOT) -> list[str]:
    path = repo_root / ".dockerignore"
    if not path.exists():
        return [".dockerignore: missing"]
    text = path.read_text(encoding="utf-8")
    return [f".dockerignore: does not exclude {p}" for p in (".env", ".globolatte", "*.pem") if p not in text]


def run_hadolint(deploy_dir: Path) -> list[str] | None:
    """hadolint's findings, or None when hadolint is not installed."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        return None
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(deploy_dir / DOCKERFILE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return [] if proc.returncode == 0 else [f"hadolint: {line}" for line in proc.stdout.splitlines()]


# --- Helm values --------------------------------------------------------------------------------------------
def check_helm_values(deploy_dir: Path, repo_root: Path = REPO_ROOT) -> list[str]:
    """The values configure what the issue asks for and name the real image and module."""
    values = _load_yaml(deploy_dir / HELM_VALUES)
    problems = []
    deployments = _user_deployments(values)
    if len(deployments) != 1:
        return [f"{HELM_VALUES}: expected one user deployment, found {len(deployments)}"]
    dep = deployments[0]
    if not str(dep.get("image", {}).get("repository", "")).endswith(f"/{USER_CODE_IMAGE}"):
        problems.append(f"{HELM_VALUES}: user deployment image is not .../{USER_CODE_IMAGE}")
    if not dep.get("image", {}).get("tag"):
        problems.append(f"{HELM_VALUES}: user deployment image has no tag")
    module = code_location_module(repo_root)
    args = [str(a) for a in dep.get("dagsterApiGrpcArgs") or []]
    if not any(
        flag in args and args[args.index(flag) + 1 :][:1] == [module] for flag in ("-m", "--module-name")
    ):
        problems.append(f"{HELM_VALUES}: dagsterApiGrpcArgs do not load module {module}")
    if not (dep.get("includeConfigInLaunchedRuns") or {}).get("enabled"):
        problems.append(
            f"{HELM_VALUES}: run pods do not inherit the deployment's env (includeConfigInLaunchedRuns)"
        )

    launcher = values.get("runLauncher") or {}
    if launcher.get("type") != "K8sRunLauncher":
        problems.append(f"{HELM_VALUES}: runLauncher.type is not K8sRunLauncher")
    k8s = (launcher.get("config") or {}).get("k8sRunLauncher") or {}
    requests = (((k8s.get("runK8sConfig") or {}).get("containerConfig") or {}).get("resources") or {}).get(
        "requests"
    )
    if not requests or not {"cpu", "memory"} <= set(requests):
        problems.append(f"{HELM_VALUES}: run pods have no cpu and memory requests")

    pg = values.get("postgresql") or {}
    if pg.get("enabled") is not False or not str(pg.get("postgresqlHost", "")).endswith(
        ".postgres.database.azure.com"
    ):
        problems.append(f"{HELM_VALUES}: storage is not the external Azure Database for PostgreSQL")
    if values.get("generatePostgresqlPasswordSecret") is not False:
        problems.append(f"{HELM_VALUES}: the chart must not generate the PostgreSQL password secret")
    if (pg.get("postgresqlParams") or {}).get("sslmode") not in ("require", "verify-full"):
        problems.append(f"{HELM_VALUES}: PostgreSQL connection does not require TLS")

    problems += _check_compute_log_manager(values)
    problems += _check_additional_instance_config(values)

    daemon = values.get("dagsterDaemon") or {}
    coordinator = daemon.get("runCoordinator") or {}
    queued = (coordinator.get("config") or {}).get("queuedRunCoordinator") or {}
    if not daemon.get("enabled") or not coordinator.get("enabled") or not queued.get("maxConcurrentRuns"):
        problems.append(f"{HELM_VALUES}: the daemon is off or the run queue has no limit")

    ingress = values.get("ingress") or {}
    annotations = ingress.get("annotations") or {}
    if not ingress.get("enabled") or not any("auth-url" in key for key in annotations):
        problems.append(f"{HELM_VALUES}: the webserver is not behind an authenticating ingress")
    if (values.get("dagsterWebserver") or {}).get("service", {}).get("type", "ClusterIP") != "ClusterIP":
        problems.append(f"{HELM_VALUES}: the webserver service is exposed outside the ingress")
    return problems


def _check_additional_instance_config(values: dict) -> list[str]:
    """What the chart appends to dagster.yaml passes Dagster's instance schema and enables freshness."""
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config_schema

    extra = values.get("additionalInstanceConfig") or {}
    schema = dagster_instance_config_schema()
    problems = []
    unknown = sorted(set(extra) - set(schema))
    if unknown:
        problems.append(f"{HELM_VALUES}: additionalInstanceConfig has keys Dagster does not know: {unknown}")
    for key in set(extra) & set(schema):
        result = process_config(schema[key].config_type, extra[key])
        if not result.success:
            problems.append(
                f"{HELM_VALUES}: additionalInstanceConfig.{key}: {[e.message for e in result.errors]}"
            )
    if not (extra.get("freshness") or {}).get("enabled"):
        problems.append(
            f"{HELM_VALUES}: the freshness daemon is off (additionalInstanceConfig.freshness.enabled): "
            "late uploads would never show as failing"
        )
    return problems


def _check_compute_log_manager(values: dict) -> list[str]:
    import importlib

    from dagster._config import process_config

    clm = values.get("computeLogManager") or {}
    custom = ((clm.get("config") or {}).get("customComputeLogManager")) or {}
    if clm.get("type") != "CustomComputeLogManager" or (custom.get("module"), custom.get("class")) != (
        "dagster_azure.blob.compute_log_manager",
        "AzureBlobComputeLogManager",
    ):
        return [f"{HELM_VALUES}: compute logs do not go to dagster_azure.blob.AzureBlobComputeLogManager"]
    cls = getattr(importlib.import_module(custom["module"]), custom["class"])
    result = process_config(cls.config_type(), custom.get("config") or {})
    if not result.success:
        return [f"{HELM_VALUES}: compute log manager config is invalid: {[e.message for e in result.errors]}"]
    return []


# --- production hardening -----------------------------------------------------------------------------------
NETWORK_POLICY = Path("helm") / "networkpolicy.yaml"
CONSTRAINTS = "constraints.txt"
# Pods that must run with a read-only root filesystem and the RuntimeDefault seccomp profile.
_HARDENED_PODS = ("dagsterWebserver", "dagsterDaemon", "user deployment", "run pods")


def _pod_parts(values: dict) -> dict[str, tuple[dict, dict, list, list]]:
    """(pod securityContext, container securityContext, volumes, volumeMounts) of each hardened pod."""
    deployment = (_user_deployments(values) or [{}])[0]
    k8s = ((values.get("runLauncher") or {}).get("config") or {}).get("k8sRunLauncher") or {}
    run = k8s.get("runK8sConfig") or {}
    parts = {
        name: (
            (values.get(name) or {}).get("podSecurityContext") or {},
            (values.get(name) or {}).get("securityContext") or {},
            (values.get(name) or {}).get("volumes") or [],
            (values.get(name) or {}).get("volumeMounts") or [],
        )
        for name in ("dagsterWebserver", "dagsterDaemon")
    }
    parts["user deployment"] = (
        deployment.get("podSecurityContext") or {},
        deployment.get("securityContext") or {},
        deployment.get("volumes") or [],
        deployment.get("volumeMounts") or [],
    )
    # Run pods get the user deployment's volumes and mounts (includeConfigInLaunchedRuns).
    parts["run pods"] = (
        (run.get("podSpecConfig") or {}).get("securityContext") or {},
        (run.get("containerConfig") or {}).get("securityContext") or {},
        deployment.get("volumes") or [],
        deployment.get("volumeMounts") or [],
    )
    return parts


def check_pod_security(deploy_dir: Path) -> list[str]:
    """Webserver, daemon, user code and run pods: read-only root, RuntimeDefault seccomp, no escalation,
    and a writable emptyDir at /tmp (the only scratch a read-only root leaves)."""
    values = _load_yaml(deploy_dir / HELM_VALUES)
    problems = []
    for name, (pod, container, volumes, mounts) in _pod_parts(values).items():
        where = f"{HELM_VALUES} {name}"
        if container.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: securityContext.readOnlyRootFilesystem is not true")
        if container.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: securityContext.allowPrivilegeEscalation is not false")
        seccomp = (container.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            problems.append(f"{where}: no RuntimeDefault seccomp profile (found {seccomp!r})")
        if pod.get("runAsNonRoot") is not True and container.get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        empty_dirs = {v.get("name") for v in volumes if isinstance(v, dict) and "emptyDir" in v}
        if not any(m.get("mountPath") == "/tmp" and m.get("name") in empty_dirs for m in mounts):
            problems.append(f"{where}: no emptyDir mounted at /tmp for a read-only root filesystem")
    return problems


def check_concurrency_pools(deploy_dir: Path, repo_root: Path = REPO_ROOT) -> list[str]:
    """The pools the assets declare (`pool="..."`) are limited, so two runs of a partition never overlap."""
    values = _load_yaml(deploy_dir / HELM_VALUES)
    pools = ((values.get("concurrency") or {}).get("pools")) or {}
    declared = sorted(
        set(
            re.findall(
                r'\bpool="([^"]+)"',
                "\n".join(p.read_text() for p in (repo_root / "globolatte_dagster").rglob("*.py")),
            )
        )
    )
    problems = []
    if pools.get("defaultLimit") != 1:
        problems.append(
            f"{HELM_VALUES}: concurrency.pools.defaultLimit is {pools.get('defaultLimit')!r}, not 1: "
            f"the asset pools {declared} would run unlimited"
        )
    if pools.get("granularity") not in ("op", "run"):
        problems.append(f"{HELM_VALUES}: concurrency.pools.granularity must be op or run")
    queued = (((values.get("dagsterDaemon") or {}).get("runCoordinator") or {}).get("config") or {}).get(
        "queuedRunCoordinator"
    ) or {}
    per_partition = [
        t
        for t in queued.get("tagConcurrencyLimits") or []
        if t.get("key") == "dagster/partition"
        and (t.get("value") or {}).get("applyLimitPerUniqueValue") is True
        and t.get("limit") == 1
    ]
    if not per_partition:
        problems.append(f"{HELM_VALUES}: no run queue limit of 1 per unique dagster/partition tag")
    return problems


def check_network_policy(deploy_dir: Path) -> list[str]:
    """Only the webserver and the daemon may reach the code server's gRPC port."""
    path = deploy_dir / NETWORK_POLICY
    if not path.exists():
        return [f"{NETWORK_POLICY}: missing (nothing restricts who reaches the code server's gRPC port)"]
    values = _load_yaml(deploy_dir / HELM_VALUES)
    deployment = (_user_deployments(values) or [{}])[0]
    policies = [
        d
        for d in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if d and d.get("kind") == "NetworkPolicy"
    ]
    if not policies:
        return [f"{NETWORK_POLICY}: holds no NetworkPolicy"]
    spec = policies[0].get("spec") or {}
    problems = []
    want = {"component": "user-deployments", "deployment": deployment.get("name")}
    if (spec.get("podSelector") or {}).get("matchLabels") != want:
        problems.append(f"{NETWORK_POLICY}: podSelector does not select the user deployment {want}")
    if "Ingress" not in (spec.get("policyTypes") or []):
        problems.append(f"{NETWORK_POLICY}: policyTypes does not include Ingress")
    allowed_components = {"dagster-webserver", "dagster-daemon"}
    rules = spec.get("ingress") or []
    if not rules:
        problems.append(f"{NETWORK_POLICY}: no ingress rule (the webserver and daemon need the port)")
    for i, rule in enumerate(rules):
        sources = rule.get("from") or []
        components = {
            ((src.get("podSelector") or {}).get("matchLabels") or {}).get("component") for src in sources
        }
        if (
            not sources
            or any(set(src) != {"podSelector"} for src in sources)
            or not components <= allowed_components
        ):
            problems.append(f"{NETWORK_POLICY}: ingress[{i}] admits more than the webserver and the daemon")
        ports = [(p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports") or []]
        if ports != [("TCP", deployment.get("port"))]:
            problems.append(
                f"{NETWORK_POLICY}: ingress[{i}] ports {ports} are not the gRPC port {deployment.get('port')}"
            )
    return problems


def read_constraints(deploy_dir: Path) -> tuple[str | None, dict[str, str]]:
    """(python minor, {distribution: version}) of deploy/constraints.txt."""
    path = deploy_dir / CONSTRAINTS
    if not path.exists():
        return None, {}
    python, pins = None, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# python "):
            python = line.split()[-1]
        elif line.strip() and not line.startswith("#"):
            name, _, version = line.strip().partition("==")
            pins[name.lower()] = version
    return python, pins


def _conda_pins(conda: dict) -> tuple[str | None, dict[str, str], list[str]]:
    python, pins, loose = None, {}, []
    for dep in conda.get("dependencies") or []:
        if isinstance(dep, str) and dep.startswith("python="):
            python = dep.split("=", 1)[1]
        elif isinstance(dep, dict):
            for item in dep.get("pip") or []:
                name, sep, version = str(item).partition("==")
                if not sep:
                    loose.append(str(item))
                pins[name.strip().lower()] = version.strip()
    return python, pins, loose


def check_serving_pins(deploy_dir: Path, installed: dict[str, str] | None = None) -> list[str]:
    """constraints.txt, the Azure ML conda file and image, and the Dockerfile pin the same environment,
    and (with `installed`, the training environment's versions) that environment is the training one."""
    python, pins = read_constraints(deploy_dir)
    if not pins:
        return [f"{CONSTRAINTS}: missing or empty (deploy/tools/pins.py writes it)"]
    problems = []
    loose = [f"{k}{'==' + v if v else ''}" for k, v in pins.items() if not re.match(r"^\d", v or "")]
    if loose or not python:
        problems.append(
            f"{CONSTRAINTS}: every line must be name==version and a '# python X.Y' line must say the Python"
        )
    conda_python, conda_pins, conda_loose = _conda_pins(_load_yaml(deploy_dir / "azureml" / "conda.yml"))
    if conda_loose:
        problems.append(f"azureml/conda.yml: unpinned requirements {conda_loose}")
    if conda_pins != pins or conda_python != python:
        problems.append(
            f"azureml/conda.yml pins {conda_python} {conda_pins}, {CONSTRAINTS} pins {python} {pins}"
        )
    text = (deploy_dir / DOCKERFILE).read_text(encoding="utf-8")
    instructions = _dockerfile_instructions(text)
    runs = [rest for kw, rest in instructions if kw == "RUN" and '".[azure]"' in rest]
    if not runs or not re.search(r"(--constraint|-c)\s+\S*constraints\.txt", runs[0]):
        problems.append(f"{DOCKERFILE}: the project is not installed with --constraint deploy/{CONSTRAINTS}")
    if not any(kw == "COPY" and "constraints.txt" in rest for kw, rest in instructions):
        problems.append(f"{DOCKERFILE}: deploy/{CONSTRAINTS} is not copied into the build")
    for rest in (r for kw, r in instructions if kw == "FROM"):
        tag = rest.split()[0].rpartition(":")[2]
        if rest.split()[0].startswith("python:") and python and not tag.startswith(f"{python}."):
            problems.append(f"{DOCKERFILE}: base image {rest.split()[0]} is not Python {python}")
    from azure.ai.ml import load_online_deployment

    image = str(load_online_deployment(deploy_dir / "azureml" / "deployment.yml").environment.image)
    name, _, tag = image.split("@")[0].rpartition(":")
    if "@sha256:" not in image and (not name or tag in ("", "latest")):
        problems.append(f"azureml/deployment.yml: image {image} is not pinned by version or digest")
    if python and f"py{python.replace('.', '')}" not in image:
        problems.append(f"azureml/deployment.yml: image {image} is not a Python {python} image")
    if installed is not None:
        differ = {k: (v, installed.get(k)) for k, v in pins.items() if installed.get(k) != v}
        if differ:
            problems.append(
                f"{CONSTRAINTS} is not the training environment (pinned, installed): {differ}; "
                "run deploy/tools/pins.py with the training environment's Python"
            )
    return problems


# --- settings cross-check -----------------------------------------------------------------------------------
def _helm_env(deploy_dir: Path) -> tuple[dict[str, Any], list[str]]:
    values = _load_yaml(deploy_dir / HELM_VALUES)
    deployments = _user_deployments(values)
    if not deployments:
        return {}, []
    env = deployments[0].get("env") or []
    if isinstance(env, dict):  # the chart also accepts a plain mapping
        env = [{"name": k, "value": v} for k, v in env.items()]
    names = {item["name"]: item.get("value", item.get("valueFrom")) for item in env}
    secrets = [item["name"] for item in deployments[0].get("envSecrets") or []]
    return names, secrets


def _synced_secret_keys(deploy_dir: Path, secret_names: Iterable[str]) -> set[str]:
    """Keys of the Kubernetes secrets (by name) that external-secrets.yaml fills from Key Vault."""
    path = deploy_dir / EXTERNAL_SECRETS
    if not path.exists():
        return set()
    keys = set()
    with path.open(encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            if not doc or doc.get("kind") != "ExternalSecret":
                continue
            target = (doc.get("spec", {}).get("target") or {}).get("name") or doc["metadata"]["name"]
            if target in secret_names:
                keys |= {item["secretKey"] for item in doc["spec"].get("data") or []}
    return keys


def _readme_secret_rows(deploy_dir: Path) -> tuple[set[str], set[str]]:
    """Setting names mentioned in deploy/README.md, and those in a table row that marks them secret."""
    path = deploy_dir / README
    if not path.exists():
        return set(), set()
    mentioned, secret = set(), set()
    for line in path.read_text(encoding="utf-8").splitlines():
        names = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line))
        mentioned |= names
        if line.lstrip().startswith("|") and re.search(r"\bsecret\b", line, re.IGNORECASE):
            secret |= names
    return mentioned, secret


def check_settings_coverage(deploy_dir: Path, settings: Sequence[Any] | None = None) -> list[str]:
    """Every variable the code reads in `azure` mode is set in the Helm values or provided as a secret.

    - required, non-secret, and every other non-secret setting except the local-only ones: set in the
      user deployment's env with a value;
    - required secrets: a key of a Kubernetes secret in envSecrets, synced from Key Vault;
    - other secrets: synced likewise, or documented as a secret in deploy/README.md;
    - no secret is set as a plain value, no env name is unknown to settings.py, GLOBOLATTE_ENV is azure,
      and deploy/README.md names every setting.
    """
    if settings is None:
        from globolatte_dagster.settings import SETTINGS as settings
    env, secret_names = _helm_env(deploy_dir)
    synced = _synced_secret_keys(deploy_dir, secret_names)
    mentioned, readme_secret = _readme_secret_rows(deploy_dir)
    known = {s.name for s in settings}
    problems = []
    for s in settings:
        if s.secret:
            if s.name in env:
                problems.append(f"{s.name} is a secret but the Helm values set it in plain env")
            if s.required_in_azure and s.name not in synced:
                problems.append(
                    f"{s.name} (secret, required in azure) is not synced into {secret_names or 'any envSecret'}"
                )
            elif not s.required_in_azure and s.name not in synced and s.name not in readme_secret:
                problems.append(
                    f"{s.name} (secret) is neither synced from Key Vault nor documented as a secret in {README}"
                )
        elif (s.required_in_azure or s.name not in LOCAL_ONLY_SETTINGS) and env.get(s.name) in (None, ""):
            problems.append(
                f"{s.name} is read in azure mode but not set in the Helm values' user-deployment env"
            )
        if s.name not in mentioned:
            problems.append(f"{s.name} is not documented in deploy/{README}")
    problems += [
        f"Helm env sets {name}, which settings.py does not know" for name in env if name not in known
    ]
    if env.get("GLOBOLATTE_ENV") != "azure":
        problems.append("Helm env does not set GLOBOLATTE_ENV=azure")
    return problems


# --- Azure ML -----------------------------------------------------------------------------------------------
def check_azureml(deploy_dir: Path) -> list[str]:
    """endpoint.yml and deployment.yml load with the Azure ML SDK and describe the scoring endpoint."""
    from azure.ai.ml import load_online_deployment, load_online_endpoint

    problems = []
    base = deploy_dir / "azureml"
    endpoint = load_online_endpoint(base / "endpoint.yml")
    helm_mode = _helm_env(deploy_dir)[0].get("AZUREML_ENDPOINT_AUTH_MODE") or "key"
    if endpoint.name != ENDPOINT_NAME or endpoint.auth_mode not in ("key", "aad_token"):
        problems.append(f"azureml/endpoint.yml: expected {ENDPOINT_NAME} with key or aad_token auth")
    if endpoint.auth_mode != helm_mode:
        problems.append(
            f"azureml/endpoint.yml: auth_mode {endpoint.auth_mode} differs from the Helm values' "
            f"AZUREML_ENDPOINT_AUTH_MODE {helm_mode}"
        )
    if endpoint.public_network_access != "disabled":
        problems.append("azureml/endpoint.yml: public network access is not disabled")
    deployment = load_online_deployment(base / "deployment.yml")
    if deployment.name not in DEPLOYMENT_COLOURS or deployment.endpoint_name != ENDPOINT_NAME:
        problems.append("azureml/deployment.yml: deployment must be blue or green on " + ENDPOINT_NAME)
    code = (base / deployment.code_configuration.code).resolve()
    script = code / deployment.code_configuration.scoring_script
    if script.resolve() != (REPO_ROOT / "globolatte_dagster" / "serving" / "score.py").resolve():
        problems.append(
            f"azureml/deployment.yml: scoring script is {script}, not globolatte_dagster/serving/score.py"
        )
    env = deployment.environment
    if not getattr(env, "conda_file", None) or "azureml-inference-server-http" not in json.dumps(
        env.conda_file
    ):
        problems.append(
            "azureml/deployment.yml: the environment does not install azureml-inference-server-http"
        )
    return problems


def check_scoring_script_exists(deploy_dir: Path) -> list[str]:
    from azure.ai.ml import load_online_deployment

    deployment = load_online_deployment(deploy_dir / "azureml" / "deployment.yml")
    script = (
        deploy_dir / "azureml" / deployment.code_configuration.code
    ) / deployment.code_configuration.scoring_script
    return [] if script.exists() else [f"azureml/deployment.yml: scoring script {script} does not exist"]


# --- all ----------------------------------------------------------------------------------------------------
def all_problems(deploy_dir: Path = REPO_ROOT / "deploy") -> dict[str, list[str]]:
    results = {
        "terraform parses": check_terraform_parses(deploy_dir),
        "no secret in terraform": check_terraform_has_no_secret(deploy_dir),
        "checkov": check_checkov(deploy_dir, run_checkov(deploy_dir)),
        "dockerfile": check_dockerfile(deploy_dir) + check_dockerignore(),
        "helm values": check_helm_values(deploy_dir),
        "pod security": check_pod_security(deploy_dir),
        "concurrency pools": check_concurrency_pools(deploy_dir),
        "network policy": check_network_policy(deploy_dir),
        "serving pins": check_serving_pins(deploy_dir, installed_versions()),
        "settings coverage": check_settings_coverage(deploy_dir),
        "azure ml": check_azureml(deploy_dir) + check_scoring_script_exists(deploy_dir),
    }
    training = load_training_checks()
    results["azure ml training"] = training.check_training_infrastructure(
        deploy_dir
    ) + training.check_training_job(deploy_dir)
    hadolint = run_hadolint(deploy_dir)
    results["hadolint"] = hadolint if hadolint is not None else []
    return results


def installed_versions() -> dict[str, str]:
    """The versions of the pinned distributions in this interpreter's environment (the training one)."""
    from importlib import metadata

    _, pins = read_constraints(REPO_ROOT / "deploy")
    found = {}
    for name in pins:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def load_training_checks() -> Any:
    """deploy/tools/training_checks.py (the training cluster, datastore and job spec), as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "globolatte_training_checks", Path(__file__).with_name("training_checks.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    failed = False
    for name, problems in all_problems().items():
        print(f"{'FAIL' if problems else 'ok  '} {name}")
        for problem in problems:
            print(f"     - {problem}")
        failed |= bool(problems)
    if shutil.which("hadolint") is None:
        print("     (hadolint is not installed here: skipped)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
