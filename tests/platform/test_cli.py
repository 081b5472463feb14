"""The command line end to end: migrate, accounts, tokens, config as code, the demo."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from tests.sip.peers.harness import free_port as peer_port
from tests.support.server import free_port
from zvonar.cli import app

runner = CliRunner()


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "ZVONAR_DATA_DIR": str(tmp_path / "data"),
        "ZVONAR_DATABASE_URL": database_url,
        "ZVONAR_SECRET_KEY": "cli-test-secret",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from tests.platform.test_migrations import _sync, _wipe

    _sync(database_url, _wipe)
    return env


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["db"],
        ["user"],
        ["token"],
        ["config"],
        ["account"],
        ["serve"],
        ["demo"],
        ["config", "apply"],
        ["config", "export"],
        ["user", "create"],
        ["token", "create"],
        ["db", "upgrade"],
        ["secrets"],
        ["secrets", "reseal"],
    ],
)
def test_help_everywhere(cmd: list[str]) -> None:
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_accounts_tokens_and_config_round_trip(cli_env: dict[str, str], tmp_path: Path) -> None:
    invoke("db", "upgrade")
    invoke(
        "account",
        "create",
        "acme",
        "--name",
        "Acme",
        "--time-zone",
        "Europe/Kyiv",
        "--country",
        "UA",
        "--language",
        "uk",
    )
    invoke(
        "user",
        "create",
        "-a",
        "acme",
        "--email",
        "boss@acme.example",
        "--name",
        "Boss",
        "--role",
        "admin",
        "--password",
        "a long password",
    )
    token = invoke("token", "create", "-a", "acme", "--name", "crm", "--role", "admin")
    assert re.search(r"^zvt_\S{20,}$", token, re.M)

    doc = yaml.safe_load(invoke("config", "export", "-a", "acme"))
    assert doc["version"] == 1 and doc["account"]["time_zone"] == "Europe/Kyiv"
    assert (doc["account"]["park_seconds"], doc["account"]["park_ring_back_seconds"]) == (120, 30)
    doc["account"]["park_seconds"] = 45  # FreePBX's default wait in a park slot
    doc["directory"]["employees"] = {
        "201": {"name": "Олена", "mobile_numbers": ["050 123 4567"], "sip_password": "s3cret-pw"}
    }
    doc["directory"]["groups"] = {"Продажі": {"strategy": "round_robin", "members": ["201"]}}
    doc["directory"]["numbers"] = {"044 123 4567": {"label": "Kyiv office"}}
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    dry = runner.invoke(app, ["config", "apply", str(path), "-a", "acme", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "201" in dry.output and "+380441234567" in dry.output
    assert yaml.safe_load(invoke("config", "export", "-a", "acme"))["directory"]["employees"] == {}

    applied = runner.invoke(app, ["config", "apply", str(path), "-a", "acme"])
    assert applied.exit_code == 0 and "+380441234567" in applied.output
    again = runner.invoke(app, ["config", "apply", str(path), "-a", "acme"])
    assert again.exit_code == 0 and "no changes" in again.output

    exported = yaml.safe_load(invoke("config", "export", "-a", "acme"))
    assert exported["account"]["park_seconds"] == 45
    assert exported["directory"]["employees"]["201"]["mobile_numbers"] == ["+380501234567"]
    assert "sip_password" not in exported["directory"]["employees"]["201"]
    # The export applies cleanly onto itself: apply(export()) == no changes.
    path.write_text(yaml.safe_dump(exported, allow_unicode=True), encoding="utf-8")
    assert "no changes" in runner.invoke(app, ["config", "apply", str(path), "-a", "acme"]).output


def test_a_changed_secret_key_and_reseal(
    cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trunk password sealed with one secret_key; the key changes; `config apply` of the same
    # password would have to re-enter it — `secrets reseal` with the old key file instead.
    invoke("db", "upgrade")
    invoke("account", "create", "acme", "--name", "Acme")
    doc = {
        "version": 1,
        "directory": {
            "trunks": {
                "carrier": {"host": "sip.carrier.example", "username": "acc", "password": "pw-1"}
            }
        },
    }
    path = tmp_path / "trunk.yaml"
    path.write_text(yaml.safe_dump(doc))
    invoke("config", "apply", str(path), "-a", "acme")
    assert "no changes" in invoke("config", "apply", str(path), "-a", "acme")

    old_key = tmp_path / "old_secret_key"
    old_key.write_text(cli_env["ZVONAR_SECRET_KEY"] + "\n")
    monkeypatch.setenv("ZVONAR_SECRET_KEY", "the rotated secret key")
    first = invoke("secrets", "reseal", "--old-key-file", str(old_key))
    assert "1 trunk password(s) sealed again" in first
    assert "no changes" in invoke("config", "apply", str(path), "-a", "acme")  # opens again
    assert "0 trunk password(s)" in invoke("secrets", "reseal", "--old-key-file", str(old_key))

    wrong = tmp_path / "wrong_key"
    wrong.write_text("not the old key")
    monkeypatch.setenv("ZVONAR_SECRET_KEY", "yet another key")
    result = runner.invoke(app, ["secrets", "reseal", "--old-key-file", str(wrong)])
    assert result.exit_code == 1 and "open with neither key" in result.output


def _scheme_doc(step: str) -> str:
    return f"version: 1\nrouting: {{schemes: {{S: {{branches: {{working: [{step}]}}}}}}}}\n"


def test_config_apply_rejects_bad_documents(cli_env: dict[str, str], tmp_path: Path) -> None:
    invoke("db", "upgrade")
    invoke("account", "create", "acme", "--name", "Acme")
    bad = tmp_path / "bad.yaml"
    for text, code in [
        ("- just\n- a list\n", "invalid_config"),
        ("version: 1\nshop: {}\n", "invalid_config"),
        ("version: 1\naccount: {time_zone: Mars/Olympus}\n", "invalid_config"),
        ('version: 1\naccount: {name: "Acme\\0"}\n', "invalid_config"),
        (f"version: 1\naccount: {{name: {'A' * 201}}}\n", "invalid_config"),
        ('version: 1\naccount: {missed_call_emails: ["a\\x07@b.ru"]}\n', "invalid_config"),
        ("version: 1\naccount: {park_seconds: 5}\n", "invalid_config"),
        ("version: 1\naccount: {park_ring_back_seconds: true}\n", "invalid_config"),
        ("version: 1\ndirectory: {numbers: {'12': {}}}\n", "invalid_phone_number"),
        ("version: 1\n: : :\n", "invalid_config"),
        ("version: 1\naccount: {http_route_private: 1}\n", "invalid_config"),
        # As `account create` refuses them: no holidays, no number plan behind these.
        ("version: 1\naccount: {country: ZZ}\n", "invalid_config"),
        ("version: 1\naccount: {country: ru}\n", "invalid_config"),
        ("version: 1\naccount: {country: 7}\n", "invalid_config"),
        # Half a UTF-16 pair: YAML's escape allows it, nothing could store it.
        ('version: 1\naccount: {name: "Acme \\ud800"}\n', "invalid_config"),
        # Shapes that once escaped as tracebacks (exit 1) from the scheme parser.
        (_scheme_doc("{type: [ring]}"), "invalid_scheme"),
        (_scheme_doc('{type: http_route, url: "http://[::1/", fallback: []}'), "invalid_scheme"),
    ]:
        bad.write_text(text)
        result = runner.invoke(app, ["config", "apply", str(bad), "-a", "acme"])
        assert result.exit_code == 2, (text, result.output)
        assert f"[{code}]" in result.output, (text, result.output)
    missing = runner.invoke(app, ["config", "export", "-a", "nope"])
    assert missing.exit_code == 2 and "[not_found]" in missing.output


def test_demo_is_idempotent_and_prints_a_working_login(cli_env: dict[str, str]) -> None:
    first = invoke("demo", "--load-only")
    second = invoke("demo", "--load-only")
    login = re.search(r"Sign in:\s+(\S+) / (\S+)", first)
    assert login and login.group(0) in second
    assert re.search(r"^\s+101\s+.+password \S+$", first, re.M)
    assert "http://127.0.0.1:8080/" in first


def test_demo_mints_a_new_token_when_the_printed_one_was_revoked(
    cli_env: dict[str, str],
) -> None:
    from sqlalchemy import Connection, text

    from tests.platform.test_migrations import _sync
    from zvonar.accounts.passwords import sha256_hex

    def token_of(out: str) -> str:
        found = re.search(r"token: (zvt_\S+)\)", out)
        assert found, out
        return found.group(1)

    def live(secret: str) -> bool:
        def q(conn: Connection) -> bool:
            row = conn.execute(
                text("SELECT revoked_at FROM api_tokens WHERE secret_hash = :h"),
                {"h": sha256_hex(secret)},
            ).one_or_none()
            return row is not None and row[0] is None

        return bool(_sync(cli_env["ZVONAR_DATABASE_URL"], q))

    first = token_of(invoke("demo", "--load-only"))
    assert live(first) and token_of(invoke("demo", "--load-only")) == first
    _sync(
        cli_env["ZVONAR_DATABASE_URL"],
        lambda conn: conn.execute(text("UPDATE api_tokens SET revoked_at = created_at")),
    )
    second = token_of(invoke("demo", "--load-only"))
    assert second != first and live(second)
    assert token_of(invoke("demo", "--load-only")) == second


def free_udp_port() -> int:
    return peer_port()


def _sip_options(port: int) -> bytes:
    """An OPTIONS ping to the served PBX (RFC 3261 §11): any UA must answer it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        me = s.getsockname()[1]
        msg = (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-demo-1;rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1:{me}>;tag=demo\r\n"
            f"To: <sip:127.0.0.1:{port}>\r\n"
            "Call-ID: demo-options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        s.settimeout(5)
        s.sendto(msg.encode(), ("127.0.0.1", port))
        return s.recv(65535)


@pytest.mark.slow
def test_demo_serves_ui_and_api(tmp_path: Path) -> None:
    """`zvonar demo` as a process: it serves, and the printed login and token work."""
    port = free_port()
    sip_port = free_udp_port()
    env = {
        **os.environ,
        "ZVONAR_DATA_DIR": str(tmp_path / "demo"),
        "ZVONAR_HTTP_PORT": str(port),
        "ZVONAR_SIP_PORT": str(sip_port),
        "ZVONAR_RTP_PORT_MIN": "31000",
        "ZVONAR_RTP_PORT_MAX": "31099",
    }
    env.pop("ZVONAR_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "zvonar", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = ""
        deadline = time.monotonic() + 60
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("demo did not start in 60 s")
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    login = re.search(r"Sign in:\s+(\S+) / (\S+)", out)
    token = re.search(r"token: (zvt_\S+)\)", out)
    assert login and token, out
    # Serve again (already loaded) and use the credentials.
    proc = subprocess.Popen(
        [sys.executable, "-m", "zvonar", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        pytest.fail("serve did not start")
                    time.sleep(0.2)
            page = client.get("/login")
            login_token = re.search(r'name="login_token" value="([^"]+)"', page.text)
            assert login_token, page.text
            r = client.post(
                "/login",
                data={
                    "email": login.group(1),
                    "password": login.group(2),
                    "login_token": login_token.group(1),
                },
            )
            assert r.status_code == 303, r.text
            home = client.get("/")
            assert home.status_code == 200 and "Demo Admin" in home.text
            assert _sip_options(sip_port).startswith(b"SIP/2.0 200"), "SIP is not answering"
            api = client.get(
                "/api/v1/employees", headers={"Authorization": f"Bearer {token.group(1)}"}
            )
            assert api.status_code == 200 and api.json()["total"] == 3
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_bad_settings_and_an_unreachable_database_are_one_line_each(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    invoke("db", "upgrade")
    bad = runner.invoke(app, ["account", "create", "acme", "--name", "  "])
    assert bad.exit_code == 2 and "error [invalid_input]" in bad.output, bad.output
    monkeypatch.setenv("ZVONAR_HTTP_PORT", "eighty")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2, result.output
    assert "error [invalid_settings]: http_port (ZVONAR_HTTP_PORT)" in result.output
    monkeypatch.delenv("ZVONAR_HTTP_PORT")
    monkeypatch.setenv("ZVONAR_DATABASE_URL", "mysql://db/zvonar")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2 and "database_url (ZVONAR_DATABASE_URL)" in result.output
    for url, reason in [
        (f"postgresql+asyncpg://zv:secret@127.0.0.1:{free_port()}/zv", "Connect call failed"),
        (f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/zv.db", "unable to open database file"),
    ]:
        monkeypatch.setenv("ZVONAR_DATABASE_URL", url)
        for args in (["db", "upgrade"], ["account", "create", "x", "--name", "X"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 1, (args, result.output, result.exception)
            assert "error [database_unavailable]" in result.output and reason in result.output
            assert "secret" not in result.output  # the password is never printed
    # The usual spelling of a PostgreSQL URL means our driver.
    monkeypatch.setenv("ZVONAR_DATABASE_URL", "postgres://u@h/db")
    from zvonar.settings import Settings

    assert Settings().effective_database_url == "postgresql+asyncpg://u@h/db"


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"ZVONAR_SIP_PORT": "70000"}, "sip_port (ZVONAR_SIP_PORT)"),
        ({"ZVONAR_RTP_PORT_MIN": "80"}, "rtp_port_min (ZVONAR_RTP_PORT_MIN)"),
        (
            {"ZVONAR_RTP_PORT_MIN": "30000", "ZVONAR_RTP_PORT_MAX": "20000"},
            "rtp_port_min must be below rtp_port_max",
        ),
        ({"ZVONAR_DEFAULT_REGION": "RUS"}, "default_region (ZVONAR_DEFAULT_REGION)"),
        ({"ZVONAR_SIP_DIGEST_ALGORITHMS": "MD4"}, "MD4: not one of"),
        ({"ZVONAR_SIP_DIGEST_ALGORITHMS": " , "}, "name at least one"),
        ({"ZVONAR_SIP_DIGEST_ALGORITHMS": "MD5-sess"}, "no -sess algorithm"),
    ],
)
def test_a_setting_out_of_range_stops_every_command_before_it_starts(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str], line: str
) -> None:
    """Checked with the settings, not when `serve` builds the PBX (a traceback then)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for args in (["db", "upgrade"], ["serve"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert "error [invalid_settings]" in result.output and line in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "No such file or directory"),
        ("[zvonar]\nsip_prot = 5070\n", "unknown setting(s) in [zvonar]: sip_prot"),
        ("[zvonar\n", "not TOML"),
        ("zvonar = 1\n", "zvonar must be a table"),
        (b"[zvonar]\nlog_level = '\xff'\n", "not TOML"),
    ],
)
def test_a_settings_file_that_cannot_be_used_is_one_line(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    text: str | bytes | None,
    reason: str,
) -> None:
    monkeypatch.setenv("ZVONAR_CONFIG", "")  # --config sets it for the process: undone after
    path = tmp_path / "zvonar.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    result = runner.invoke(app, ["--config", str(path), "db", "upgrade"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert f"error [invalid_settings]: {path}: {reason}" in result.output


def test_a_settings_file_sets_what_it_names(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from zvonar.settings import Settings

    path = tmp_path / "zvonar.toml"
    path.write_text("[zvonar]\nsip_port = 5090\n[other]\nanything = 1\n")  # other tables: theirs
    monkeypatch.setenv("ZVONAR_CONFIG", str(path))
    assert Settings().sip_port == 5090


def test_a_misspelt_setting_variable_is_named_before_the_command_runs(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pydantic ignores an unknown ZVONAR_* variable: the default it meant to change applies
    without a word, so every command says which one it ignored (and still runs)."""
    monkeypatch.setenv("ZVONAR_SIP_PRT", "5070")
    monkeypatch.setenv("ZVONAR_SIP_PORT", "5070")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "warning: ZVONAR_SIP_PRT is not a setting (ignored)" in result.output
    assert "ZVONAR_SIP_PORT " not in result.output
