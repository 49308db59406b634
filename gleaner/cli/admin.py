"""``gleaner namespace ...`` and ``gleaner key ...``: what ``wskadmin user`` does in OpenWhisk.

They call the gateway's admin routes (``/api/v1/admin/namespaces``) with the admin
key: ``--auth``, else ``GLEANER_ADMIN_AUTH``, else ``<state_dir>/secrets/admin.auth``
(written by ``gleaner up``, 0600). The admin key is never read from ~/.wskprops,
which holds a tenant's key. Like ``wskadmin user create``, a command that issues a
key prints only the key on stdout, so ``AUTH=$(gleaner key create ns)`` works.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import quote

from gleaner.credentials import admin_credential, secret_file
from gleaner.errors import BadRequest, GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target, read_wskprops
from gleaner.settings import Settings, load_settings
from gleaner.subjects import check_namespace, check_uuid

ADMIN_PATH = "/api/v1/admin/namespaces"


# --- pure argument handling ---------------------------------------------------------------------


def key_uuid(raw: str) -> str:
    """A key named by its uuid, or pasted whole (``uuid:secret``): the canonical uuid."""
    return check_uuid(raw.partition(":")[0].strip())


def key_to_rotate(keys: list[dict[str, Any]], namespace: str, named: str | None) -> str:
    """The uuid ``gleaner key rotate`` means: the one named, else the namespace's only key."""
    if named is not None:
        return key_uuid(named)
    if len(keys) == 1:
        return str(keys[0]["uuid"])
    if not keys:
        raise BadRequest(
            f"namespace {namespace!r} has no key to rotate: use `gleaner key create {namespace}`"
        )
    uuids = ", ".join(str(k["uuid"]) for k in keys)
    raise BadRequest(f"namespace {namespace!r} has {len(keys)} keys ({uuids}): name the one to rotate")


def admin_target(settings: Settings, apihost: str | None, auth: str | None) -> Target:
    key = auth or admin_credential(settings)
    if not key:
        raise GleanerError(
            f"no admin key: run `gleaner up` (it writes {secret_file(settings.stores, 'admin')}), "
            "or pass --auth / GLEANER_ADMIN_AUTH"
        )
    host = apihost or read_wskprops().get("APIHOST") or settings.api_host
    if not host.startswith("http"):
        host = "https://" + host
    return Target(host.rstrip("/"), key)


def _path(namespace: str, *rest: str) -> str:
    return "/".join([ADMIN_PATH, quote(check_namespace(namespace), safe=""), *rest])


# --- commands ---------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> OpenWhiskClient:
    return OpenWhiskClient(admin_target(load_settings(), args.apihost, args.auth))


def _call(client: OpenWhiskClient, method: str, path: str) -> Any:
    return client.request(method, f"{client.target.apihost}{path}")[1]


def _issued(message: str, body: Any) -> int:
    print(f"ok: {message} (uuid {body['uuid']}); its key, shown only now:", file=sys.stderr)
    print(body["auth"])
    return 0


def namespace_cmd(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.verb == "create":
        return _issued(f"created namespace {args.namespace}", _call(client, "PUT", _path(args.namespace)))
    if args.verb == "delete":
        body = _call(client, "DELETE", _path(args.namespace))
        print(f"ok: deleted namespace {args.namespace}; revoked {len(body['revoked'])} key(s)")
        return 0
    namespaces = _call(client, "GET", ADMIN_PATH)
    print("namespaces")
    for ns in namespaces:
        print(f"{ns['namespace']:<40} {ns['keys']} key(s)")
    return 0


def key_cmd(args: argparse.Namespace) -> int:
    client = _client(args)
    ns = args.namespace
    if args.verb == "create":
        return _issued(f"created a key for {ns}", _call(client, "POST", _path(ns, "keys")))
    if args.verb == "list":
        keys = _call(client, "GET", _path(ns, "keys"))
        print(f"keys of {ns}")
        for key in keys:
            print(key["uuid"])
        return 0
    if args.verb == "rotate":
        named = args.uuid if args.uuid is None else key_uuid(args.uuid)
        keys = [] if named else _call(client, "GET", _path(ns, "keys"))
        uuid = key_to_rotate(keys, ns, named)
        return _issued(f"rotated key {uuid} of {ns}", _call(client, "PUT", _path(ns, "keys", uuid)))
    uuid = key_uuid(args.uuid)
    _call(client, "DELETE", _path(ns, "keys", uuid))
    print(f"ok: revoked key {uuid} of {ns}")
    return 0


def _target_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--apihost", help="the gateway (default: APIHOST in ~/.wskprops, else GLEANER_API_HOST)")
    p.add_argument("-u", "--auth", help="the admin key (default: the one `gleaner up` wrote)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    namespace = sub.add_parser("namespace", help="create, list and delete namespaces (admin key)")
    verbs = namespace.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("create", "a namespace and its first key"),
        ("delete", "a namespace, revoking its keys"),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("namespace")
        _target_flags(p)
        p.set_defaults(func=namespace_cmd)
    p = verbs.add_parser("list", help="every namespace")
    _target_flags(p)
    p.set_defaults(func=namespace_cmd)

    key = sub.add_parser("key", help="create, list, rotate and revoke a namespace's keys (admin key)")
    kverbs = key.add_subparsers(dest="verb", required=True)
    for verb, text in (("create", "issue a further key"), ("list", "the keys' uuids")):
        p = kverbs.add_parser(verb, help=text)
        p.add_argument("namespace")
        _target_flags(p)
        p.set_defaults(func=key_cmd)
    p = kverbs.add_parser("rotate", help="a new secret for a key (same uuid); the old one stops")
    p.add_argument("namespace")
    p.add_argument("uuid", nargs="?", help="the key (uuid or uuid:key); default: the namespace's only key")
    _target_flags(p)
    p.set_defaults(func=key_cmd)
    p = kverbs.add_parser("revoke", help="revoke a key: refused within a second")
    p.add_argument("namespace")
    p.add_argument("uuid", help="the key (uuid or uuid:key)")
    _target_flags(p)
    p.set_defaults(func=key_cmd)
