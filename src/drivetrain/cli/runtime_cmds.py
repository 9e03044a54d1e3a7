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

import typer

from drivetrain import envnames, podcontainers
from drivetrain.cli.output import EXIT_USAGE, fail

DISCOVERY_HELP = (
    "etcd://host:port, file:///dir, memory:// or kubernetes://[NAMESPACE]  "
    "[env DRIVETRAIN_DISCOVERY; default: kubernetes:// in a pod, else a file store in $TMPDIR]"
)


def default_discovery() -> str:
    """``DRIVETRAIN_DISCOVERY``; else ``kubernetes://`` in a pod (a service account is mounted);
    else a file store every process of this user on this machine shares."""
    from drivetrain.runtime.discovery import default_url

    shared = os.path.join(tempfile.gettempdir(), f"drivetrain-discovery-{os.getuid()}")
    return default_url() or f"file://{shared}"


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
    from drivetrain.runtime.failover import FailoverLockError

    return (ValueError, OSError, DiscoveryError, FailoverLockError)


def _discovery_url(given: str | None) -> str:
    """The discovery URL to use (flag, env, or the per-user default), or a one-line exit."""
    from drivetrain.runtime.discovery import validate_url

    url = given or default_discovery()
    try:
        validate_url(url)
    except ValueError as exc:
        fail(f"--discovery: {exc}", EXIT_USAGE)
    return url


def _check_worker_discovery(url: str) -> None:
    """A worker publishing to kubernetes:// must know its pod (it owns the WorkerEndpoint)."""
    from drivetrain.runtime.discovery import validate_url

    if validate_url(url)[0] != "kubernetes":
        return
    from drivetrain.runtime.discovery.kubernetes import ENV_POD_NAME, ENV_POD_UID, PodIdentity

    if PodIdentity.from_env() is None:
        fail(
            f"--discovery {url}: a worker publishes a WorkerEndpoint owned by its Pod and needs "
            f"{ENV_POD_NAME} and {ENV_POD_UID} (downward API metadata.name and metadata.uid)"
        )


