"""The web app's routes (Starlette): pages rendered by Jinja2 with autoescape, images by row, decisions
as JSON POSTs.

Safety, because a local server is reachable by every page the user's browser opens:
- images are served by Manifest row only (``thumbs``), never by a path from the request;
- the Host header must name this server (no DNS rebinding), and pages may not be framed;
- every write needs the session's token in a header (a page of another site cannot read it, and
  cannot send that header cross-origin without a CORS preflight this app never answers), and an
  Origin, when sent, must be this server's.
"""

from __future__ import annotations

import hmac
import json
import secrets
from importlib import resources

import jinja2
import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from pixelforge.browse.session import ACTIONS, PAGE_SIZES, SORTS, Filters, Session
from pixelforge.errors import PixelforgeError

TOKEN_HEADER = "x-pixelforge-token"
MAX_BODY = 2 * 2**20  # a decision names at most a few thousand keys
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; img-src 'self'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("pixelforge.browse", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "–" if v is None or v != v else f"{v:.0%}"
    return env


def create_app(session: Session, *, allowed_hosts=LOCAL_HOSTS, token: str | None = None) -> Starlette:
    """The app for one session; ``allowed_hosts`` are the names the Host header may carry ("*": any)."""
    env = _templates()
    token = token or secrets.token_urlsafe(32)
    static = {name: resources.files("pixelforge.browse").joinpath("static", name).read_bytes()
              for name in ("browse.js", "browse.css")}

    def page(name: str, request: Request, status: int = 200, **context) -> HTMLResponse:
        base = {"token": token, "session": session, "source": session.source, "counts": session.counts(),
                "curation": str(session.curation_path), "audit": session.audit, "predictions": session.predictions,
                "path": request.url.path}
        return HTMLResponse(env.get_template(name).render(**base, **context), status, headers=SECURITY_HEADERS)

    def problem(request: Request, message: str, status: int = 400) -> Response:
        return page("error.html", request, status, message=message)

    def tile(row: int, conf=None, pred=None) -> dict:
        out = session.state(row) | {"predicted": None, "confidence": None, "wrong": False}
        if pred is not None and pred >= 0:
            out["predicted"] = session.predictions.classes[pred]
            out["confidence"] = float(conf)
            out["wrong"] = out["predicted"] != out["label"]
        return out

    async def grid(request: Request) -> Response:
        try:
            f = session.parse(request.query_params)
        except PixelforgeError as exc:
            return problem(request, str(exc))
        rows = session.select(f)
        pages = max(1, -(-len(rows) // f.per))
        f.page = min(f.page, pages)
        shown = rows[(f.page - 1) * f.per: f.page * f.per]
        p = session.predictions
        pred = conf = None
        if p is not None and p.ready:
            pred, conf = p.predicted()
        tiles = [tile(int(r), conf[r] if conf is not None else None, pred[r] if pred is not None else None)
                 for r in shown]
        return page("grid.html", request, f=f, tiles=tiles, total=len(rows), pages=pages, sorts=SORTS,
                    page_sizes=PAGE_SIZES, query=f.query(page=f.page), back=f.query(page=f.page))

    async def image(request: Request) -> Response:
        row = request.path_params["row"]
        if not 0 <= row < len(session.manifest):
            return problem(request, f"no image {row}", 404)
        try:
            f = session.parse(request.query_params)
        except PixelforgeError:
            f = Filters()
        rows = session.select(f)
        at = np.flatnonzero(rows == row)
        prev = int(rows[at[0] - 1]) if len(at) and at[0] > 0 else None
        nxt = int(rows[at[0] + 1]) if len(at) and at[0] + 1 < len(rows) else None
        m = session.manifest
        findings = []
        if session.audit:
            for fid in session.audit.by_row.get(row, []):
                finding = session.audit.findings[fid]
                findings.append((finding, finding.notes.get(row, "")))
        groups = []
        for fid, g in (session.audit.groups_of.get(row, []) if session.audit else []):
            members = session.audit.findings[fid].groups[g].tolist()
            groups.append({"finding": session.audit.findings[fid], "id": f"{fid}-{g}",
                           "members": [session.state(r) for r in members]})
        metadata = [("location", m.locations[row]), ("file", m.describe(row)), ("split", m.splits[row] or "–")]
        metadata += [(name, values[row]) for name, values in m.metadata.items()]
        return page("image.html", request, state=session.state(row), metadata=metadata, findings=findings,
                    groups=groups, top=session.top(row), prev=prev, next=nxt, back=f.query(page=f.page),
                    position=(int(at[0]) + 1 if len(at) else None), total=len(rows))

    async def summary(request: Request) -> Response:
        if session.audit is None:
            return problem(request, "no audit: start with --audit REPORT_DIR (written by pixelforge audit DATA --out DIR)", 404)
        decided = session.decision_rows("decided")
        rows = [(f, int(decided[f.rows].sum()) if len(f.rows) else 0) for f in session.audit.findings]
        return page("summary.html", request, findings=rows)

    async def confusion(request: Request) -> Response:
        p = session.predictions
        if p is None:
            return problem(request, "no run: start with --run RUN_DIR (written by pixelforge train)", 404)
        split = request.query_params.get("split") or None
        if split is not None and split not in (*session.split_names, "none"):
            return problem(request, f"no split {split!r}")
        if not p.ready:
            return page("waiting.html", request, what="the confusion matrix")
        cm = session.confusion(split)
        peak = max((max(r) for r in cm["matrix"]), default=1) or 1
        return page("confusion.html", request, cm=cm, split=split, peak=peak, splits=session.split_names)

    def picture(kind: str):
        # a plain function: Starlette runs it in its thread pool, so decoding never stalls the other pages
        def serve(request: Request) -> Response:
            row = request.path_params["row"]
            cache = request.app.state.images
            try:
                data, media = cache.thumbnail(row) if kind == "thumb" else cache.full(row)
            except PixelforgeError:
                return Response(b"", 404, headers={"x-content-type-options": "nosniff"})
            return Response(data, media_type=media, headers={"cache-control": "private, max-age=86400",
                                                             "x-content-type-options": "nosniff"})
        return serve

    def asset(name: str, media: str):
        async def serve(request: Request) -> Response:
            return Response(static[name], media_type=media, headers={"cache-control": "no-cache",
                                                                     "x-content-type-options": "nosniff"})
        return serve

    async def status(request: Request) -> Response:
        p = session.predictions
        return JSONResponse({"counts": session.counts(),
                             "predictions": None if p is None else {"ready": p.ready, "progress": p.progress,
                                                                    "error": p.error}},
                            headers={"cache-control": "no-store"})

    def refused(request: Request) -> str | None:
        """Why a write is refused, or None: the token, JSON, and our own origin."""
        sent = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return "missing or wrong session token; reload the page"
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return "expected a JSON body"
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            return f"refused a request from another origin ({origin})"
        return None

    async def body_of(request: Request) -> dict:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise PixelforgeError("request too large")
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            raise PixelforgeError("the body is not JSON") from None
        if not isinstance(data, dict):
            raise PixelforgeError("expected a JSON object")
        return data

    def answer(message: str, keys: list[str]) -> JSONResponse:
        images = {k: session.state(session.rows_of[k][0]) for k in keys if k in session.rows_of}
        return JSONResponse({"message": message, "images": images, "counts": session.counts()},
                            headers={"cache-control": "no-store"})

    async def decide(request: Request) -> Response:
        reason = refused(request)
        if reason:
            return JSONResponse({"error": reason}, 403)
        try:
            data = await body_of(request)
            keys = data.get("keys")
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise PixelforgeError("keys must be a list of image keys")
            if data.get("action") not in ACTIONS:
                raise PixelforgeError(f"action must be one of {', '.join(ACTIONS)}")
            message, changed = session.decide(keys, data["action"], data.get("value"))
        except PixelforgeError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return answer(message, changed)

    async def undo(request: Request) -> Response:
        reason = refused(request)
        if reason:
            return JSONResponse({"error": reason}, 403)
        message, keys = session.undo()
        return answer(message, keys)

    routes = [
        Route("/", grid), Route("/image/{row:int}", image), Route("/summary", summary),
        Route("/confusion", confusion),
        Route("/thumb/{row:int}", picture("thumb")), Route("/full/{row:int}", picture("full")),
        Route("/static/browse.js", asset("browse.js", "text/javascript; charset=utf-8")),
        Route("/static/browse.css", asset("browse.css", "text/css; charset=utf-8")),
        Route("/api/status", status),
        Route("/api/decide", decide, methods=["POST"]), Route("/api/undo", undo, methods=["POST"]),
    ]
    from pixelforge.browse.thumbs import ImageCache

    app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))])
    app.state.images = ImageCache(session.manifest)
    app.state.token = token
    app.state.session = session
    return app
