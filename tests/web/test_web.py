"""The web shell over HTTP: sign in, CSRF, language, sign out, headers and static files."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Tenant
from zvonar.accounts.models import Role
from zvonar.api.deps import SESSION_COOKIE
from zvonar.container import Container
from zvonar.core.errors import Unauthenticated
from zvonar.i18n import LANGUAGES, catalog
from zvonar.web.csrf import LOGIN_COOKIE, LoginCsrf

BAD_CREDENTIALS = "Wrong email or password."


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name!r} in page"
    return match.group(1)


def html_lang(html: str) -> str:
    match = re.search(r'<html lang="([a-z]{2})">', html)
    assert match, "no <html lang>"
    return match.group(1)


def assert_page_is_clean(r: httpx.Response) -> None:
    """Every page: translated throughout, security headers, nothing loaded from elsewhere."""
    assert r.headers["content-type"].startswith("text/html")
    assert "⟦" not in r.text, "a translation key is missing"
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "no-store" in r.headers["cache-control"]
    for url in re.findall(r'(?:src|href)="([^"]*)"', r.text):
        assert url.startswith("/"), f"page references {url!r}"
    assert "<script>" not in r.text and "style=" not in r.text  # the CSP would block them


def set_cookie_header(r: httpx.Response, name: str) -> str:
    for value in r.headers.get_list("set-cookie"):
        if value.startswith(f"{name}="):
            return value
    raise AssertionError(f"no Set-Cookie for {name}: {r.headers.get_list('set-cookie')}")


async def post_login(
    client: httpx.AsyncClient, email: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    page = await client.get("/login", headers=headers)
    assert page.status_code == 200
    data = {"email": email, "password": password, "login_token": hidden(page.text, "login_token")}
    return await client.post("/login", data=data, headers=headers)


async def sign_in(client: httpx.AsyncClient, tenant: Tenant) -> str:
    """Sign in through the form; returns the session's CSRF token from the start page."""
    r = await post_login(client, tenant.admin_email, tenant.admin_password)
    assert r.status_code == 303
    home = await client.get("/")
    assert home.status_code == 200
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', home.text)
    assert match
    return match.group(1)


