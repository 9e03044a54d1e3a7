"""A small Kubernetes API client for discovery: where the API server is, and JSON over aiohttp.

Why not lightkube (which ``kube/`` uses): the runtime must not import ``kube/``, it already
depends on aiohttp, and the GPU image that runs workers for the benchmarks lacks lightkube.
Discovery needs five calls (get, server-side apply, delete, list, watch) on two resources,
so a client of its own stays small (docs/discovery.md, "kubernetes://").

Where the API server is, in the order controller-runtime uses: the files in ``KUBECONFIG``,
then the service-account mount of a pod (in-cluster), then ``~/.kube/config``.  A kubeconfig
user may authenticate with a token, a token file or a client certificate; exec plugins and
auth providers are refused with a clear error (run in the cluster, or use a token).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from drivetrain.runtime.discovery import SERVICE_ACCOUNT_DIR, in_cluster
from drivetrain.runtime.discovery.base import DiscoveryError, StoreUnavailableError

TOKEN_REREAD_S = 60.0  # projected service-account tokens rotate; client-go re-reads them too
CALL_TIMEOUT_S = 10.0  # one non-watch request


class KubeConfigError(DiscoveryError):
    """No usable API server configuration (names the file and field)."""


class KubeApiError(DiscoveryError):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ClusterConfig:
    """How to reach and authenticate to one API server."""

    server: str  # https://host:port (http:// only for test servers)
    namespace: str  # the default namespace of this configuration
    source: str  # where it came from, for messages
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None  # PEM
    key_data: bytes | None = None
    insecure: bool = False

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, sa_dir: str = SERVICE_ACCOUNT_DIR
    ) -> ClusterConfig:
        env = os.environ if environ is None else environ
        paths = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
        if paths:
            return cls.from_kubeconfig(paths)
        if in_cluster(sa_dir, env):
            return cls.in_cluster(sa_dir, env)
        default = os.path.expanduser("~/.kube/config")
        if os.path.isfile(default):
            return cls.from_kubeconfig([default])
        raise KubeConfigError(
            "kubernetes:// discovery: no API server configured (not in a pod with a "
            f"service account at {sa_dir}, no KUBECONFIG, no ~/.kube/config)"
        )

    @classmethod
    def in_cluster(
        cls, sa_dir: str = SERVICE_ACCOUNT_DIR, environ: Mapping[str, str] | None = None
    ) -> ClusterConfig:
        env = os.environ if environ is None else environ
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        port = env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubeConfigError("in-cluster config: KUBERNETES_SERVICE_HOST is not set")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 service address
        namespace_file = os.path.join(sa_dir, "namespace")
        try:
            namespace = Path(namespace_file).read_text().strip() or "default"
        except OSError:
            namespace = "default"
        ca = os.path.join(sa_dir, "ca.crt")
        return cls(
            server=f"https://{host}:{port}",
            namespace=namespace,
            source=f"service account {sa_dir}",
            token_file=os.path.join(sa_dir, "token"),
            ca_file=ca if os.path.isfile(ca) else None,
        )

    @classmethod
    def from_kubeconfig(cls, paths: list[str]) -> ClusterConfig:
        """The current context of the first existing file in ``paths`` (KUBECONFIG order)."""
        import yaml  # only here: in-cluster workers never parse YAML

        existing = [p for p in paths if os.path.isfile(p)]
        if not existing:
            raise KubeConfigError(f"KUBECONFIG: none of {', '.join(paths)} exists")
        path = existing[0]
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeConfigError(f"{path}: not a readable kubeconfig: {exc}") from None
        base = os.path.dirname(os.path.abspath(path))

        def named(section: str, name: str) -> dict[str, Any]:
            for i, entry in enumerate(doc.get(section) or []):
                if isinstance(entry, dict) and entry.get("name") == name:
                    body = entry.get(section[:-1])
                    if not isinstance(body, dict):
                        raise KubeConfigError(
                            f"{path}: {section}[{i}].{section[:-1]}: expected a map"
                        )
                    return body
            raise KubeConfigError(f"{path}: {section}: no entry named {name!r}")

        current = doc.get("current-context")
        if not current:
            raise KubeConfigError(f"{path}: current-context: not set")
        context = named("contexts", current)
        cluster = named("clusters", str(context.get("cluster", "")))
        user = named("users", str(context.get("user", ""))) if context.get("user") else {}
        server = cluster.get("server")
        if not isinstance(server, str) or not server.startswith(("https://", "http://")):
            raise KubeConfigError(
                f"{path}: clusters[{context.get('cluster')}].server: expected an http(s) URL"
            )
        for unsupported in ("exec", "auth-provider"):
            if unsupported in user:
                raise KubeConfigError(
                    f"{path}: users[{context.get('user')}].{unsupported}: drivetrain's discovery "
                    "client does not run credential plugins; use a token or a client certificate, "
                    "or run inside the cluster"
                )

        def file_field(body: dict[str, Any], key: str) -> str | None:
            value = body.get(key)
            return os.path.join(base, value) if isinstance(value, str) and value else None

        def data_field(body: dict[str, Any], key: str, where: str) -> bytes | None:
            value = body.get(key)
            if not value:
                return None
            try:
                return base64.b64decode(value, validate=True)
            except (ValueError, TypeError):
                raise KubeConfigError(f"{path}: {where}.{key}: expected base64") from None

        cluster_where = f"clusters[{context.get('cluster')}]"
        user_where = f"users[{context.get('user')}]"
        ca_data = data_field(cluster, "certificate-authority-data", cluster_where)
        return cls(
            server=server.rstrip("/"),
            namespace=str(context.get("namespace") or "default"),
            source=f"{path} (context {current})",
            token=user.get("token") or None,
            token_file=file_field(user, "tokenFile"),
            ca_file=file_field(cluster, "certificate-authority"),
            ca_data=ca_data.decode() if ca_data else None,
            cert_file=file_field(user, "client-certificate"),
            key_file=file_field(user, "client-key"),
            cert_data=data_field(user, "client-certificate-data", user_where),
            key_data=data_field(user, "client-key-data", user_where),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https://"):
            return True  # aiohttp's default; unused for http://
        if self.insecure:
            return False
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        elif self.cert_data and self.key_data:
            # ssl loads key material only from files: a private temporary directory, removed now.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
                for target, data in ((cert, self.cert_data), (key, self.key_data)):
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(data)
                context.load_cert_chain(cert, key)
        return context


class KubeApi:
    """JSON requests and watch streams against one API server (one aiohttp session)."""

    def __init__(self, config: ClusterConfig, user_agent: str = "drivetrain-discovery") -> None:
        self.config = config
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = config.token
        self._token_read_at = -TOKEN_REREAD_S
        try:  # now, so that a bad certificate is a configuration error, not a retried failure
            self._ssl = config.ssl_context()
        except (OSError, ValueError) as exc:
            raise KubeConfigError(f"{config.source}: TLS certificates: {exc}") from None

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        token = self._current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _current_token(self) -> str | None:
        path = self.config.token_file
        if path and time.monotonic() - self._token_read_at >= TOKEN_REREAD_S:
            try:
                self._token = Path(path).read_text().strip()
            except OSError as exc:
                if self._token is None:
                    raise KubeConfigError(f"{path}: cannot read the token: {exc}") from None
            self._token_read_at = time.monotonic()
        return self._token

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One call; ``KubeApiError`` for an error status, ``StoreUnavailableError`` when the
        API server cannot be reached or answers 5xx/429 (the caller may retry)."""
        headers = self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        what = f"{method} {path}"  # paths are built from DNS names: nothing to escape
        try:
            async with self._session_now().request(
                method,
                self.config.server + path,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
            ) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise _error(response.status, payload, what)
                return json.loads(payload) if payload else {}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StoreUnavailableError(f"{what}: {_describe(exc)}") from None

    async def watch(
        self, path: str, params: Mapping[str, str], read_timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, until the server ends it.

        Lines are split here rather than with aiohttp's ``readline``, which refuses lines longer
        than its buffer (a large Pod is one line).
        """
        what = f"watch {path}"
        try:
            async with self._session_now().get(
                self.config.server + path,
                params={**params, "watch": "1"},
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=CALL_TIMEOUT_S, sock_read=read_timeout
                ),
            ) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.read(), what)
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StoreUnavailableError(f"{what}: {_describe(exc)}") from None
        except json.JSONDecodeError as exc:
            raise StoreUnavailableError(f"{what}: a malformed event: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None


def _error(status: int, payload: bytes, what: str) -> DiscoveryError:
    try:
        body = json.loads(payload)
    except ValueError:
        body = {}
    reason = str(body.get("reason") or "")
    message = str(body.get("message") or payload[:200].decode(errors="replace"))
    if status >= 500 or status == 429:
        return StoreUnavailableError(f"{what}: {status} {reason}: {message}")
    return KubeApiError(status, reason, f"{what}: {message}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
