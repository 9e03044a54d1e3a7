"""Runtime commands: ``drivetrain frontend`` and ``drivetrain worker``.

Heavy imports (aiohttp, tokenizers) stay inside the functions so other commands start fast.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine
from typing import NoReturn

import typer

from drivetrain.cli.output import EXIT_INVALID, err_console

ENV_DISCOVERY = "DRIVETRAIN_DISCOVERY"
ENV_NAMESPACE = "DRIVETRAIN_NAMESPACE"
ENV_COMPONENT = "DRIVETRAIN_COMPONENT"


DISCOVERY_HELP = (
    "etcd://host:port, file:///dir, memory:// or kubernetes://[NAMESPACE]  "
    "[env DRIVETRAIN_DISCOVERY; default: kubernetes:// in a pod, else a file store in $TMPDIR]"
)


def default_discovery() -> str:
    """``DRIVETRAIN_DISCOVERY``; else ``kubernetes://`` in a pod (a service account is mounted);
    else a file store every process of this user on this machine shares."""
    from drivetrain.runtime.discovery import default_url

    return default_url() or "file://" + os.path.join(
        tempfile.gettempdir(), f"drivetrain-discovery-{os.getuid()}"
    )


def _fail(message: str) -> NoReturn:
    err_console.print(f"[red]error[/red]: {message}", markup=True, highlight=False)
    raise typer.Exit(EXIT_INVALID)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _run(main: Callable[[], Coroutine[object, object, None]]) -> None:
    """Run on uvloop when it is installed (noticeably faster for the request path)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def _tune_gc() -> None:
    """Fewer, later garbage collections once the server is up.

    Each request allocates many short-lived container objects (JSON bodies, frames, futures), so
    the default gen-0 threshold of 700 runs a collection every few requests and shows up as tail
    latency.  Freezing the startup heap (modules, app) and raising the threshold measured p99
    28 ms -> 8 ms and +20-30 % req/s at 32 connections (docs/runtime.md).  Cycles are still
    collected, just in larger batches.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _known_errors() -> tuple[type[BaseException], ...]:
    from drivetrain.runtime.discovery import DiscoveryError

    return (ValueError, OSError, DiscoveryError)


def _discovery_url(given: str | None) -> str:
    """The discovery URL to use (flag, env, or the per-user default), or a one-line exit."""
    from drivetrain.runtime.discovery import validate_url

    url = given or default_discovery()
    try:
        validate_url(url)
    except ValueError as exc:
        _fail(f"--discovery: {exc}")
    return url


def _check_worker_discovery(url: str) -> None:
    """A worker publishing to kubernetes:// must know its pod (it owns the WorkerEndpoint)."""
    from drivetrain.runtime.discovery import validate_url

    if validate_url(url)[0] != "kubernetes":
        return
    from drivetrain.runtime.discovery.kubernetes import ENV_POD_NAME, ENV_POD_UID, PodIdentity

    if PodIdentity.from_env() is None:
        _fail(
            f"--discovery {url}: a worker publishes a WorkerEndpoint owned by its Pod and needs "
            f"{ENV_POD_NAME} and {ENV_POD_UID} (downward API metadata.name and metadata.uid)"
        )


