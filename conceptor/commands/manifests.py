"""`conceptor dev manifests …`: print the app pods' Kubernetes manifests as YAML (for Tilt)."""

from __future__ import annotations

import typer

from conceptor.platform.settings import MAX_WORKERS_PER_QUEUE, get_settings

manifests_app = typer.Typer(
    help="Kubernetes manifests of the app pods (TILT_INFRA=k8s feeds them to k8s_yaml).",
    no_args_is_help=True,
)

IMAGE_HELP = "image of _dev-env/Dockerfile (default: CENTRAL_APP_IMAGE, conceptor-app)"


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


@manifests_app.command("workers")
def render_workers(
    core: int = typer.Option(1, "--core", help=f"core workers, 0..{MAX_WORKERS_PER_QUEUE}"),
    media: int = typer.Option(1, "--media", help=f"media workers, 0..{MAX_WORKERS_PER_QUEUE}"),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
) -> None:
    """One Deployment per worker: worker-core-0..CORE-1, worker-media-0..MEDIA-1."""
    from conceptor.commands import (
        k8s_manifests as manifests,  # the kubernetes models are slow to import
    )

    settings = get_settings()
    try:
        objects = manifests.worker_manifests(
            settings, core=core, media=media, image=image or settings.app_image
        )
    except manifests.WorkerCountError as exc:
        raise _fail(str(exc)) from None
    typer.echo(manifests.to_yaml(objects), nl=False)


@manifests_app.command("app")
def render_app(
    components: list[str] = typer.Argument(None, help="default: api panel"),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
) -> None:
    """A Deployment and a Service for each of COMPONENTS (api, panel)."""
    from conceptor.commands import k8s_manifests as manifests

    settings = get_settings()
    try:
        objects = manifests.app_manifests(
            settings,
            components=components or list(manifests.APP_COMMANDS),
            image=image or settings.app_image,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(manifests.to_yaml(objects), nl=False)
