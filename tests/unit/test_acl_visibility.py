"""Waiting for a namespace's new ACLs asks the broker about that namespace's resources only
(infra/participants.py `_until_visible`), never for every ACL on the broker."""

from __future__ import annotations

from concurrent.futures import Future

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from infra.participants import _binding, _until_visible
from shared.acls import Grant


class RecordingAdmin:
    """Answers describe_acls from `held`, and keeps every filter it was given; the broker
    applies the ACLs after `late` polls."""

    def __init__(self, held: list[Grant], late: int = 0):
        self.held, self.late = held, late
        self.filters: list[list[tuple[str, str | None, str]]] = [[]]
        self.polls = 0

    def describe_acls(self, f) -> Future:  # type: ignore[no-untyped-def]
        self.filters[-1].append((f.restype.name, f.name, f.resource_pattern_type.name))
        answer: Future = Future()
        visible = self.held if self.polls >= self.late else []
        answer.set_result([
            _binding(g) for g in visible
            if g.resource.upper() == f.restype.name and g.name == f.name
            and g.pattern.upper() == f.resource_pattern_type.name])
        return answer

    def round_done(self) -> None:
        self.polls += 1
        self.filters.append([])


def _grant(name: str, resource: str = "topic", pattern: str = "literal") -> Grant:
    return Grant("agency-220100", resource, pattern, name, "read")


def test_only_the_namespaces_resources_are_described(monkeypatch) -> None:
    import time

    wanted = {_grant("ns.clearing.results.220100"), _grant("ns.settlement.events"),
              _grant("clearinghouse.", "group", "prefixed")}
    others = [_grant(f"other{n}.clearing.results") for n in range(50)]
    admin = RecordingAdmin([*wanted, *others], late=2)
    monkeypatch.setattr(time, "sleep", lambda _: admin.round_done())
    _until_visible("unused:9092", wanted, admin=admin)
    asked = [f for round_ in admin.filters for f in round_]
    assert asked, "the broker was asked"
    assert all(kind != ResourceType.ANY.name for kind, _, _ in asked)
    assert {name for _, name, _ in asked} == {g.name for g in wanted}
    assert admin.polls == 2  # it waited until the broker showed them


def test_a_visible_resource_is_not_asked_again(monkeypatch) -> None:
    import time

    seen, late = _grant("ns.a"), _grant("ns.b")

    class Partial(RecordingAdmin):
        def describe_acls(self, f):  # type: ignore[no-untyped-def]
            self.held = [seen] if self.polls == 0 else [seen, late]
            return super().describe_acls(f)

    admin = Partial([])
    monkeypatch.setattr(time, "sleep", lambda _: admin.round_done())
    _until_visible("unused:9092", {seen, late}, admin=admin)
    assert [name for _, name, _ in admin.filters[0]] == ["ns.a", "ns.b"]
    assert [name for _, name, _ in admin.filters[1]] == ["ns.b"]


def test_the_binding_round_trip() -> None:
    b = _binding(_grant("ns.a"))
    assert isinstance(b, AclBinding)
    assert b.restype == ResourceType.TOPIC
    assert b.resource_pattern_type == ResourcePatternType.LITERAL
    assert b.operation == AclOperation.READ and b.permission_type == AclPermissionType.ALLOW
