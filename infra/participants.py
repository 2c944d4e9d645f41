"""``clearinghouse participants sync``: Kafka logins and ACLs from the reference data.

Idempotent. For every principal of ``shared.acls.principals`` it makes sure a password
exists in the credentials file (``<cache>/secrets/kafka-credentials.json``, mode 0600;
generated once, kept afterwards) and that the broker holds that principal's
SCRAM-SHA-512 credential; then it creates the ACLs of ``shared.acls.grants`` for the
namespace and deletes ACLs of the namespace that the reference data no longer asks for.
It connects as ``admin`` (the broker's super user).

The admin operations use confluent-kafka (librdkafka): aiokafka has no API for SCRAM
credentials or ACLs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from shared.acls import Grant, ServiceTopics, grants, principals
from shared.messaging import clients as kafka_clients

#: SCRAM iterations of each credential (Kafka's minimum is 4096).
ITERATIONS = 8192


def service_topics() -> dict[str, ServiceTopics]:
    from services.registry import SERVICES, spec_of

    return {name: ServiceTopics(spec_of(name).consumes, spec_of(name).publishes)
            for name in SERVICES}


def _admin(bootstrap: str):  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient

    config = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 30000,
              **kafka_clients.kafka_auth(kafka_clients.ADMIN).librdkafka()}
    return AdminClient(config)


def _binding(grant: Grant):  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBinding(
        ResourceType[grant.resource.upper()], grant.name,
        ResourcePatternType[grant.pattern.upper()], f"User:{grant.principal}", "*",
        AclOperation[grant.operation.upper()], AclPermissionType.ALLOW)


def _grant(binding) -> Grant | None:  # type: ignore[no-untyped-def]
    principal = binding.principal
    if not principal.startswith("User:"):
        return None
    return Grant(principal[len("User:"):], binding.restype.name.lower(),
                 binding.resource_pattern_type.name.lower(), binding.name,
                 binding.operation.name.lower())


def _wait(futures: dict) -> None:  # type: ignore[type-arg]
    for future in futures.values():
        future.result(timeout=60)


def upsert_users(bootstrap: str, passwords: dict[str, str]) -> None:
    """Create or refresh the SCRAM-SHA-512 credential of each principal."""
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = _admin(bootstrap)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, ITERATIONS)
    changes = [UserScramCredentialUpsertion(name, info, password.encode())
               for name, password in sorted(passwords.items())
               if name != kafka_clients.ADMIN]
    for start in range(0, len(changes), 200):
        _wait(admin.alter_user_scram_credentials(changes[start:start + 200]))


def current_acls(bootstrap: str, admin=None) -> list[Grant]:  # type: ignore[no-untyped-def]
    """Every ACL on the broker (through `admin`, an admin client already connected, or a
    new one)."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin = admin or _admin(bootstrap)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    found = admin.describe_acls(everything).result(timeout=60)
    return [g for g in (_grant(b) for b in found) if g is not None]


def apply_acls(bootstrap: str, wanted: Sequence[Grant], *, owned: Iterable[Grant] = ()
               ) -> tuple[int, int]:
    """Create `wanted` (Kafka ignores ACLs that already exist) and delete the `owned`
    ones not wanted any more. Returns (created, deleted)."""
    admin = _admin(bootstrap)
    wanted_set = set(wanted)
    stale = [g for g in owned if g not in wanted_set]
    for start in range(0, len(wanted), 500):
        _wait(admin.create_acls([_binding(g) for g in wanted[start:start + 500]]))
    if stale:
        delete_grants(bootstrap, stale)
    _until_visible(bootstrap, wanted_set)
    return len(wanted), len(stale)


def _until_visible(bootstrap: str, wanted: set[Grant], timeout: float = 30.0,
                   admin=None) -> None:  # type: ignore[no-untyped-def]
    """CreateAcls returns once the controller has committed the ACLs; a broker applies
    them from the metadata log a moment later. Wait until the broker answers with all of
    them, so that a client started next is not refused.

    Only the resources of `wanted` are described, and after the first round only those
    still missing an ACL: a broker may hold the ACLs of many other namespaces, and a
    describe of all of them every 0.1 s is slow (and crashed librdkafka once they were
    many)."""
    import time

    deadline = time.monotonic() + timeout
    admin = admin or _admin(bootstrap)  # one login for every poll
    missing = set(wanted)
    while True:
        missing -= set(resource_acls(admin, missing))
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(missing)} ACLs not visible on the broker after "
                               f"{timeout:.0f} s, e.g. {sorted(missing)[0]}")
        time.sleep(0.1)


def resource_acls(admin, of: Iterable[Grant]) -> list[Grant]:  # type: ignore[no-untyped-def]
    """The ACLs on the broker of the resources `of` names (each resource as it is named:
    type, pattern type and name), asked for all of them at once."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    resources = sorted({(g.resource, g.pattern, g.name) for g in of})
    futures = [admin.describe_acls(AclBindingFilter(
        ResourceType[resource.upper()], name, ResourcePatternType[pattern.upper()], None, None,
        AclOperation.ANY, AclPermissionType.ANY)) for resource, pattern, name in resources]
    return [g for future in futures for g in (_grant(b) for b in future.result(timeout=60))
            if g is not None]


def delete_topic_acls(bootstrap: str, topic_names: Sequence[str]) -> None:
    """Remove every ACL on exactly these topics (the literal ones a namespace's sync made):
    deleting a namespace's topics leaves no ACLs behind on the broker."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    if not topic_names:
        return
    admin = _admin(bootstrap)
    filters = [AclBindingFilter(ResourceType.TOPIC, name, ResourcePatternType.LITERAL, None,
                                None, AclOperation.ANY, AclPermissionType.ANY)
               for name in topic_names]
    for start in range(0, len(filters), 500):
        _wait(admin.delete_acls(filters[start:start + 500]))


def delete_grants(bootstrap: str, stale: Sequence[Grant]) -> None:
    from confluent_kafka.admin import AclBindingFilter, AclPermissionType

    admin = _admin(bootstrap)
    filters = []
    for g in stale:
        b = _binding(g)
        filters.append(AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal,
                                        b.host, b.operation, AclPermissionType.ALLOW))
    for start in range(0, len(filters), 500):
        _wait(admin.delete_acls(filters[start:start + 500]))


