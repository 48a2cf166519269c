"""`aivbatch webhooks`: the tenant's webhook endpoints, through the API."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import DEFAULT_API_URL, ApiKey, ApiUrl
from cli.common import connect, err, out, when

EVENTS = ("batch.completed", "batch.failed", "batch.expired", "batch.cancelled")

app = typer.Typer(
    help="Webhook endpoints: URLs that get a signed POST when one of your batches ends.",
    no_args_is_help=True,
)


@app.command()
def add(
    url: Annotated[str, typer.Argument(help="An http(s) URL on a public address.")],
    event: Annotated[
        list[str] | None,
        typer.Option(help=f"An event to send, repeatable ({', '.join(EVENTS)}); default all."),
    ] = None,
    description: Annotated[str, typer.Option(help="A label, to tell endpoints apart.")] = "",
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Register an endpoint; prints its signing secret (on stdout, alone), shown only now."""
    body: dict[str, Any] = {"url": url, "description": description}
    if event:
        body["events"] = event
    with connect(api_url, api_key) as api:
        made = api.post("/v1/webhooks", body)
    typer.echo(made["secret"])
    err.print(
        f"endpoint {made['id']} for {escape(made['url'])} ({', '.join(made['events'])}):"
        " the secret above is shown only now; verify deliveries with it"
        " (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature)",
        soft_wrap=True,
    )


@app.command("list")
def list_(api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None) -> None:
    """List endpoints and how their deliveries are going."""
    with connect(api_url, api_key) as api:
        data: list[dict[str, Any]] = api.get("/v1/webhooks")["data"]
    if not data:
        err.print("no webhook endpoints")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "url", "events", "last try", "last status", "pending", "next try"):
        table.add_column(column, no_wrap=column in ("id", "url"))
    for row in data:
        delivery = row["delivery"]
        status = delivery["last_error"] or delivery["last_status_code"]
        table.add_row(
            row["id"],
            escape(row["url"]),
            ", ".join(e.removeprefix("batch.") for e in row["events"]),
            when(delivery["last_attempt_at"], short=True),
            escape(str(status)) if status is not None else "—",
            f"{delivery['pending']}"
            + (f" ({delivery['failed']} failed)" if delivery["failed"] else ""),
            when(delivery["next_attempt_at"], short=True),
        )
    out.print(table)


@app.command()
def remove(
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (wh_…).")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Remove an endpoint; events it was still owed are dropped."""
    with connect(api_url, api_key) as api:
        api.delete(f"/v1/webhooks/{quote(endpoint_id, safe='')}")
    out.print(f"removed {endpoint_id}")


def register(main: typer.Typer) -> None:
    """Add `webhooks` to the app."""
    main.add_typer(app, name="webhooks")
