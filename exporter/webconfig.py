"""The Prometheus exporter web-config file: opt-in TLS and basic auth.

Format (exporter-toolkit ``web-config.yml``)::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_ca_file: ca.crt          # optional: require client certificates
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...          # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

Passwords are checked with bcrypt; a verified (user, password) pair is cached by its SHA-256
so that a scrape every few seconds does not pay bcrypt's cost each time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rooftop.exporter.settings import ConfigError

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_KNOWN_TOP = {"tls_server_config", "basic_auth_users", "http_server_config"}
_KNOWN_TLS = {
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
}


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    client_auth_type: str
    min_version: str


@dataclass
class BasicAuth:
    users: dict[str, bytes]
    _verified: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header carries a valid user and password."""
        credentials = self._credentials(authorization)
        if credentials is None:
            return False
        password, hashed, token = credentials
        if self._verified_before(token):
            return True
        import bcrypt  # only where basic auth is configured (the import costs 0.4 MB of RSS)

        try:
            ok = bcrypt.checkpw(password.encode("utf-8"), hashed)
        except ValueError:
            return False
        if ok:
            with self._lock:
                self._verified.add(token)
        return ok

    def checked_already(self, authorization: str | None) -> bool:
        """Whether :meth:`check` answers this header without bcrypt: a malformed header or an
        unknown user (refused at once), or a pair verified before. False means a bcrypt check."""
        credentials = self._credentials(authorization)
        return credentials is None or self._verified_before(credentials[2])

    def _credentials(self, authorization: str | None) -> tuple[str, bytes, bytes] | None:
        """(password, its user's hash, the pair's cache token), or None when the header names
        no known user."""
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        hashed = self.users.get(user)
        if not sep or hashed is None:
            return None
        token = hashlib.sha256(b"\0".join((user.encode(), password.encode(), hashed))).digest()
        return password, hashed, token

    def _verified_before(self, token: bytes) -> bool:
        with self._lock:
            return any(hmac.compare_digest(token, known) for known in self._verified)


@dataclass(frozen=True)
class WebConfig:
    tls: TlsConfig | None
    basic_auth: BasicAuth | None

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _TLS_VERSIONS[self.tls.min_version]
        try:
            context.load_cert_chain(str(self.tls.cert_file), str(self.tls.key_file))
            if self.tls.client_ca_file is not None:
                context.load_verify_locations(cafile=str(self.tls.client_ca_file))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"web config: cannot load TLS files ({error})") from None
        context.verify_mode = _CLIENT_AUTH[self.tls.client_auth_type]
        return context


def load_web_config(path: Path) -> WebConfig:
    """Parse and check a web-config file; raise ConfigError naming the bad key."""
    import yaml  # only with a web config (serving without one never loads it)

    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError(f"web config {path}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"web config {path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"web config {path}: expected a mapping at the top level")
    unknown = sorted(set(data) - _KNOWN_TOP)
    if unknown:
        raise ConfigError(f"web config {path}: unknown key(s) {unknown}")
    base = path.parent
    tls = _tls(data.get("tls_server_config"), base, path)
    users = data.get("basic_auth_users")
    auth = None
    if users:
        if not isinstance(users, dict):
            raise ConfigError(f"web config {path}: basic_auth_users must map user to bcrypt hash")
        parsed: dict[str, bytes] = {}
        for user, hashed in users.items():
            text = str(hashed)
            if not text.startswith(("$2a$", "$2b$", "$2y$")):
                raise ConfigError(
                    f"web config {path}: basic_auth_users.{user} is not a bcrypt hash "
                    "(make one with: htpasswd -nBC 10 '' | tr -d ':')"
                )
            parsed[str(user)] = text.encode()
        auth = BasicAuth(parsed)
    return WebConfig(tls=tls, basic_auth=auth)


def _tls(section: Any, base: Path, path: Path) -> TlsConfig | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"web config {path}: tls_server_config must be a mapping")
    unknown = sorted(set(section) - _KNOWN_TLS)
    if unknown:
        raise ConfigError(f"web config {path}: unknown tls_server_config key(s) {unknown}")
    for key in ("cert_file", "key_file"):
        if not section.get(key):
            raise ConfigError(f"web config {path}: tls_server_config.{key} is required")
    auth_type = str(section.get("client_auth_type", "NoClientCert"))
    if auth_type not in _CLIENT_AUTH:
        raise ConfigError(
            f"web config {path}: tls_server_config.client_auth_type {auth_type!r} is not one "
            f"of {sorted(_CLIENT_AUTH)}"
        )
    min_version = str(section.get("min_version", "TLS12"))
    if min_version not in _TLS_VERSIONS:
        raise ConfigError(
            f"web config {path}: tls_server_config.min_version {min_version!r} is not one of "
            f"{sorted(_TLS_VERSIONS)}"
        )
    ca = section.get("client_ca_file")
    return TlsConfig(
        cert_file=base / str(section["cert_file"]),
        key_file=base / str(section["key_file"]),
        client_ca_file=None if not ca else base / str(ca),
        client_auth_type=auth_type,
        min_version=min_version,
    )