def _in_namespace(grant: Grant, topic_prefix: str, group_prefix: str) -> bool:
    """Whether an ACL on the broker belongs to the namespace being synced."""
    if grant.resource == "topic":
        if not topic_prefix:
            return grant.name == "*" or grant.name.startswith(("filing.", "settlement.",
                                                                "clearing."))
        return grant.name.startswith(topic_prefix)
    if grant.resource != "group":
        return False
    if grant.name.startswith(f"{group_prefix}."):
        return True
    # the participants' own groups are not namespaced: the production sync owns them
    return not topic_prefix and grant.pattern == "prefixed"


def namespace_grants(topic_prefix: str = "", group_prefix: str = "clearinghouse",
                     reference_dir: str | None = None) -> list[Grant]:
    from shared import topics

    hospitals, agencies = topics.participants(reference_dir)
    return grants(hospitals=hospitals, agencies=agencies, services=service_topics(),
                  topic_prefix=topic_prefix, group_prefix=group_prefix)


def all_principals(reference_dir: str | None = None) -> list[str]:
    from services.registry import SERVICES
    from shared import topics

    hospitals, agencies = topics.participants(reference_dir)
    return principals(hospitals=hospitals, agencies=agencies, services=SERVICES)


def sync_blocking(bootstrap: str, *, cache: Path | None = None, topic_prefix: str = "",
                  group_prefix: str = "clearinghouse", users: bool = True,
                  prune: bool = True, reference_dir: str | None = None) -> dict[str, int]:
    """Logins (with `users`) and the namespace's ACLs; returns counts for a report."""
    from infra.secrets import credentials_path, ensure_credentials

    path = (credentials_path(cache) if cache is not None
            else kafka_clients.credentials_file())
    report = {"principals": 0, "acls": 0, "deleted": 0}
    if users:
        everyone = all_principals(reference_dir)
        passwords = ensure_credentials(path, everyone)
        upsert_users(bootstrap, passwords)
        report["principals"] = len(passwords) - 1
        from infra.secrets import ensure_client_certs

        ensure_client_certs(cache or kafka_clients.cache_dir(), [p for p in everyone
                                                 if not p.startswith("svc-")])
        from shared import participant_keys

        # every hospital and agency signs its submissions (docs/security.md): a key pair
        # for each that has none, in this installation's registry (a bench's generated
        # province keeps keys of its own)
        if reference_dir is None:
            participant_keys.ensure_key_pairs(participant_keys.participants())
    wanted = namespace_grants(topic_prefix, group_prefix, reference_dir)
    owned = ([g for g in current_acls(bootstrap) if _in_namespace(g, topic_prefix, group_prefix)]
             if prune else [])
    report["acls"], report["deleted"] = apply_acls(bootstrap, wanted, owned=owned)
    return report


async def sync(bootstrap: str, **options: object) -> dict[str, int]:
    return await asyncio.to_thread(sync_blocking, bootstrap, **options)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    import argparse

    from shared.config import load_settings

    parser = argparse.ArgumentParser(prog="clearinghouse participants sync")
    parser.add_argument("--prefix", default=os.environ.get("CLEARINGHOUSE_TOPIC_PREFIX", ""))
    parser.add_argument("--group-prefix",
                        default=os.environ.get("CLEARINGHOUSE_GROUP_PREFIX", "clearinghouse"))
    args = parser.parse_args(argv)
    settings = load_settings()
    report = sync_blocking(settings.kafka_bootstrap_servers, topic_prefix=args.prefix,
                           group_prefix=args.group_prefix)
    print(f"participants: {report['principals']} logins, {report['acls']} ACLs "
          f"({report['deleted']} stale deleted); passwords in {kafka_clients.credentials_file()}")
    return 0


async def prepare_namespace(bootstrap: str, topic_prefix: str = "",
                            group_prefix: str = "clearinghouse", *,
                            reference_dir: str | Path | None = None,
                            users: bool = False) -> list[str]:
    """Everything a namespace needs on the broker before its services start: its topics
    (``infra.kafka.ensure_topics``) and its ACLs. The logins are the installation's (made
    by ``infra up`` / ``participants sync``); `users` makes those of `reference_dir`'s
    participants too (a bench's generated province). Idempotent; returns the topics made."""
    from infra.kafka import ensure_topics
    from shared.topics import all_topics

    ref = str(reference_dir) if reference_dir is not None else None
    created = await ensure_topics(bootstrap, all_topics(topic_prefix, ref))
    await sync(bootstrap, topic_prefix=topic_prefix, group_prefix=group_prefix, users=users,
               prune=False, reference_dir=ref)
    return created
