"""``gleaner up --demo``: register an action, invoke it, show its record."""

from __future__ import annotations

from pathlib import Path

from gleaner.cli.client import OpenWhiskClient, Target
from gleaner.cli.wsk import exec_from_file
from gleaner.records import annotation
from gleaner.settings import Settings

DEMO = Path(__file__).resolve().parents[2] / "workloads" / "demo" / "busy.py"


def run_demo(settings: Settings) -> int:
    client = OpenWhiskClient(Target.resolve(settings.api_host, settings.guest_auth))
    body = {"exec": exec_from_file(DEMO, None, None), "limits": {"cpu": 0.5, "memory": 256, "timeout": 60000}}
    client.put_action("demo-busy", body, overwrite=True)
    print("ok: created action demo-busy (0.5 core, 256 MB)")
    for n in (20_000_000, 20_000_000):
        status, record = client.invoke("demo-busy", {"n": n}, blocking=True, result=False)
        if status == 202:
            print(f"still running after the blocking wait: {record['activationId']}")
            return 1
        if status != 200:
            print(f"the demo activation failed: {record['response']['result']}")
            return 1
        g = record.get("gleaner", {})
        measured = g.get("measured", {})
        init = annotation(record, "initTime")
        start = f"cold, initTime {init} ms" if init else "warm"
        print(f"\nactivation {record['activationId']}  ({start})")
        print(f"  result      {record['response']['result']}")
        print(f"  duration    {record['duration']} ms in container {g.get('container')}")
        print(f"  allocation  {g.get('allocation')} (origin {g.get('origin')})")
        print(f"  measured    peak {measured.get('peak_cpu')} cores, {measured.get('peak_memory')} MB")
        print(f"  logs        {record['logs']}")
    print(
        "\nRead records with: gleaner activation list  (or curl the CouchDB API at "
        f"{settings.couchdb_url}/{settings.db('activations')}/_all_docs)"
    )
    return 0