def _disaggregation_mode(given: str | None) -> str:
    """The flag, else the role the renderer gave the pod: a ``prefill`` or ``decode``
    componentType (``DRIVETRAIN_COMPONENT_TYPE``) or subComponentType
    (``DRIVETRAIN_SUB_COMPONENT_TYPE``), as in a DGD; else aggregated."""
    if given is not None:
        return given
    for name in (envnames.SUB_COMPONENT_TYPE, envnames.COMPONENT_TYPE):
        value = os.environ.get(name, "")
        if value in ("prefill", "decode"):
            return value
    return "agg"


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
        envvar=envnames.NAMESPACE,
        help="Serve this namespace only (none, '' or 'global': all).",
    ),
    namespace_prefix: str | None = typer.Option(
        None,
        "--namespace-prefix",
        envvar=envnames.NAMESPACE_PREFIX,
        help="Serve namespaces starting with this (wins over --namespace).",
    ),
    namespace_prefix_strict: bool = typer.Option(
        False, "--namespace-prefix-strict", help="Only the prefix itself or <prefix>-<8 hex>."
    ),
    router: str = typer.Option(
        "round-robin", "--router", help="round-robin, random, least-loaded, kv or kv-approx."
    ),
    kv_overlap_weight: float = typer.Option(
        1.0,
        "--kv-overlap-weight",
        help="kv routers: weight of the prompt tokens left to prefill against active blocks.",
    ),
    kv_approx_ttl: float = typer.Option(
        120.0, "--kv-approx-ttl", help="kv-approx: seconds a routed prompt counts as cached."
    ),
    disagg_threshold: int = typer.Option(
        0,
        "--disagg-threshold",
        help="disaggregated models: prompts with fewer uncached tokens skip the prefill instance.",
    ),
    request_timeout: float = typer.Option(600.0, "--request-timeout", help="Seconds per request."),
    admission_control: bool = typer.Option(
        True,
        "--admission-control/--no-admission-control",
        help="Queue requests per model while every instance is at capacity (off: send anyway).",
    ),
    max_queue: int = typer.Option(
        1024, "--max-queue", help="Requests waiting per model at most; one more is refused."
    ),
    queue_timeout: float = typer.Option(
        30.0, "--queue-timeout", help="Seconds a request waits for room before it is refused."
    ),
    retry_window: float = typer.Option(
        5.0,
        "--retry-window",
        help="Seconds a request waits for a live instance (a failover shadow taking over, a "
        "worker starting) before it gets 503; 0: at once.",
    ),
    overload_status: int = typer.Option(
        429,
        "--overload-status",
        envvar=envnames.OVERLOAD_STATUS,
        help="HTTP status for a saturated model (Dynamo answers 529).",
    ),
    drain_timeout: float = typer.Option(
        5.0,
        "--drain-timeout",
        envvar=envnames.DRAIN_TIMEOUT,
        help="On SIGTERM: seconds requests in flight may finish before they get a 503.",
    ),
    event_per_token: bool = typer.Option(
        False,
        "--event-per-token",
        help="Stream one SSE event per token even when several are ready at once (default: "
        "one event carries them all, as vLLM's deltas do).",
    ),
    tokenizer_root: str | None = typer.Option(
        None,
        "--tokenizer-root",
        envvar=envnames.TOKENIZER_ROOT,
        help="Folder of <model name>/tokenizer.json for models whose registered folder is not "
        "readable here (prompts are then counted here).",
    ),
    admin_port: int = typer.Option(
        8002, "--admin-port", help="The RL API's port (opened only with --admin-token)."
    ),
    admin_token: str | None = typer.Option(
        None,
        "--admin-token",
        envvar=envnames.ADMIN_TOKEN,
        help="Bearer token of the RL API (docs/rl.md); without one its port stays closed.",
    ),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the OpenAI-compatible HTTP frontend."""
    from drivetrain.runtime.frontend.admission import AdmissionConfig
    from drivetrain.runtime.frontend.kv_router import KvConfig
    from drivetrain.runtime.frontend.router import ROUTER_MODES
    from drivetrain.runtime.frontend.server import FrontendConfig, RunningFrontend
    from drivetrain.runtime.scope import NamespaceScope, parse_strict_flag
    from drivetrain.runtime.serve import run_frontend

    _setup_logging(log_level)
    url = _discovery_url(discovery)
    if router not in ROUTER_MODES:
        fail(f"--router: expected one of {', '.join(ROUTER_MODES)}, got {router!r}", EXIT_USAGE)
    if not 0 <= port <= 65535:
        fail(f"--port: expected 0..65535, got {port}", EXIT_USAGE)
    if not 0 <= admin_port <= 65535:
        fail(f"--admin-port: expected 0..65535, got {admin_port}", EXIT_USAGE)
    if admin_token is not None and admin_token != admin_token.strip():
        fail("--admin-token: must not start or end with whitespace", EXIT_USAGE)
    for flag, seconds, least in (
        ("--request-timeout", request_timeout, False),
        ("--queue-timeout", queue_timeout, False),
        ("--retry-window", retry_window, True),
        ("--drain-timeout", drain_timeout, True),
    ):
        if seconds < 0 or (seconds == 0 and not least):
            fail(
                f"{flag}: expected seconds {'>= 0' if least else '> 0'}, got {seconds}", EXIT_USAGE
            )
    if max_queue < 0:
        fail(f"--max-queue: expected 0 or more, got {max_queue}", EXIT_USAGE)
    if kv_overlap_weight < 0:
        fail(f"--kv-overlap-weight: expected a number >= 0, got {kv_overlap_weight}", EXIT_USAGE)
    if kv_approx_ttl <= 0:
        fail(f"--kv-approx-ttl: expected seconds > 0, got {kv_approx_ttl}", EXIT_USAGE)
    if disagg_threshold < 0:
        fail(f"--disagg-threshold: expected tokens >= 0, got {disagg_threshold}", EXIT_USAGE)
    if not 400 <= overload_status <= 599:
        fail(
            f"--overload-status: expected an HTTP error status 400..599, got {overload_status}",
            EXIT_USAGE,
        )
    if retry_window > request_timeout:
        fail(
            f"--retry-window: expected seconds from 0 to --request-timeout ({request_timeout:g}), "
            f"got {retry_window:g}",
            EXIT_USAGE,
        )
    strict = namespace_prefix_strict or parse_strict_flag(
        os.environ.get(envnames.NAMESPACE_PREFIX_STRICT)
    )
    scope = NamespaceScope.from_args(namespace, namespace_prefix, strict)
    admission = AdmissionConfig(
        enabled=admission_control,
        max_queue=max_queue,
        queue_timeout=queue_timeout,
        retry_window=retry_window,
        overload_status=overload_status,
    )
    config = FrontendConfig(
        host,
        port,
        url,
        scope,
        router,
        request_timeout,
        admission=admission,
        drain_timeout=drain_timeout,
        tokenizer_root=tokenizer_root,
        admin_token=admin_token or None,
        admin_port=admin_port,
        kv=KvConfig(overlap_weight=kv_overlap_weight, approx_ttl=kv_approx_ttl),
        disagg_threshold=disagg_threshold,
        event_per_token=event_per_token,
    )

    started = False

    def ready(running: RunningFrontend) -> None:
        nonlocal started
        started = True
        _tune_gc()
        admin = f", RL API on {running.admin_url}" if running.admin_url else ""
        print(
            f"drivetrain frontend listening on {running.url} "
            f"(discovery {url}, {scope.describe()}, router {router}{admin})",
            flush=True,
        )

    async def main() -> None:
        try:
            await run_frontend(config, on_ready=ready)
        except _known_errors() as exc:
            if started:
                raise
            fail(f"frontend could not start: {exc}")

    _run(main)


def worker(
    engine: str = typer.Option(..., "--engine", help="mocker, echo, http or transformers."),
    model_name: str | None = typer.Option(
        None,
        "--model-name",
        help="The served model name (http: default the first model the upstream lists).",
    ),
    model_path: str | None = typer.Option(
        None,
        "--model-path",
        help="Model folder: its tokenizer (mocker); a Hugging Face model folder (transformers).",
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
    health_interval: float = typer.Option(
        1.0,
        "--health-interval",
        help="http: seconds between checks of the upstream's /health; registered only while it answers.",
    ),
    device: str = typer.Option(
        "auto", "--device", help="transformers: auto, cpu, cuda or cuda:N (auto: cuda if any)."
    ),
    dtype: str = typer.Option(
        "auto",
        "--dtype",
        help="transformers: auto, float32, bfloat16 or float16 (auto: float32 on a CPU).",
    ),
    max_batch: int = typer.Option(
        16, "--max-batch", help="transformers: sequences decoded together at most."
    ),
    max_queue: int = typer.Option(
        64, "--max-queue", help="transformers: requests waiting at most (more: 503)."
    ),
    max_num_seqs: int | None = typer.Option(
        None,
        "--max-num-seqs",
        help="mocker: requests running at once (default 256; more wait); http: the upstream's "
        "batch limit, reported to frontends (default: none).",
    ),
    num_blocks: int = typer.Option(
        16384, "--num-blocks", help="mocker: KV cache blocks (a request holds prompt + max tokens)."
    ),
    block_size: int = typer.Option(64, "--block-size", help="mocker: tokens per KV block."),
    prefix_caching: bool = typer.Option(
        True,
        "--enable-prefix-caching/--no-enable-prefix-caching",
        help="mocker: cache prompt blocks and publish KV events (docs/kv-routing.md).",
    ),
    disaggregation_mode: str | None = typer.Option(
        None,
        "--disaggregation-mode",
        help="agg, prefill or decode (default: the service's componentType, else agg).",
    ),
    kv_transfer_us_per_token: float | None = typer.Option(
        None,
        "--kv-transfer-us-per-token",
        help="mocker, decode: simulated KV transfer per prompt token, microseconds (2.0).",
    ),
    context_length: int | None = typer.Option(
        None,
        "--context-length",
        help="The model's context length in tokens (default: config.json's "
        "max_position_embeddings; http: the upstream's /v1/models max_model_len).",
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="transformers: torch CPU threads (default: torch's, one per core)."
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
        envvar=envnames.RPC_HOST,
        help="Request-plane listen address.",
    ),
    rpc_port: int = typer.Option(
        0, "--rpc-port", envvar=envnames.RPC_PORT, help="Request-plane port (0: any free port)."
    ),
    advertise_host: str | None = typer.Option(
        None,
        "--advertise-host",
        envvar=envnames.ADVERTISE_HOST,
        help="Host frontends should dial (default: --rpc-host; the hostname when that is 0.0.0.0).",
    ),
    failover_lock: str | None = typer.Option(
        None,
        podcontainers.FAILOVER_LOCK_FLAG,
        envvar=podcontainers.FAILOVER_LOCK_ENV,
        help="A lock file shared with a shadow engine: the holder serves, the other waits warmed "
        "and takes over when the holder dies (docs/gms-failover.md).",
    ),
    drain_timeout: float = typer.Option(
        5.0,
        "--drain-timeout",
        envvar=envnames.DRAIN_TIMEOUT,
        help="On SIGTERM: seconds requests in flight may finish before they end with a 503.",
    ),
    weight_version: str = typer.Option(
        "0",
        "--weight-version",
        help="The weight version the engine starts with (docs/rl.md); a committed version in "
        "discovery replaces it before the worker registers.",
    ),
    weight_load_ms: float = typer.Option(
        0.0, "--weight-load-ms", help="mocker and echo: simulated time of a weight update."
    ),
    upstream_api: str = typer.Option(
        "vllm",
        "--upstream-api",
        help="http: whose weight-update routes the upstream has, vllm or sglang (docs/rl.md).",
    ),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run a worker: serve an engine and register it in discovery."""
    from drivetrain.runtime.engines import make_engine
    from drivetrain.runtime.records import MODEL_TYPES
    from drivetrain.runtime.serve import run_worker
    from drivetrain.runtime.worker import RunningWorker, WorkerConfig

    _setup_logging(log_level)
    url = _discovery_url(discovery)
    _check_worker_discovery(url)
    types = None
    if model_types:
        parsed = tuple(t.strip() for t in model_types.split(",") if t.strip())
        bad = [t for t in parsed if t not in MODEL_TYPES]
        if bad or not parsed:
            fail(
                f"--model-types: expected a comma list of {', '.join(MODEL_TYPES)}, "
                f"got {model_types!r}",
                EXIT_USAGE,
            )
        types = parsed
    if not 0 <= rpc_port <= 65535:
        fail(f"--rpc-port: expected 0..65535, got {rpc_port}", EXIT_USAGE)
    if lease_ttl < 1:
        fail(f"--lease-ttl: expected at least 1 second, got {lease_ttl}", EXIT_USAGE)
    if drain_timeout < 0:
        fail(f"--drain-timeout: expected seconds >= 0, got {drain_timeout}", EXIT_USAGE)
    if model_name is not None and not model_name.strip():
        fail("--model-name: must not be empty", EXIT_USAGE)
    if failover_lock is not None and not failover_lock.strip():
        fail(f"{podcontainers.FAILOVER_LOCK_FLAG}: must not be empty", EXIT_USAGE)
    if model_name is None and engine != "http":
        fail(
            f"--model-name: required for the {engine} engine (only http can ask its upstream)",
            EXIT_USAGE,
        )
    if (
        model_path is not None
        and engine != "transformers"
        and not os.path.isfile(os.path.join(model_path, "tokenizer.json"))
    ):
        fail(f"--model-path: {model_path}: expected a folder with a tokenizer.json")
    try:
        built = make_engine(
            engine,
            model_name=model_name,
            model_path=model_path,
            speedup_ratio=speedup_ratio,
            upstream=upstream,
            upstream_model=upstream_model,
            model_types=types,  # type: ignore[arg-type]
            device=device,
            dtype=dtype,
            max_batch=max_batch,
            max_queue=max_queue,
            threads=threads,
            health_interval=health_interval,
            max_num_seqs=max_num_seqs,
            num_blocks=num_blocks,
            block_size=block_size,
            context_length=context_length,
            weight_load_s=weight_load_ms / 1000.0,
            upstream_api=upstream_api,
            prefix_caching=prefix_caching,
            disaggregation_mode=_disaggregation_mode(disaggregation_mode),
            kv_transfer_us_per_token=kv_transfer_us_per_token,
        )
    except FileNotFoundError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    config = WorkerConfig(
        model_name=model_name,
        namespace=namespace
        if namespace is not None
        else os.environ.get(envnames.NAMESPACE) or "global",
        component=component or os.environ.get(envnames.COMPONENT) or "backend",
        discovery=url,
        lease_ttl=lease_ttl,
        host=rpc_host,
        port=rpc_port,
        advertise_host=advertise_host,
        failover_lock=failover_lock or None,
        drain_timeout=drain_timeout,
        weight_version=weight_version.strip() or "0",
    )
    engine_id = os.environ.get(envnames.ENGINE_ID)
    which = f" (engine {engine_id})" if engine_id else ""

    started = False

    def ready(running: RunningWorker) -> None:
        # Called once registered: a sidecar registers only once its upstream answers.
        nonlocal started
        started = True
        _tune_gc()
        print(
            f"drivetrain worker ready: model {running.model_name!r} ({engine}) at "
            f"{running.address}, namespace {config.namespace!r}, discovery {url}{which}",
            flush=True,
        )

    def standby(running: RunningWorker) -> None:
        # Warmed and listening, not registered: it serves once the failover lock is free.
        print(
            f"drivetrain worker standby: model {running.model_name!r} ({engine}) at "
            f"{running.address}, waiting for the failover lock {failover_lock}{which}",
            flush=True,
        )

    async def main() -> None:
        try:
            await run_worker(config, built, on_ready=ready, on_standby=standby)
        except _known_errors() as exc:
            if started:
                raise
            fail(f"worker could not start: {exc}")

    _run(main)


def register(app: typer.Typer) -> None:
    """Add this topic's commands to ``app``."""
    app.command("frontend")(frontend)
    app.command("worker")(worker)
