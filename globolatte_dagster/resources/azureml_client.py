"""The one way the Azure ML resources (registry, endpoint, training) reach their workspace.

Each resource builds one `MLClient` per resource instance, through its own `ml_client()` method, which calls
`workspace_ml_client` here; the tests override that method with the recorded double.
"""

from __future__ import annotations

from typing import Any


def workspace_ml_client(subscription_id: str, resource_group: str, workspace_name: str) -> Any:
    """A new `MLClient` for the workspace, authenticated with `DefaultAzureCredential` (workload identity)."""
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    return MLClient(DefaultAzureCredential(), subscription_id, resource_group, workspace_name)
