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


def parse_counts(given: list[str] | None, flag: str) -> dict[str, int]:
    """`QUEUE=N` words as {queue: N}; a malformed word or a count past the limit is refused."""
    counts: dict[str, int] = {}
    for word in given or []:
        queue, sep, text = word.partition("=")
        if not sep or not text.isdigit() or not queue:
            msg = f"{flag} {word!r}: expected QUEUE=N, e.g. {flag} billing=2"
            raise _fail(msg)
        if int(text) > MAX_WORKERS_PER_QUEUE:
            msg = f"{flag} {word!r}: at most {MAX_WORKERS_PER_QUEUE} workers per queue"
            raise _fail(msg)
        counts[queue] = int(text)
    return counts


@manifests_app.command("workers")
def render_workers(
    core: int | None = typer.Option(
        None, "--core", help=f"core workers, 0..{MAX_WORKERS_PER_QUEUE} (as --count core=N)"
    ),
    count: list[str] = typer.Option(
        None, "--count", help="QUEUE=N workers of a declared queue (default: the file's workers)"
    ),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
) -> None:
    """One Deployment per worker of every queue the environment file declares."""
    from conceptor.commands import (
        k8s_manifests as manifests,  # the kubernetes models are slow to import
    )

    settings = get_settings()
    try:
        objects = manifests.worker_manifests(
            settings,
            core=core,
            counts=parse_counts(count, "--count"),
            image=image or settings.app_image,
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
