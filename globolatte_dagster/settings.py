"""Every environment variable the platform reads, in one place.

The deploy checks cross-check this list against `deploy/helm/values.yaml` and the README.
Values are read by resources through `dg.EnvVar` (secrets) or when the resource dictionary
is built (GLOBOLATTE_AUTOMATION: when the definitions load); nothing here reads them at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    description: str
    secret: bool = False
    required_in_azure: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("GLOBOLATTE_ENV", "`local` (default) or `azure`: picks the resources"),
    Setting("GLOBOLATTE_HOME", "local state: warehouse, registry, Dagster home (default .globolatte)"),
    Setting("GLOBOLATTE_LANDING", "local landing folder (default $GLOBOLATTE_HOME/landing)"),
    Setting(
        "GLOBOLATTE_AUTOMATION",
        "`on` (default) or `off`: with `off` every sensor starts stopped (maintenance windows, benchmarks); "
        "a state set in the UI wins",
    ),
    Setting(
        "GLOBOLATTE_FIRST_DAY",
        "first partition day (YYYY-MM-DD, default 2015-01-01): a landed day before it is reported as "
        "stray, not loaded",
    ),
    Setting(
        "GLOBOLATTE_UPLOAD_DEADLINE",
        "when the units' uploads are due: a cron expression and an optional IANA time zone (default "
        "`0 23 * * * America/Mexico_City`); raw/sales and raw/weather show their freshness as failed when "
        "nothing landed in the cron interval before a deadline",
    ),
    Setting(
        "GLOBOLATTE_HASH_KEY",
        "key of the email hash in core/customers; locally, when unset, generated once under GLOBOLATTE_HOME",
        secret=True,
        required_in_azure=True,
    ),
    # Azure Blob landing zone
    Setting(
        "AZURE_STORAGE_ACCOUNT_URL",
        "landing storage account, https://<account>.blob.core.windows.net",
        required_in_azure=True,
    ),
    Setting("AZURE_STORAGE_CONTAINER", "landing container (default `landing`)"),
    Setting("AZURE_STORAGE_SAS_TOKEN", "optional SAS token instead of DefaultAzureCredential", secret=True),
    Setting(
        "AZURE_STORAGE_ACCOUNT_KEY", "optional account key instead of DefaultAzureCredential", secret=True
    ),
    Setting("AZURE_STORAGE_CONNECTION_STRING", "connection string, for Azurite only", secret=True),
    # Snowflake warehouse
    Setting("SNOWFLAKE_ACCOUNT", "Snowflake account identifier", required_in_azure=True),
    Setting("SNOWFLAKE_USER", "service user", required_in_azure=True),
    Setting("SNOWFLAKE_ROLE", "role (TRANSFORMER for the platform)", required_in_azure=True),
    Setting("SNOWFLAKE_WAREHOUSE", "virtual warehouse", required_in_azure=True),
    Setting("SNOWFLAKE_DATABASE", "database (GLOBOLATTE)", required_in_azure=True),
    Setting("SNOWFLAKE_PRIVATE_KEY", "PEM private key for key-pair authentication", secret=True),
    Setting("SNOWFLAKE_PRIVATE_KEY_PASSWORD", "passphrase of the private key, if any", secret=True),
    Setting("SNOWFLAKE_PASSWORD", "password, only where key-pair authentication is not used", secret=True),
    # Azure ML
    Setting("AZURE_SUBSCRIPTION_ID", "subscription of the Azure ML workspace", required_in_azure=True),
    Setting("AZURE_RESOURCE_GROUP", "resource group of the Azure ML workspace", required_in_azure=True),
    Setting("AZUREML_WORKSPACE_NAME", "Azure ML workspace", required_in_azure=True),
    Setting("AZUREML_ENDPOINT_NAME", "managed online endpoint name (default globolatte-scoring)"),
    Setting(
        "AZUREML_ENDPOINT_AUTH_MODE",
        "how clients authenticate to the endpoint: `key` (default) or `aad_token` (Microsoft Entra token)",
    ),
    # Where ml/preference_model trains (docs/training.md)
    Setting(
        "GLOBOLATTE_TRAINING",
        "where ml/preference_model trains: `inprocess`, `subprocess` (default locally) or `azureml` "
        "(default in azure)",
    ),
    Setting("AZUREML_TRAINING_COMPUTE", "compute cluster of the training jobs (default cpu-cluster)"),
    Setting(
        "AZUREML_TRAINING_DATASTORE",
        "datastore the training folders go to and the jobs read (default globolatte_training)",
    ),
    Setting(
        "AZUREML_TRAINING_IDENTITY_CLIENT_ID",
        "client id of the training cluster's managed identity (terraform output training_identity_client_id)",
        required_in_azure=True,
    ),
)


def _setting(name: str) -> Setting:
    setting = next((s for s in SETTINGS if s.name == name), None)
    if setting is None:
        raise KeyError(f"{name} is not a setting of settings.SETTINGS")
    return setting


def is_set(name: str) -> bool:
    """Whether the setting `name` has a non-empty value; the value itself is not returned."""
    _setting(name)
    return bool(os.environ.get(name))


def value(name: str, default: str | None = None) -> str | None:
    """The value of a non-secret setting (secrets are read only as `dg.EnvVar`s), or `default`."""
    setting = _setting(name)
    if setting.secret:
        raise ValueError(f"{name} is a secret: read it with dg.EnvVar, not settings.value")
    return os.environ.get(name, "").strip() or default


# ---- variables that belong to other programs (Dagster, Azure ML's inference server, child processes) ----
def dagster_home_is_set() -> bool:
    """Whether DAGSTER_HOME (Dagster's own variable) is set."""
    return bool(os.environ.get("DAGSTER_HOME"))


def use_dagster_home(path: Path) -> None:
    """Point Dagster (this process and its children) at the instance in `path`."""
    os.environ["DAGSTER_HOME"] = str(path)


def azureml_model_dir(name: str = "AZUREML_MODEL_DIR") -> str | None:
    """The model folder Azure ML's inference server passes to the scoring script, if any."""
    return os.environ.get(name) or None


def training_storage_connection_string() -> str | None:
    """AZURE_STORAGE_CONNECTION_STRING in a training job's own process (Azurite in the tests only).

    The job runs outside Dagster, so there is no `dg.EnvVar` to resolve; the value is used to build a
    client and is never logged.
    """
    return os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or None


def child_environment(drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment for a child process, without the variables named in `drop`."""
    return {k: v for k, v in os.environ.items() if k not in drop}


def env() -> str:
    value = os.environ.get("GLOBOLATTE_ENV", "local").strip().lower() or "local"
    if value not in ("local", "azure"):
        raise ValueError(f"GLOBOLATTE_ENV must be 'local' or 'azure', not '{value}'")
    return value


TRAINING_PATHS = ("inprocess", "subprocess", "azureml")


def training(environment: str | None = None) -> str:
    """Where ml/preference_model trains (GLOBOLATTE_TRAINING): subprocess locally, azureml in azure."""
    default = "azureml" if (environment or env()) == "azure" else "subprocess"
    value = os.environ.get("GLOBOLATTE_TRAINING", "").strip().lower() or default
    if value not in TRAINING_PATHS:
        raise ValueError(f"GLOBOLATTE_TRAINING must be one of {', '.join(TRAINING_PATHS)}, not '{value}'")
    return value


def azureml_training_target() -> tuple[str, str]:
    """AZUREML_TRAINING_COMPUTE and AZUREML_TRAINING_DATASTORE ("" where unset: the code's defaults)."""
    return (
        os.environ.get("AZUREML_TRAINING_COMPUTE", "").strip(),
        os.environ.get("AZUREML_TRAINING_DATASTORE", "").strip(),
    )


def home() -> Path:
    return Path(os.environ.get("GLOBOLATTE_HOME", ".globolatte")).resolve()


def landing_dir() -> Path:
    value = os.environ.get("GLOBOLATTE_LANDING")
    return Path(value).resolve() if value else home() / "landing"


DEFAULT_FIRST_DAY = "2015-01-01"


def first_day() -> str:
    """The first day of the region x day partitions (GLOBOLATTE_FIRST_DAY), as YYYY-MM-DD.

    Read when the definitions load (and by the sensors and `globolatte run`), never at import.
    """
    from datetime import date

    value = os.environ.get("GLOBOLATTE_FIRST_DAY", "").strip() or DEFAULT_FIRST_DAY
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or len(value) != 10:
        raise ValueError(f"GLOBOLATTE_FIRST_DAY must be a YYYY-MM-DD day, not '{value}'")
    if parsed > date.today():
        raise ValueError(f"GLOBOLATTE_FIRST_DAY {value} is in the future")
    return parsed.isoformat()


DEFAULT_UPLOAD_DEADLINE = "0 23 * * * America/Mexico_City"  # after every unit's evening


def upload_deadline() -> tuple[str, str]:
    """(cron, time zone) of GLOBOLATTE_UPLOAD_DEADLINE; read when the definitions load, never at import."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = os.environ.get("GLOBOLATTE_UPLOAD_DEADLINE", "").strip() or DEFAULT_UPLOAD_DEADLINE
    fields = value.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"GLOBOLATTE_UPLOAD_DEADLINE must be a cron expression and an optional time zone "
            f"(e.g. '{DEFAULT_UPLOAD_DEADLINE}'), not '{value}'"
        )
    zone = fields[5] if len(fields) == 6 else "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"GLOBOLATTE_UPLOAD_DEADLINE: unknown time zone '{zone}'") from None
    return " ".join(fields[:5]), zone


def automation_on() -> bool:
    """Whether sensors start running in a fresh instance (their default status)."""
    value = os.environ.get("GLOBOLATTE_AUTOMATION", "on").strip().lower() or "on"
    if value not in ("on", "off"):
        raise ValueError(f"GLOBOLATTE_AUTOMATION must be 'on' or 'off', not '{value}'")
    return value == "on"


def default_sensor_status():
    """`dg.DefaultSensorStatus` of every sensor: RUNNING unless GLOBOLATTE_AUTOMATION=off."""
    import dagster as dg

    return dg.DefaultSensorStatus.RUNNING if automation_on() else dg.DefaultSensorStatus.STOPPED
