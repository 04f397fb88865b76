"""`globolatte serve [--port 8765]`: the local scoring endpoint at http://127.0.0.1:PORT/score.

It deploys the registry's champions (blue/green: smoke-tested on a server of their own, which is then
stopped) unless the recorded deployment already holds them, then runs the front on PORT until
interrupted. The front starts its own model server from the recorded deployment, restarts it if it dies,
follows deployments made meanwhile by `serving/scoring_endpoint` (e.g. from `dagster dev`), and stops
its model server when it exits. Other fronts on the same home have servers of their own.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from pathlib import Path

import click


@click.command()
@click.option("--port", default=8765, show_default=True, help="port of http://127.0.0.1:PORT/score")
@click.option("--redeploy", is_flag=True, help="deploy the champions to a new colour even if recorded")
@click.option("--verbose", is_flag=True, help="log every request")
@click.option(
    "--wait", is_flag=True, help="wait for a first champion instead of failing (used by `make dev`)"
)
def serve(port: int, redeploy: bool, verbose: bool, wait: bool) -> None:
    """Serve every region's champion at http://127.0.0.1:PORT/score until interrupted."""
    from globolatte_dagster import settings
    from globolatte_dagster.resources import local_resources
    from globolatte_dagster.serving.deployer import DeploymentFailed
    from globolatte_dagster.serving.front import Front
    from globolatte_dagster.serving.model_server import ServerFailed

    stop = threading.Event()
    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
    ):  # also when started in the background, where SIGINT is ignored
        signal.signal(sig, lambda *_: stop.set())

    resources = local_resources()
    registry, endpoint = resources["registry"], resources["endpoint"]
    deployer = endpoint.deployer()
    click.echo(f"GLOBOLATTE_HOME={settings.home()}")
    with tempfile.TemporaryDirectory(prefix="globolatte-champions-") as tmp:
        bundle = registry.champion_bundle(Path(tmp) / "champions")
        if not bundle.versions and wait:
            click.echo("waiting for a first champion in the registry (the Dagster automation trains one)")
        while not bundle.versions and wait and not stop.wait(15):
            shutil.rmtree(Path(tmp) / "champions", ignore_errors=True)
            bundle = registry.champion_bundle(Path(tmp) / "champions")
        if not bundle.versions:
            if stop.is_set():
                return
            raise click.ClickException("no champion model in the registry yet: run `globolatte run` first")
        live = deployer.live_record()
        if redeploy or live is None or live.get("model_versions") != bundle.versions:
            try:
                live = deployer.deploy(bundle.path, bundle.versions, log=click.echo)
            except DeploymentFailed as exc:
                raise click.ClickException(str(exc)) from exc
        else:
            click.echo(f"{live['colour']} is deployed with {live['model_versions']}")
    front = Front(port, deployer.record_path, verbose=verbose, log=click.echo)
    try:
        front.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc}") from exc
    try:
        try:
            backend = front.supervisor.wait_ready(endpoint.ready_timeout_s)
        except ServerFailed as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"serving {backend.model_versions} (model server pid {backend.pid})")
        click.echo(f"POST {front.url}/score   (Ctrl-C to stop)")
        while not stop.wait(1.0):
            pass
    finally:
        front.stop()
        click.echo("stopped the front and its model server")
