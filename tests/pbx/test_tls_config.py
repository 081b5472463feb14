"""The PBX's TLS settings: from the environment to the contexts, and files that do not load."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.support.certs import make_pki
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import tls_config
from zvonar.settings import Settings
from zvonar.sip.io.tls import TlsError


def test_no_certificate_no_tls() -> None:
    assert tls_config(PbxConfig()) is None


def test_settings_reach_the_contexts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = make_pki(tmp_path)
    leaf = pki.issue("pbx", dns=("pbx.zvonar.test",))
    monkeypatch.setenv("ZVONAR_SIP_TLS_CERT", str(leaf.cert))
    monkeypatch.setenv("ZVONAR_SIP_TLS_KEY", str(leaf.key))
    monkeypatch.setenv("ZVONAR_SIP_TLS_PORT", "5071")
    monkeypatch.setenv("ZVONAR_SIP_TLS_CA", str(pki.ca))
    config = Settings().pbx_config()
    assert (config.sip_tls_cert, config.sip_tls_port) == (leaf.cert, 5071)
    tls = tls_config(config)
    assert tls is not None and tls.server is not None
    assert tls.client.verify_mode == ssl.CERT_REQUIRED and tls.client.check_hostname
    monkeypatch.setenv("ZVONAR_SIP_TLS_VERIFY", "false")
    unchecked = tls_config(Settings().pbx_config())
    assert unchecked is not None and unchecked.client.verify_mode == ssl.CERT_NONE


def test_a_certificate_that_does_not_load_stops_start_up_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(TlsError, match=r"missing\.pem"):
        tls_config(PbxConfig(sip_tls_cert=tmp_path / "missing.pem"))
    pki = make_pki(tmp_path)
    leaf = pki.issue("pbx", dns=("pbx.zvonar.test",))
    with pytest.raises(TlsError, match=r"CA file"):
        tls_config(PbxConfig(sip_tls_cert=leaf.cert, sip_tls_key=leaf.key, sip_tls_ca=leaf.key))
    with pytest.raises(ValueError, match="sip_tls_port"):
        PbxConfig(sip_tls_port=70000)
