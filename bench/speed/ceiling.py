"""The ceiling: plain Starlette answering every POST /graphql with the bytes our server sent.

python -m bench.speed.ceiling RESPONSE_FILE --port N
"""

import os
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.speed.servers import serve_like_ours

RESPONSE_FILE = "BENCH_RESPONSE_FILE"


def create_app() -> Starlette:
    body = Path(os.environ[RESPONSE_FILE]).read_bytes()

    async def graphql(request: Request) -> Response:
        await request.body()  # read the request as any endpoint must
        return Response(body, media_type="application/json")

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", healthz)]
    )


if __name__ == "__main__":
    os.environ[RESPONSE_FILE] = sys.argv[1]
    serve_like_ours("bench.speed.ceiling:create_app", int(sys.argv[sys.argv.index("--port") + 1]))
