"""`globolatte serve [--port 8765]`: the local scoring endpoint at http://127.0.0.1:PORT/score.

It deploys the registry's champions (blue/green, under Azure ML's inference server) unless a live
deployment already serves them, then runs the stable front on PORT until interrupted. Deployments made
meanwhile by `serving/scoring_endpoint` (e.g. from `dagster dev`) are followed without losing a request.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import click


@click.command()
@click.option("--port", default=8765, show_default=True, help="port of http://127.0.0.1:PORT/score")
@click.option("--redeploy", is_flag=True, help="deploy the champions to a new colour even if one is live")
@click.option("--verbose", is_flag=True, help="log every proxied request")
@click.option("--wait", is_flag=True, help="wait for a first champion instead of failing (used by `make dev`)")
def serve(port: int, redeploy: bool, verbose: bool, wait: bool) -> None:
    """Serve every region's champion at http://127.0.0.1:PORT/score until interrupted."""
    from globolatte_dagster import settings
    from globolatte_dagster.resources import local_resources
    from globolatte_dagster.serving.local_endpoint import DeploymentFailed, ScoringProxy

    resources = local_resources()
    registry, endpoint = resources["registry"], resources["endpoint"]
    deployer = endpoint.deployer()
    click.echo(f"GLOBOLATTE_HOME={settings.home()}")
    with tempfile.TemporaryDirectory(prefix="globolatte-champions-") as tmp:
        bundle = registry.champion_bundle(Path(tmp) / "champions")
        if not bundle.versions and wait:
            click.echo("waiting for a first champion in the registry (the Dagster automation trains one)")
        while not bundle.versions and wait:
            time.sleep(15)
            shutil.rmtree(Path(tmp) / "champions", ignore_errors=True)
            bundle = registry.champion_bundle(Path(tmp) / "champions")
        if not bundle.versions:
            raise click.ClickException("no champion model in the registry yet: run `globolatte run` first")
        live = deployer.live_record()
        if redeploy or live is None or live.get("model_versions") != bundle.versions:
            try:
                live = deployer.deploy(bundle.path, bundle.versions, log=click.echo)
            except DeploymentFailed as exc:
                raise click.ClickException(str(exc)) from exc
        else:
            click.echo(f"{live['colour']} already serves {live['model_versions']} at {live['url']}")
    try:
        proxy = ScoringProxy(port, deployer.record_path, verbose=verbose)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc}") from exc
    stop = threading.Event()
    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
    ):  # also when started in the background, where SIGINT is ignored
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"serving {live['model_versions']}")
    click.echo(f"POST {proxy.url}/score   (Ctrl-C to stop)")
    try:
        with proxy.running():
            while not stop.wait(2.0):
                deployer.reap()
    finally:
        stopped = deployer.stop()
        click.echo(f"stopped {stopped['colour'] if stopped else 'nothing'}")
