"""What the command line says when it cannot do what it was asked: one line, no traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from tests.platform.test_cli import cli_env as cli_env  # the same isolated environment
from tests.platform.test_cli import invoke
from tests.sip.peers.harness import free_port as peer_port
from tests.support.server import free_port
from zvonar.cli import app

runner = CliRunner()


def one_error(args: list[str], code: str, exit_code: int = 2) -> str:
    """The command's whole output: one ``error [code]: …`` line; returns that line."""
    result = runner.invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == exit_code, (args, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith(f"error [{code}]: "), (args, result.output)
    return lines[0]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """uvicorn.run replaced: what `serve`/`demo` would have served with, nothing served."""
    calls: list[dict[str, Any]] = []

    def run(application: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    monkeypatch.setattr(uvicorn, "run", run)
    yield calls


# --- simulate ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--minutes", "-1"),
        ("--minutes", "0"),
        ("--minutes", "nan"),
        ("--rate", "0"),
        ("--busy", "2"),
        ("--max-calls", "0"),
        ("--day-seconds", "-5"),
        ("--talk-time", "foo"),
        ("--answer-delay", "4..1"),
        ("--patience", "exp:-3"),
        ("--patience", "inf"),
    ],
)
def test_simulate_refuses_a_bad_option_in_one_line(
    cli_env: dict[str, str], option: str, value: str
) -> None:
    line = one_error(["simulate", option, value], "invalid_option")
    assert option in line


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b'["101", "pw"]', "extension"),
        (b'{"sip": {"101": 5}}', "extension"),
        (None, "no credentials file"),
    ],
)
def test_simulate_refuses_a_credentials_file_it_cannot_use(
    cli_env: dict[str, str], tmp_path: Path, content: bytes | None, why: str
) -> None:
    path = tmp_path / "creds.json"
    if content is not None:
        path.write_bytes(content)
    line = one_error(["simulate", "--credentials", str(path)], "invalid_credentials_file")
    assert str(path) in line and why in line


def test_simulate_without_a_running_server_says_to_start_one(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("demo", "--load-only")
    monkeypatch.setenv("ZVONAR_SIP_PORT", str(peer_port()))  # nothing listens there
    line = one_error(["simulate", "--minutes", "0.1"], "pbx_unreachable", exit_code=1)
    assert "zvonar serve" in line and "make demo" in line


def test_simulate_without_numbers_is_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    invoke("db", "upgrade")
    invoke("account", "create", "bare", "--name", "Bare")
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"101": "pw"}))
    one_error(["simulate", "-a", "bare", "--credentials", str(creds)], "no_numbers")


# --- serve and demo ------------------------------------------------------------------------------
def test_serve_and_demo_refuse_a_port_out_of_range(
    cli_env: dict[str, str], served: list[dict[str, Any]]
) -> None:
    for command in ("serve", "demo"):
        for port in ("99999", "-1"):
            result = runner.invoke(app, [command, "--port", port])
            assert result.exit_code == 2, (command, port, result.output, result.exception)
            assert "Invalid value for '--port'" in result.output
    assert served == []


def test_serve_and_demo_take_port_zero(
    cli_env: dict[str, str], served: list[dict[str, Any]]
) -> None:
    invoke("serve", "--port", "0")
    out = invoke("demo", "--port", "0")
    assert [call["port"] for call in served] == [0, 0]
    assert ":0/" not in out  # the port is the system's choice: uvicorn logs which


def test_demo_help_describes_every_option() -> None:
    result = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "200"})
    for option, words in (("--host", "ZVONAR_HTTP_HOST"), ("--port", "ZVONAR_HTTP_PORT")):
        line = next(ln for ln in result.output.splitlines() if option in ln)
        assert words in line, result.output


@pytest.mark.parametrize("command", [["serve"], ["demo"], ["db", "upgrade"]])
def test_a_data_dir_that_cannot_be_used_is_one_line(
    cli_env: dict[str, str],
    served: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: list[str],
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for data_dir in (a_file / "sub", Path("/proc/zvonar-test")):
        monkeypatch.setenv("ZVONAR_DATA_DIR", str(data_dir))
        line = one_error(command, "data_dir_unusable", exit_code=1)
        assert f"{data_dir} (ZVONAR_DATA_DIR)" in line
    assert served == []


@pytest.mark.parametrize("kind", ["directory", "empty"])
def test_a_secret_key_file_that_cannot_be_used_is_one_line(
    cli_env: dict[str, str],
    served: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    monkeypatch.delenv("ZVONAR_SECRET_KEY")
    key = Path(cli_env["ZVONAR_DATA_DIR"]) / "secret_key"
    if kind == "directory":
        key.mkdir(parents=True)
    else:
        key.parent.mkdir(parents=True)
        key.write_text("\n")
    for command in ("serve", "demo"):
        line = one_error([command], "secret_key_unusable", exit_code=1)
        assert str(key) in line and "ZVONAR_SECRET_KEY" in line
    assert served == []


def _serve_process(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "ZVONAR_DATA_DIR": str(tmp_path / "data"),
        "ZVONAR_HTTP_PORT": str(free_port()),
        "ZVONAR_RTP_PORT_MIN": "31100",
        "ZVONAR_RTP_PORT_MAX": "31199",
        **env,
    }
    environ.pop("ZVONAR_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "zvonar", "serve"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_with_the_sip_port_taken_is_one_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", peer_port()))
        port = taken.getsockname()[1]
        done = _serve_process(tmp_path, ZVONAR_SIP_PORT=str(port))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error [pbx_start_failed]: ") and f"127.0.0.1:{port}" in last, last


def test_serve_with_a_tls_certificate_that_does_not_load_is_one_line(tmp_path: Path) -> None:
    cert = tmp_path / "nonexistent.pem"
    done = _serve_process(tmp_path, ZVONAR_SIP_PORT=str(peer_port()), ZVONAR_SIP_TLS_CERT=str(cert))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error [tls_unusable]: ") and str(cert) in last, last


# --- accounts and config --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "code"),
    [
        ("--time-zone", "Mars/Base", "invalid_time_zone"),
        ("--time-zone", "../../etc/passwd", "invalid_time_zone"),
        ("--country", "ZZ", "invalid_country"),
        ("--country", "RUS", "invalid_country"),
        ("--country", "ß", "invalid_country"),
        ("--language", "fr", "invalid_language"),
    ],
)
def test_account_create_refuses_what_the_account_cannot_use(
    cli_env: dict[str, str], option: str, value: str, code: str
) -> None:
    invoke("db", "upgrade")
    one_error(["account", "create", "x1", "--name", "X", option, value], code)
    missing = runner.invoke(app, ["config", "export", "-a", "x1"])
    assert missing.exit_code == 2 and "[not_found]" in missing.output


def test_account_create_takes_a_lower_case_country(cli_env: dict[str, str]) -> None:
    invoke("db", "upgrade")
    invoke("account", "create", "kyiv", "--name", "Kyiv", "--country", "ua", "--language", "uk")
    assert "country: UA" in invoke("config", "export", "-a", "kyiv")


def test_config_apply_of_a_file_that_is_not_utf8_is_one_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    invoke("db", "upgrade")
    invoke("account", "create", "acme", "--name", "Acme")
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\naccount: {name: Caf\u00e9}\n".encode("latin-1"))
    line = one_error(["config", "apply", str(path), "-a", "acme"], "invalid_config")
    assert line == f"error [invalid_config]: {path} is not UTF-8 text"
