"""GraphiQL on GET /graphql: the page, its self-hosted bundle, and a CSP that keeps it to us.

The bundle (GraphiQL, React, Monaco and its web workers) is built from `graphiql/` by
`make graphiql` into app/static/graphiql; it is build output, never committed. The page
loads nothing from another origin, so it works offline and behind a strict CSP.
"""

import json
import logging
import os
import re
from html import escape
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app import demo
from app.accounts.models import Mode
from app.config import Settings
from app.db import Database

log = logging.getLogger(__name__)

BUNDLE_DIR = Path(__file__).resolve().parents[1] / "static" / "graphiql"
ASSETS_PATH = "/graphiql"  # where the app mounts the bundle
BUNDLE_ENTRY = "graphiql.js"

# What the demo IDE opens with: a query to run at once and a subscription to watch next.
EXAMPLE_OPERATION = """\
# Carbon Gateway. ▶ runs "Welcome"; then run "OrderUpdates"
# and place an order (createOrderByMass, in a new tab) to
# watch its state change as it happens.
query Welcome {
  viewer {
    mode
    account { name slug }
  }
  quoteByMass(input: { mass: { amount: "1", unit: T } }) {
    quote { totalCost { amount currency } }
    userErrors { code message }
  }
}

subscription OrderUpdates {
  orderStatusChanged {
    sequence
    previousState
    state
    order { id mass { amount unit } }
  }
}
"""


# A Host header is the client's to choose: name it in the policy only if it is a plain host.
PLAIN_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")


def content_security_policy(host: str) -> str:
    """Only this origin, with the exceptions GraphiQL strictly needs (each says why)."""
    websockets = f" ws://{host} wss://{host}" if PLAIN_HOST.fullmatch(host) else ""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            # Monaco starts its language workers from our own worker bundles.
            "worker-src 'self'",
            # Monaco writes <style> elements at run time (theme colours, decorations) and
            # has no nonce support; styles cannot run script.
            "style-src 'self' 'unsafe-inline'",
            # GraphiQL's published stylesheet inlines its fonts and icons as data: URLs.
            "font-src 'self' data:",
            "img-src 'self' data:",
            # Queries over fetch, subscriptions over WebSocket, both to this origin; 'self'
            # covers ws:/wss: only in CSP Level 3 browsers, so the host is named as well.
            f"connect-src 'self'{websockets}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def _security_headers(host: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(host),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


class GraphiQLAssets(StaticFiles):
    """The bundle's files, under the same CSP as the page (a worker gets its policy from its
    own script's response); a missing bundle answers 404 rather than failing the app."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, check_dir=False)
        self.bundle_dir = directory

    async def check_config(self) -> None:
        if self.bundle_dir.is_dir():
            await super().check_config()

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        host = Request(scope).url.netloc
        response.headers.update(_security_headers(host))
        # File names carry no content hash: revalidate (ETag) rather than cache blindly.
        response.headers["Cache-Control"] = "no-cache"
        return response


NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GraphiQL is not built</title></head>
<body>
<h1>GraphiQL is not built</h1>
<p>This server has no GraphiQL bundle in <code>{bundle_dir}</code>. Build it with
<code>make graphiql</code> (or <code>cd graphiql &amp;&amp; npm ci &amp;&amp; npm run build</code>);
the Docker image builds it in its node stage.</p>
<p>The API itself works: <code>POST /graphql</code> with an API key.</p>
</body></html>
"""


class GraphiQLPage:
    """Renders the IDE page; on the demo server it opens with the demo test key in its headers."""

    def __init__(self, db: Database, settings: Settings, bundle_dir: Path = BUNDLE_DIR) -> None:
        self.db = db
        self.settings = settings
        self.bundle_dir = bundle_dir

    @property
    def built(self) -> bool:
        return (self.bundle_dir / BUNDLE_ENTRY).is_file()

    async def render(self, request: Request) -> Response:
        if not self.built:
            log.warning("GraphiQL requested but not built in %s", self.bundle_dir)
            return HTMLResponse(
                NOT_BUILT_PAGE.format(bundle_dir=escape(str(self.bundle_dir))),
                status_code=503,
                headers={"Cache-Control": "no-store"},
            )
        demo_key = await self.demo_test_key()
        config = {
            "endpoint": request.url.path,
            "exampleOperation": EXAMPLE_OPERATION,
            "headers": (json.dumps({"Authorization": f"Bearer {demo_key}"}) if demo_key else None),
        }
        # A JSON data block is never executed, so the CSP needs no inline-script exception;
        # escaping "<" keeps any "</script>" inside the JSON from closing the block.
        config_json = orjson.dumps(config).decode().replace("<", "\\u003c")
        assets = request.scope.get("root_path", "") + ASSETS_PATH
        page = PAGE.format(assets=escape(assets), config=config_json)
        headers = _security_headers(request.url.netloc)
        # On the demo server the page holds a key: keep it out of every cache.
        headers["Cache-Control"] = "no-store"
        return HTMLResponse(page, headers=headers)

    async def demo_test_key(self) -> str | None:
        """The demo account's test key, only on the demo server: SQLite and the built-in
        development secret (so the key is derivable anyway); elsewhere never a key."""
        if not (self.settings.is_sqlite and self.settings.uses_insecure_secret):
            return None
        secret = self.settings.secret_key.get_secret_value()
        async with self.db.session() as session:
            keys = await demo.usable_demo_keys(session, secret)
        return next((key.key for key in keys if key.mode == Mode.TEST and not key.admin), None)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Carbon Gateway · GraphiQL</title>
<link rel="stylesheet" href="{assets}/graphiql.css">
<script type="application/json" id="graphiql-config">{config}</script>
<script src="{assets}/graphiql.js" defer></script>
</head>
<body><div id="graphiql">Loading…</div></body>
</html>
"""