def frontend(
    port: int = typer.Option(8000, "--port", help="HTTP port."),
    host: str = typer.Option("0.0.0.0", "--host", help="HTTP listen address."),
    discovery: str | None = typer.Option(
        None,
        "--discovery",
        help=DISCOVERY_HELP,
    ),
    namespace: str | None = typer.Option(
        None,
        "--namespace",
        envvar=ENV_NAMESPACE,
        help="Serve this namespace only (none, '' or 'global': all).",
    ),
    namespace_prefix: str | None = typer.Option(
        None,
        "--namespace-prefix",
        envvar="DRIVETRAIN_NAMESPACE_PREFIX",
        help="Serve namespaces starting with this (wins over --namespace).",
    ),
    namespace_prefix_strict: bool = typer.Option(
        False, "--namespace-prefix-strict", help="Only the prefix itself or <prefix>-<8 hex>."
    ),
    router: str = typer.Option(
        "round-robin", "--router", help="round-robin, random or least-loaded."
    ),
    request_timeout: float = typer.Option(600.0, "--request-timeout", help="Seconds per request."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the OpenAI-compatible HTTP frontend."""
    from drivetrain.runtime.frontend.router import ROUTER_MODES
    from drivetrain.runtime.frontend.server import FrontendConfig, RunningFrontend
    from drivetrain.runtime.scope import NamespaceScope, parse_strict_flag
    from drivetrain.runtime.worker import serve_until_signal

    _setup_logging(log_level)
    url = _discovery_url(discovery)
    if router not in ROUTER_MODES:
        _fail(f"--router: expected one of {', '.join(ROUTER_MODES)}, got {router!r}")
    if not 0 <= port <= 65535:
        _fail(f"--port: expected 0..65535, got {port}")
    if request_timeout <= 0:
        _fail(f"--request-timeout: expected seconds > 0, got {request_timeout}")
    strict = namespace_prefix_strict or parse_strict_flag(
        os.environ.get("DRIVETRAIN_NAMESPACE_PREFIX_STRICT")
    )
    scope = NamespaceScope.from_args(namespace, namespace_prefix, strict)
    config = FrontendConfig(host, port, url, scope, router, request_timeout)

    async def main() -> None:
        running = RunningFrontend(config)
        try:
            await running.start()
        except _known_errors() as exc:
            _fail(f"frontend could not start: {exc}")
        _tune_gc()
        print(
            f"drivetrain frontend listening on {running.url} "
            f"(discovery {url}, {scope.describe()}, router {router})",
            flush=True,
        )
        try:
            await serve_until_signal()
        finally:
            await running.stop()

    _run(main)


def worker(
    engine: str = typer.Option(..., "--engine", help="mocker, echo or http."),
    model_name: str = typer.Option(..., "--model-name", help="The served model name."),
    model_path: str | None = typer.Option(
        None, "--model-path", help="Model folder (tokenizer.json)."
    ),
    namespace: str | None = typer.Option(
        None,
        "--namespace",
        help="Namespace to register in  [env DRIVETRAIN_NAMESPACE, default global]",
    ),
    component: str | None = typer.Option(
        None, "--component", help="Component name  [env DRIVETRAIN_COMPONENT, default backend]"
    ),
    discovery: str | None = typer.Option(
        None,
        "--discovery",
        help=DISCOVERY_HELP,
    ),
    speedup_ratio: float = typer.Option(
        1.0, "--speedup-ratio", help="mocker: divide simulated times by this."
    ),
    upstream: str | None = typer.Option(
        None, "--upstream", help="http: URL of the OpenAI-compatible server."
    ),
    upstream_model: str | None = typer.Option(
        None, "--upstream-model", help="http: model name upstream (default --model-name)."
    ),
    model_types: str | None = typer.Option(
        None,
        "--model-types",
        help="Comma list among chat,completions,embeddings (default: the engine's).",
    ),
    lease_ttl: float = typer.Option(10.0, "--lease-ttl", help="Discovery lease TTL in seconds."),
    rpc_host: str = typer.Option(
        "127.0.0.1",
        "--rpc-host",
        envvar="DRIVETRAIN_RPC_HOST",
        help="Request-plane listen address.",
    ),
    rpc_port: int = typer.Option(
        0, "--rpc-port", envvar="DRIVETRAIN_RPC_PORT", help="Request-plane port (0: any free port)."
    ),
    advertise_host: str | None = typer.Option(
        None,
        "--advertise-host",
        envvar="DRIVETRAIN_ADVERTISE_HOST",
        help="Host frontends should dial (default: --rpc-host; the hostname when that is 0.0.0.0).",
    ),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run a worker: serve an engine and register it in discovery."""
    from drivetrain.runtime.engines import make_engine
    from drivetrain.runtime.records import MODEL_TYPES
    from drivetrain.runtime.worker import RunningWorker, WorkerConfig, serve_until_signal

    _setup_logging(log_level)
    url = _discovery_url(discovery)
    _check_worker_discovery(url)
    types = None
    if model_types:
        parsed = tuple(t.strip() for t in model_types.split(",") if t.strip())
        bad = [t for t in parsed if t not in MODEL_TYPES]
        if bad or not parsed:
            _fail(
                f"--model-types: expected a comma list of {', '.join(MODEL_TYPES)}, got {model_types!r}"
            )
        types = parsed
    if not 0 <= rpc_port <= 65535:
        _fail(f"--rpc-port: expected 0..65535, got {rpc_port}")
    if lease_ttl < 1:
        _fail(f"--lease-ttl: expected at least 1 second, got {lease_ttl}")
    if not model_name.strip():
        _fail("--model-name: must not be empty")
    if model_path is not None and not os.path.isfile(os.path.join(model_path, "tokenizer.json")):
        _fail(f"--model-path: {model_path}: expected a folder with a tokenizer.json")
    try:
        built = make_engine(
            engine,
            model_name=model_name,
            model_path=model_path,
            speedup_ratio=speedup_ratio,
            upstream=upstream,
            upstream_model=upstream_model,
            model_types=types,  # type: ignore[arg-type]
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    config = WorkerConfig(
        model_name=model_name,
        namespace=namespace if namespace is not None else os.environ.get(ENV_NAMESPACE) or "global",
        component=component or os.environ.get(ENV_COMPONENT) or "backend",
        discovery=url,
        lease_ttl=lease_ttl,
        host=rpc_host,
        port=rpc_port,
        advertise_host=advertise_host,
    )

    async def main() -> None:
        running = RunningWorker(config, built)
        try:
            await running.start()
        except _known_errors() as exc:
            await running.stop()
            _fail(f"worker could not start: {exc}")
        _tune_gc()
        print(
            f"drivetrain worker ready: model {model_name!r} ({engine}) at {running.address}, "
            f"namespace {config.namespace!r}, discovery {url}",
            flush=True,
        )
        try:
            await serve_until_signal()
        finally:
            await running.stop()

    _run(main)


def register(app: typer.Typer) -> None:
    """Add this topic's commands to ``app``."""
    app.command("frontend")(frontend)
    app.command("worker")(worker)
