"""A small OpenWhisk REST client of the gateway: how the CLI, the benchmarks, the workloads'
deployment and the profiler talk to Gleaner, like any user (an adapter of the kernel)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gleaner.errors import GleanerError

DAG_PAGE = 200  # the gateway's largest list page


TRANSIENT_STATUSES = frozenset({503, 504})


class ApiError(GleanerError):
    """An error answer of the gateway. It is :attr:`transient` (worth sending again later)
    when the status says the platform behind the gateway is away: 503, or 504."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("error") if isinstance(body, dict) else body
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.body = body
        self.transient = status in TRANSIENT_STATUSES


def wskprops_path() -> Path:
    return Path(os.environ.get("WSK_CONFIG_FILE") or Path.home() / ".wskprops")


def read_wskprops(path: Path | None = None) -> dict[str, str]:
    path = path or wskprops_path()
    props: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                props[key.strip()] = value.strip()
    return props


@dataclass(frozen=True)
class Target:
    apihost: str
    auth: str
    namespace: str = "_"

    @classmethod
    def resolve(cls, apihost: str | None = None, auth: str | None = None) -> Target:
        props = read_wskprops()
        host = apihost or os.environ.get("__OW_API_HOST") or props.get("APIHOST")
        key = auth or os.environ.get("__OW_API_KEY") or props.get("AUTH")
        if not host or not key:
            raise GleanerError(
                f"no API host or key: run 'gleaner up' or write APIHOST and AUTH to {wskprops_path()}"
            )
        if not host.startswith("http"):
            host = "https://" + host
        return cls(host.rstrip("/"), key, props.get("NAMESPACE", "_"))


class OpenWhiskClient:
    def __init__(self, target: Target, timeout_s: float = 75.0) -> None:
        user, _, key = target.auth.partition(":")
        self.target = target
        self._http = httpx.Client(
            base_url=f"{target.apihost}/api/v1/namespaces/{target.namespace}",
            auth=(user, key),
            timeout=timeout_s,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        try:
            resp = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise GleanerError(f"cannot reach {self.target.apihost}: {exc}") from exc
        body = resp.json() if resp.content else None
        if resp.status_code not in ok:
            raise ApiError(resp.status_code, body)
        return resp.status_code, body

    def namespace(self) -> str:
        """The namespace the API key belongs to (what ``_`` stands for)."""
        _, names = self.request("GET", f"{self.target.apihost}/api/v1/namespaces")
        if not names:
            raise GleanerError("the API key has no namespace")
        return str(names[0])

    def put_action(self, name: str, body: dict[str, Any], overwrite: bool) -> Any:
        return self.request(
            "PUT", f"/actions/{name}", json=body, params={"overwrite": str(overwrite).lower()}
        )[1]

    def invoke(self, name: str, params: dict[str, Any], *, blocking: bool, result: bool) -> tuple[int, Any]:
        return self.request(
            "POST",
            f"/actions/{name}",
            json=params,
            ok=(200, 202, 502),
            params={"blocking": str(blocking).lower(), "result": str(result).lower()},
        )

    def record(self, activation_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """An activation's record, waiting up to ``timeout_s`` for the record sink to write it."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, body = self.request("GET", f"/activations/{activation_id}", ok=(200, 404))
            if status == 200:
                return body  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise GleanerError(f"the record of {activation_id} never appeared")
            time.sleep(0.2)

    def dag_names(self) -> list[str]:
        """The DAGs deployed in the key's namespace: every page of the list."""
        names: list[str] = []
        while True:
            page = self.request("GET", "/dags", params={"limit": DAG_PAGE, "skip": len(names)})[1]
            names += [str(d["name"]) for d in page]
            if len(page) < DAG_PAGE:
                return names

    def close(self) -> None:
        self._http.close()
