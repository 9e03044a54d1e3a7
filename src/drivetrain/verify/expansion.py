"""The kubelet's ``$(VAR)`` expansion and the env it builds for a container.

Rules (reference ``k8s-testing.md`` §8): one left-to-right pass; ``$$`` is a literal ``$``;
``$(NAME)`` up to the first ``)`` is replaced when NAME is defined and kept verbatim when not;
``$(`` with no closing ``)`` is literal; any other ``$x`` is literal; values are not rescanned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Lookup = Callable[[str], "str | None"]


def expand(text: str, lookup: Lookup) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : close]
            value = lookup(name)
            out.append(value if value is not None else f"$({name})")
            i = close + 1
        else:
            out.append(ch + nxt)
            i += 2
    return "".join(out)


def mapping_lookup(*maps: Mapping[str, str]) -> Lookup:
    def lookup(name: str) -> str | None:
        for m in maps:
            if name in m:
                return m[name]
        return None

    return lookup


def container_env(
    container: Mapping[str, Any],
    resolve_field: Callable[[str], str],
    *,
    controller_env: Sequence[tuple[str, str]] = (),
    service_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The env the kubelet gives ``container``, in declaration order.

    ``envFrom`` keys cannot be known without the cluster; a reference to a name that only an
    ``envFrom`` source could define resolves to a placeholder ``<from NAME>`` (see
    ``unknown_lookup``).  Controller-injected env (LWS, Grove) comes after the pod's own, as
    those controllers append it.
    """
    env: dict[str, str] = {}
    services = dict(service_env or {})
    entries: list[dict[str, Any]] = [*container.get("env", [])]
    entries += [{"name": k, "value": v} for k, v in controller_env]
    for entry in entries:
        name = entry["name"]
        if entry.get("value"):
            env[name] = expand(entry["value"], mapping_lookup(env, services))
        elif "valueFrom" in entry:
            env[name] = _value_from(entry["valueFrom"], resolve_field)
        else:
            env[name] = ""
    return env


def _value_from(source: Mapping[str, Any], resolve_field: Callable[[str], str]) -> str:
    if "fieldRef" in source:
        return resolve_field(source["fieldRef"].get("fieldPath", ""))
    if "resourceFieldRef" in source:
        return "1"
    for key in ("secretKeyRef", "configMapKeyRef"):
        if key in source:
            ref = source[key]
            return f"<{key[:-6]} {ref.get('name', '')}/{ref.get('key', '')}>"
    return ""
