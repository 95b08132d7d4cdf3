"""``civicpulse dashboards``: generate the Grafana boards and publish them to a Grafana.

The boards are code in ``dashboards/`` (beside this package, in the repository checkout)
and JSON in ``dashboards/json/``. ``publish`` pushes the folder and every board through
Grafana's HTTP API (grafana-client), overwriting by uid, so running it again changes
nothing but the boards' versions.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli_output import console, fail

REPO = Path(__file__).resolve().parents[1]
JSON_DIR = REPO / "dashboards" / "json"
FOLDER_UID = "civicpulse"
FOLDER_TITLE = "civicpulse"

dashboards_app = typer.Typer(no_args_is_help=True, help="Grafana boards: generate and publish.")


class PublishError(RuntimeError):
    """Publishing failed: unreachable Grafana, refused token, or a rejected board."""


def load_boards(directory: Path) -> list[dict[str, Any]]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise PublishError(f"no boards in {directory}: run `civicpulse dashboards build`")
    boards = []
    for path in files:
        board = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(board, dict) or not board.get("uid"):
            raise PublishError(f"{path}: not a board with a uid")
        boards.append(board)
    return boards


def publish(
    url: str,
    token: str,
    boards: list[dict[str, Any]],
    *,
    folder_uid: str = FOLDER_UID,
    folder_title: str = FOLDER_TITLE,
    timeout: float = 10.0,
) -> list[str]:
    """Create the folder when missing, then save every board in it, overwriting the board
    with the same uid. Returns the boards' uids."""
    import niquests
    from grafana_client.api import GrafanaApi
    from grafana_client.client import (
        GrafanaClientError,
        GrafanaException,
        GrafanaTimeoutError,
        GrafanaUnauthorizedError,
    )

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    try:
        try:
            api.folder.get_folder(folder_uid)
        except GrafanaClientError as err:
            if err.status_code != 404 or isinstance(err, GrafanaUnauthorizedError):
                raise
            api.folder.create_folder(folder_title, uid=folder_uid)
        published = []
        for board in boards:
            payload = {
                "dashboard": {**board, "id": None},
                "folderUid": folder_uid,
                "overwrite": True,
                "message": "civicpulse dashboards publish",
            }
            api.dashboard.update_dashboard(payload)
            published.append(str(board["uid"]))
        return published
    except GrafanaUnauthorizedError as err:
        raise PublishError(
            f"Grafana at {url} refused the token (401 Unauthorized): use a service account"
            " token with the Editor role (--token or GRAFANA_TOKEN)"
        ) from err
    except GrafanaTimeoutError as err:
        raise PublishError(f"Grafana at {url} did not answer within {timeout:g} s") from err
    except GrafanaException as err:
        raise PublishError(f"Grafana at {url} answered {err.status_code}: {err.message}") from err
    except niquests.exceptions.RequestException as err:
        raise PublishError(f"cannot reach Grafana at {url}: {err}") from err


@dashboards_app.command("build")
def build_command(
    check: Annotated[
        bool, typer.Option("--check", help="Only compare with the committed JSON.")
    ] = False,
) -> None:
    """Generate the boards into dashboards/json/ (needs the repository checkout)."""
    if (REPO / "dashboards" / "build.py").exists() and str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # the board sources sit beside the package
    try:
        build: Any = importlib.import_module("dashboards.build")
    except ModuleNotFoundError as err:
        raise fail(f"the board sources are not here ({err}): run from the repository") from err
    code = int(build.main(["--check"] if check else []))
    if code:
        raise typer.Exit(code=code)


@dashboards_app.command("publish")
def publish_command(
    url: Annotated[str, typer.Option(help="Grafana's base URL, e.g. http://localhost:3000")],
    token: Annotated[
        str, typer.Option(envvar="GRAFANA_TOKEN", help="Service account token (Editor role).")
    ],
    directory: Annotated[Path, typer.Option("--dir", help="The boards' JSON.")] = JSON_DIR,
    folder_uid: Annotated[str, typer.Option(help="Folder uid in Grafana.")] = FOLDER_UID,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 10.0,
) -> None:
    """Push the folder and every board to an existing Grafana, overwriting by uid."""
    try:
        uids = publish(url, token, load_boards(directory), folder_uid=folder_uid, timeout=timeout)
    except PublishError as err:
        raise fail(str(err)) from err
    console.print(f"published {len(uids)} boards to {url} (folder {folder_uid}): {', '.join(uids)}")
