"""Rendering pages: one Jinja2 environment, the page language, and the headers every page gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from zvonar import __version__
from zvonar.i18n import LANGUAGES, Translator, translate

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
HTMX_VERSION = "2.0.11"

# Pages load nothing from other origins and run no inline script or style; htmx is configured
# (templates/base.html) not to inject its indicator <style> or to evaluate attribute code.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Pages carry CSRF tokens and personal data: keep them out of shared and back-button caches.
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=FileSystemLoader(WEB_DIR / "templates"),
    autoescape=select_autoescape(("html",)),
    undefined=StrictUndefined,  # a typo in a template fails the tests instead of rendering ""
    trim_blocks=True,
    lstrip_blocks=True,
)


def static_url(request: Request, name: str) -> str:
    """Root-relative URL of a static file; the version busts caches after an upgrade."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return f"{root}/static/{name}?v={__version__}"


def language_choices() -> list[tuple[str, str]]:
    """``(code, name)`` for the switcher; each language is named in itself."""
    return [(code, translate("language.name", code)) for code in LANGUAGES]


def render(
    request: Request,
    template: str,
    lang: str,
    *,
    status_code: int = 200,
    csrf_token: str | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _env.get_template(template).render(
        t=Translator(lang),
        lang=lang,
        csrf_token=csrf_token,
        static=lambda name: static_url(request, name),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def see_other(request: Request, url: str) -> Response:
    """Redirect after a form post (303); an htmx request is told to navigate instead."""
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=200, headers={**SECURITY_HEADERS, "HX-Redirect": url})
    return Response(status_code=303, headers={**SECURITY_HEADERS, "Location": url})
