"""exporter.webconfig: the exporter-toolkit web-config file, checked at start."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import bcrypt
import pytest

from rooftop.exporter.settings import ConfigError
from rooftop.exporter.webconfig import BasicAuth, load_web_config
from tests.conftest import make_self_signed


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tls_config: {}\n", r"unknown key\(s\) \['tls_config'\]"),
        ("tls_server_config:\n  cert: a\n", r"unknown tls_server_config key\(s\) \['cert'\]"),
        ("tls_server_config:\n  key_file: k\n", r"tls_server_config.cert_file is required"),
        ("tls_server_config:\n  cert_file: c\n", r"tls_server_config.key_file is required"),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Always\n",
            r"client_auth_type 'Always' is not one of",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS14\n",
            r"min_version 'TLS14' is not one of",
        ),
        ("tls_server_config: yes\n", "tls_server_config must be a mapping"),
        (
            "basic_auth_users:\n  prometheus: plaintext\n",
            "basic_auth_users.prometheus is not a bcrypt",
        ),
        ("basic_auth_users: [a, b]\n", "basic_auth_users must map user to bcrypt hash"),
        ("- a\n- b\n", "expected a mapping at the top level"),
        ("basic_auth_users: {a: [\n", "not valid YAML"),
    ],
)
def test_bad_web_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_web_config(path)
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_web_config(tmp_path / "absent.yml")


def test_empty_file_means_no_tls_and_no_auth(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, ""))
    assert config.tls is None and config.basic_auth is None
    assert config.ssl_context() is None


def test_tls_paths_are_relative_to_the_file_and_checked_when_loaded(tmp_path: Path) -> None:
    config = load_web_config(
        write(tmp_path, "tls_server_config:\n  cert_file: absent.crt\n  key_file: absent.key\n")
    )
    assert config.tls is not None
    assert config.tls.cert_file == tmp_path / "absent.crt"
    assert config.tls.min_version == "TLS12"
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        config.ssl_context()


def test_tls_context_from_real_files(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    config = load_web_config(
        write(
            tmp_path,
            f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
            f"  min_version: TLS13\n  client_ca_file: {cert.name}\n"
            "  client_auth_type: RequireAndVerifyClientCert\n",
        )
    )
    context = config.ssl_context()
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_key_that_does_not_match_is_a_config_error(tmp_path: Path) -> None:
    first = tmp_path / "one"
    second = tmp_path / "two"
    first.mkdir()
    second.mkdir()
    cert, _ = make_self_signed(first)
    _, other_key = make_self_signed(second)
    config = load_web_config(
        write(tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {other_key}\n")
    )
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        config.ssl_context()


@pytest.fixture(scope="module")
def auth() -> BasicAuth:
    hashed = bcrypt.hashpw(b"s3cret:with colon", bcrypt.gensalt(rounds=4))
    # htpasswd writes $2y$; the same hash under that prefix must verify too.
    htpasswd_style = b"$2y$" + bcrypt.hashpw(b"other", bcrypt.gensalt(rounds=4))[4:]
    return BasicAuth({"prometheus": hashed, "grafana": htpasswd_style})


@pytest.mark.parametrize(
    ("authorization", "ok"),
    [
        (header("prometheus", "s3cret:with colon"), True),  # a colon in the password is fine
        (header("grafana", "other"), True),
        (header("prometheus", "s3cret"), False),
        (header("nobody", "s3cret:with colon"), False),
        ("Basic " + base64.b64encode(b"no-colon").decode(), False),
        ("Basic !!!", False),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), False),
        ("Digest username=prometheus", False),
        ("", False),
        (None, False),
    ],
)
def test_basic_auth_check(auth: BasicAuth, authorization: str | None, ok: bool) -> None:
    assert auth.check(authorization) is ok
    # The verdict is the same the second time (cached or not).
    assert auth.check(authorization) is ok


def test_loaded_users_verify(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prom: '{hashed}'\n"))
    assert config.basic_auth is not None
    assert config.basic_auth.check(header("prom", "pw"))
    assert not config.basic_auth.check(header("prom", "PW"))
