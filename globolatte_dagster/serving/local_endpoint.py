"""The local scoring endpoint: `score.py` under Azure ML's inference server, deployed blue/green.

Split by role:

- `model_server`: process control of one `azmlinfsrv` (start on a free 127.0.0.1 port in its own
  process group, wait until ready, stop the group);
- `deployer`: `LocalDeployer`, the blue/green deployment (prepare a folder, smoke-test it on its own
  server, stop that server, switch the record `endpoint.json`);
- `supervisor`: the model servers of one front (follow the record, probe, restart a dead one);
- `front`: `globolatte serve`, the ASGI front on uvicorn with its limits; `http_protocol` (its HTTP/1.1
  protocol: header timeout, JSON 400s) and `backend_client` (its hop to the model server).

Who starts and stops each server is in the README ("Who starts and stops each server"). This module
only re-exports the names other code uses. No Dagster here.
"""

from globolatte_dagster.serving.deployer import RECORD, DeploymentFailed, LocalDeployer, smoke_test
from globolatte_dagster.serving.front import Front, Limits
from globolatte_dagster.serving.model_server import (
    HOST,
    SERVER_MARK,
    ModelServer,
    ServerFailed,
    free_port,
    pid_alive,
    server_processes,
)
from globolatte_dagster.serving.supervisor import Supervisor

__all__ = [
    "HOST",
    "RECORD",
    "SERVER_MARK",
    "DeploymentFailed",
    "Front",
    "Limits",
    "LocalDeployer",
    "ModelServer",
    "ServerFailed",
    "Supervisor",
    "free_port",
    "pid_alive",
    "server_processes",
    "smoke_test",
]
