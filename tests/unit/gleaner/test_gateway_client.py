"""The gateway's REST client (gleaner.gateway_client) against an in-memory gateway (httpx's MockTransport)."""

from __future__ import annotations

import httpx

from gleaner.gateway_client import DAG_PAGE, OpenWhiskClient, Target


def client_over(names: list[str], seen: list[dict[str, str]]) -> OpenWhiskClient:
    """A client whose gateway lists ``names`` a page at a time, as ``GET /dags`` does."""

    def answer(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        skip, limit = int(params.get("skip", 0)), int(params.get("limit", DAG_PAGE))
        page = [{"name": n, "namespace": "ns"} for n in names[skip : skip + min(limit, DAG_PAGE)]]
        return httpx.Response(200, json=page)

    client = OpenWhiskClient(Target("http://gateway.test", "u:k", "ns"))
    client._http = httpx.Client(
        base_url="http://gateway.test/api/v1/namespaces/ns", transport=httpx.MockTransport(answer)
    )
    return client


def test_dag_names_reads_every_page_of_a_long_list() -> None:
    names = [f"dag-{i:04d}" for i in range(2 * DAG_PAGE + 7)]
    seen: list[dict[str, str]] = []
    assert client_over(names, seen).dag_names() == names
    assert [p["skip"] for p in seen] == ["0", str(DAG_PAGE), str(2 * DAG_PAGE)]


def test_dag_names_of_an_exact_page_asks_once_more_and_stops_on_empty() -> None:
    names = [f"dag-{i}" for i in range(DAG_PAGE)]
    seen: list[dict[str, str]] = []
    assert client_over(names, seen).dag_names() == names and len(seen) == 2