async def test_login_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/login")
    assert r.status_code == 200
    assert_page_is_clean(r)
    assert html_lang(r.text) == "en"
    assert "<h1>Sign in to Zvonar</h1>" in r.text
    assert 'name="csrf-token"' not in r.text  # no session yet
    cookie = set_cookie_header(r, LOGIN_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/login" in cookie


@pytest.mark.parametrize(
    ("accept", "lang", "heading"),
    [
        ("uk-UA,uk;q=0.9,ru;q=0.8,en;q=0.7", "uk", "Вхід до Zvonar"),
        ("ru-RU,ru;q=0.9,en-US;q=0.8", "ru", "Вход в Zvonar"),
        ("en;q=0.3, uk;q=0.6, ru;q=0.5", "uk", "Вхід до Zvonar"),
        ("de-DE,fr;q=0.5", "en", "Sign in to Zvonar"),
    ],
)
async def test_accept_language_picks_login_language(
    client: httpx.AsyncClient, accept: str, lang: str, heading: str
) -> None:
    r = await client.get("/login", headers={"Accept-Language": accept})
    assert_page_is_clean(r)
    assert html_lang(r.text) == lang
    assert f"<h1>{heading}</h1>" in r.text


async def test_login_success_sets_session_cookie(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    r = await post_login(client, tenant_a.admin_email, tenant_a.admin_password)
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    cookie = set_cookie_header(r, SESSION_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert f"Max-Age={container.settings.session_max_age}" in cookie
    assert "Secure" not in cookie
    assert "Max-Age=0" in set_cookie_header(r, LOGIN_COOKIE)  # the pre-session nonce is spent

    home = await client.get("/", headers={"Accept-Language": "en"})
    assert home.status_code == 200
    assert_page_is_clean(home)
    assert '<dd id="user-name">Admin</dd>' in home.text
    assert '<dd id="user-role">Administrator</dd>' in home.text
    assert '<dd id="account-name">Account alpha</dd>' in home.text
    assert "for 12 hours" in home.text
    secret = client.cookies[SESSION_COOKIE]
    _user, ws = await container.accounts.resolve_session(secret)
    assert f'<meta name="csrf-token" content="{ws.csrf_token}">' in home.text
    assert f'hx-headers=\'{{"X-CSRF-Token": "{ws.csrf_token}"}}\'' in home.text


async def test_secure_cookie_when_configured(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    container.settings.cookie_secure = True
    container.settings.session_max_age = 1800
    page = await client.get("/login")
    assert "Secure" in set_cookie_header(page, LOGIN_COOKIE)
    # httpx does not send Secure cookies over http://, so post the nonce explicitly.
    nonce = set_cookie_header(page, LOGIN_COOKIE).split(";")[0].split("=", 1)[1]
    r = await client.post(
        "/login",
        data={
            "email": tenant_a.admin_email,
            "password": tenant_a.admin_password,
            "login_token": hidden(page.text, "login_token"),
        },
        headers={"Cookie": f"{LOGIN_COOKIE}={nonce}"},
    )
    assert r.status_code == 303
    cookie = set_cookie_header(r, SESSION_COOKIE)
    assert "Secure" in cookie and "Max-Age=1800" in cookie


@pytest.mark.parametrize("which", ["wrong password", "unknown email"])
async def test_login_failure_is_401_with_one_message(
    client: httpx.AsyncClient, tenant_a: Tenant, which: str
) -> None:
    email = tenant_a.admin_email if which == "wrong password" else "nobody@alpha.example"
    r = await post_login(client, email, "not the password", headers={"Accept-Language": "en"})
    assert r.status_code == 401
    assert_page_is_clean(r)
    assert f'<p class="alert" role="alert">{BAD_CREDENTIALS}</p>' in r.text
    assert f'value="{email}"' in r.text  # the address is kept, the password is not
    assert "not the password" not in r.text
    assert SESSION_COOKIE not in client.cookies
    assert (await client.get("/")).status_code == 303


async def test_login_failure_is_translated(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    r = await post_login(client, tenant_a.admin_email, "nope", headers={"Accept-Language": "uk"})
    assert r.status_code == 401
    assert "Неправильна адреса пошти або пароль." in r.text


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("en", "Too many failed sign-ins. Try again in 15 minutes."),
        ("ru", "Слишком много неудачных попыток входа. Попробуйте снова через 15 минут."),
        ("uk", "Забагато невдалих спроб входу. Спробуйте знову через 15 хвилин."),
    ],
)
async def test_the_sign_in_brake_is_a_page_with_retry_after(
    client: httpx.AsyncClient, tenant_a: Tenant, lang: str, message: str
) -> None:
    """Once an address has failed too often, even its right password gets a translated page
    (not the API's JSON), 429 with Retry-After, and no session."""
    headers = {"Accept-Language": lang}
    for _ in range(5):
        r = await post_login(client, tenant_a.admin_email, "nope", headers=headers)
        assert r.status_code == 401
    r = await post_login(client, tenant_a.admin_email, tenant_a.admin_password, headers=headers)
    assert r.status_code == 429
    assert_page_is_clean(r)
    assert 840 < int(r.headers["retry-after"]) <= 901
    assert f'<p class="alert" role="alert">{message}</p>' in r.text
    assert f'value="{tenant_a.admin_email}"' in r.text
    assert SESSION_COOKIE not in client.cookies


async def test_the_sign_in_brake_counts_per_client_address(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    """One client trying many addresses is braked for all of them, a known one included."""
    limit = container.accounts.throttle.config.max_per_source
    for i in range(limit):
        r = await post_login(client, f"guess{i}@alpha.example", "nope")
        assert r.status_code == 401, i
    r = await post_login(client, tenant_a.admin_email, tenant_a.admin_password)
    assert r.status_code == 429


async def test_login_without_valid_token_is_refused(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    creds = {"email": tenant_a.admin_email, "password": tenant_a.admin_password}
    page = await client.get("/login")
    token = hidden(page.text, "login_token")

    no_token = await client.post("/login", data=creds)
    forged = await client.post("/login", data={**creds, "login_token": token[:-2] + "xx"})
    other = LoginCsrf(container.settings.effective_secret_key).token("x" * 43)
    foreign_nonce = await client.post("/login", data={**creds, "login_token": other})
    expired_signer = LoginCsrf(container.settings.effective_secret_key, max_age=-1)
    assert not expired_signer.check(token, client.cookies[LOGIN_COOKIE])
    client.cookies.delete(LOGIN_COOKIE)
    no_cookie = await client.post("/login", data={**creds, "login_token": token})

    for r in (no_token, forged, foreign_nonce, no_cookie):
        assert r.status_code == 403
        assert "The sign-in form has expired" in r.text
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    assert (await client.get("/")).status_code == 303


def test_every_role_has_a_name_in_every_language() -> None:
    # home.html shows t("role." ~ role): a new Role needs catalog entries.
    for lang in LANGUAGES:
        assert {f"role.{r.value}" for r in Role} <= catalog(lang).keys(), lang


async def test_signed_out_home_redirects_to_login(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 303
    assert r.headers["location"] == "/login"
    client.cookies.set(SESSION_COOKIE, "forged-or-expired")
    r = await client.get("/")
    assert r.status_code == 303
    assert "Max-Age=0" in set_cookie_header(r, SESSION_COOKIE)


async def test_signed_in_login_page_redirects_home(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await sign_in(client, tenant_a)
    r = await client.get("/login")
    assert r.status_code == 303
    assert r.headers["location"] == "/"


async def test_signing_in_again_ends_the_previous_session(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    await sign_in(client, tenant_a)
    first = client.cookies[SESSION_COOKIE]
    # A login form opened before (another tab) is posted while the first session is alive.
    client.cookies.delete(SESSION_COOKIE)
    page = await client.get("/login")
    client.cookies.set(SESSION_COOKIE, first)
    data = {
        "email": tenant_a.admin_email,
        "password": tenant_a.admin_password,
        "login_token": hidden(page.text, "login_token"),
    }
    r = await client.post("/login", data=data)
    assert r.status_code == 303
    assert set_cookie_header(r, SESSION_COOKIE).split(";")[0] != f"{SESSION_COOKIE}={first}"
    with pytest.raises(Unauthenticated):
        await container.accounts.resolve_session(first)


async def test_account_language_without_other_preferences(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await sign_in(client, tenant_a)
    r = await client.get("/")  # no Accept-Language, no user setting: the account's "ru"
    assert html_lang(r.text) == "ru"
    assert "<h1>Здравствуйте, Admin!</h1>" in r.text
    assert '<dd id="user-role">Администратор</dd>' in r.text
    assert "12 часов" in r.text


async def test_language_switch_is_stored_and_wins(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    csrf = await sign_in(client, tenant_a)
    r = await client.post("/settings/language", data={"csrf_token": csrf, "language": "uk"})
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    user, _ws = await container.accounts.resolve_session(client.cookies[SESSION_COOKIE])
    assert user.language == "uk"
    home = await client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert_page_is_clean(home)
    assert html_lang(home.text) == "uk"
    assert "<h1>Вітаємо, Admin!</h1>" in home.text
    assert re.search(r'value="uk" lang="uk"\s+aria-pressed="true"', home.text)
    assert re.search(r'value="en" lang="en"\s+aria-pressed="false"', home.text)


async def test_language_switch_by_htmx_header(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    csrf = await sign_in(client, tenant_a)
    r = await client.post(
        "/settings/language",
        data={"language": "en"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 200
    assert r.headers["hx-redirect"] == "/"
    user, _ws = await container.accounts.resolve_session(client.cookies[SESSION_COOKIE])
    assert user.language == "en"


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_language_switch_without_csrf_is_refused(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container, token: str | None
) -> None:
    await sign_in(client, tenant_a)
    data = {"language": "uk"} if token is None else {"language": "uk", "csrf_token": token}
    r = await client.post("/settings/language", data=data)
    assert r.status_code == 403
    assert_page_is_clean(r)
    assert "Не удалось проверить запрос" in r.text  # the account's language
    user, _ws = await container.accounts.resolve_session(client.cookies[SESSION_COOKIE])
    assert user.language is None


async def test_unknown_language_is_400(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    csrf = await sign_in(client, tenant_a)
    r = await client.post("/settings/language", data={"csrf_token": csrf, "language": "de"})
    assert r.status_code == 400
    assert "Этот язык недоступен." in r.text


async def test_signed_out_posts_go_to_login(client: httpx.AsyncClient) -> None:
    for path in ("/settings/language", "/logout"):
        r = await client.post(path, data={"csrf_token": "x", "language": "uk"})
        assert r.status_code == 303
        assert r.headers["location"] == "/login"


async def test_logout_needs_csrf_and_invalidates_session(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    csrf = await sign_in(client, tenant_a)
    secret = client.cookies[SESSION_COOKIE]

    refused = await client.post("/logout", data={"csrf_token": "nope"})
    assert refused.status_code == 403
    await container.accounts.resolve_session(secret)  # still signed in

    r = await client.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert r.headers["location"] == "/login"
    assert "Max-Age=0" in set_cookie_header(r, SESSION_COOKIE)
    with pytest.raises(Unauthenticated):
        await container.accounts.resolve_session(secret)
    client.cookies.set(SESSION_COOKIE, secret)  # a copy of the old cookie is worthless
    assert (await client.get("/")).status_code == 303
    api = await client.get("/api/v1/me")
    assert api.status_code == 401


async def test_page_csrf_token_is_the_api_csrf_token(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    csrf = await sign_in(client, tenant_a)
    body = {"name": "from the browser", "role": "operator"}
    assert (await client.post("/api/v1/tokens", json=body)).status_code == 403
    r = await client.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201


async def test_static_files_are_served(client: httpx.AsyncClient) -> None:
    js = await client.get("/static/vendor/htmx.min.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "htmx" in js.text[:2000]
    lic = await client.get("/static/vendor/htmx.LICENSE.txt")
    assert lic.status_code == 200 and "Zero-Clause BSD" in lic.text
    css = await client.get("/static/app.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert (await client.get("/static/../routes.py")).status_code == 404
