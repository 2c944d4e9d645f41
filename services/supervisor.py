"""The one way service processes are started: ``clearinghouse serve all``, the demo, the
bench and the tests all start the services through `Supervisor`.

One place each for

- a service process's environment (`service_environment`): where the broker, the database
  and the topic namespace are, and who the service is to Kafka (``svc-<name>`` as
  ``KAFKA_PRINCIPAL``; the password comes from the credentials file, never from a
  ``KAFKA_SASL_PASSWORD`` meant for another principal);
- how many processes of a service run (`Supervisor.start(..., instances=N)`: one consumer
  group, Kafka shares the partitions among them);
- the command (``python -m services.registry NAME``), its log file, `die_with_parent` (a
  killed supervisor leaves no service running), and stopping (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.registry import SERVICES
from shared.config import REPO_ROOT
from shared.messaging.clients import service_principal
from shared.running import die_with_parent

#: How long a stopped process has to end after SIGTERM before it is sent SIGKILL.
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Deployment:
    """Where the services run; a field left None is as this process's environment says."""

    kafka_bootstrap_servers: str | None = None
    database_url: str | None = None
    topic_prefix: str | None = None
    reference_dir: Path | None = None
    #: Consumer groups are ``<group_prefix>.<service>``.
    group_prefix: str | None = None
    #: The participants' public keys the services verify submissions against.
    participant_keys: Path | None = None
    #: Further variables (``CLEARINGHOUSE_SIGNATURES=off`` for the bench's comparison).
    extra: Mapping[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        named = {"KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
                 "DATABASE_URL": self.database_url,
                 "CLEARINGHOUSE_TOPIC_PREFIX": self.topic_prefix,
                 "CLEARINGHOUSE_REFERENCE_DIR": self.reference_dir,
                 "CLEARINGHOUSE_GROUP_PREFIX": self.group_prefix,
                 "CLEARINGHOUSE_PARTICIPANT_KEYS": self.participant_keys}
        found = {variable: str(value) for variable, value in named.items() if value is not None}
        return {**found, **self.extra}


def service_environment(name: str, deployment: Deployment | None = None,
                        parent: Mapping[str, str] | None = None,
                        **extra: str) -> dict[str, str]:
    """The environment of a process of service `name` (or of another module: then without a
    principal): `parent` (this process's environment), the deployment's variables, the
    service's Kafka principal, then `extra`."""
    env = dict(os.environ if parent is None else parent)
    env.update((deployment or Deployment()).variables())
    if name in SERVICES:
        principal = service_principal(name)
        if env.get("KAFKA_PRINCIPAL") != principal:
            env.pop("KAFKA_SASL_PASSWORD", None)  # another principal's password
        env["KAFKA_PRINCIPAL"] = principal
    env.setdefault("PYTHONUNBUFFERED", "1")  # log lines reach the log file as written
    env.update(extra)
    return env


def instance_name(name: str, number: int) -> str:
    """``clearing`` for the first process of a service, ``clearing-2`` for the second…"""
    return name if number == 1 else f"{name}-{number}"


def stop_processes(processes: Iterable[subprocess.Popen[bytes]],
                   timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM to every process still running, then wait for each; SIGKILL to one that has
    not ended after `timeout` seconds. Returns their exit statuses."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return [process.returncode for process in processes]


class Supervisor:
    """Service processes on one deployment, by instance name (`instance_name`).

    `logs`: a folder for one log file per instance (`log_name` of the instance name,
    ``<instance>.log`` unless told); None: the processes write to this one's stdout and
    stderr. `new_session`: the processes do not get the terminal's Ctrl-C (the caller stops
    them). `env`: variables every process gets on top of `service_environment`.
    """

    def __init__(self, deployment: Deployment | None = None, logs: Path | None = None, *,
                 log_name: Callable[[str], str] = "{}.log".format,
                 env: Mapping[str, str] | None = None, cwd: Path | None = REPO_ROOT,
                 new_session: bool = False, stop_timeout: float = STOP_TIMEOUT):
        self.deployment = deployment or Deployment()
        self.logs, self.log_name = logs, log_name
        self.env = dict(env or {})
        self.cwd, self.new_session, self.stop_timeout = cwd, new_session, stop_timeout
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: How each instance was started (argv, environment), for `restart`.
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}

    def start(self, name: str, *, instances: int = 1, module: str | None = None,
              wrapper: Sequence[str] = (), **extra_env: str) -> list[str]:
        """Start `instances` processes of service `name` (or run `module`, a service-like
        module such as a test's probe, by that name); `wrapper`: arguments that run the module
        under another (``("-m", "tests.faults.crash", "2")``). Returns the instance names."""
        if instances < 1:
            raise ValueError(f"instances must be 1 or more, got {instances}")
        if module is None and name not in SERVICES:
            raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
        target = [module] if module else ["services.registry", name]
        argv = [sys.executable, *(wrapper or ("-m",)), *target]
        env = service_environment(name, self.deployment, **{**self.env, **extra_env})
        started = []
        for number in range(1, instances + 1):
            instance = instance_name(name, number)
            self.processes[instance] = self._spawn(argv, env, instance)
            self._commands[instance] = (argv, env)
            started.append(instance)
        return started

    def restart(self, instance: str) -> subprocess.Popen[bytes]:
        """Start `instance` (one this supervisor started before, e.g. ``settlement-2`` after
        it was killed) again with the same command and environment; a running one first
        stops."""
        if instance not in self._commands:
            raise ValueError(f"{instance!r} was never started here")
        if instance in self.processes:
            self.stop(instance)
        argv, env = self._commands[instance]
        self.processes[instance] = self._spawn(argv, env, instance)
        return self.processes[instance]

    def _spawn(self, argv: list[str], env: dict[str, str], instance: str
               ) -> subprocess.Popen[bytes]:
        log = None
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            log = self.log_path(instance).open("ab")
        try:
            return subprocess.Popen(
                argv, env=env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT if log else None,
                start_new_session=self.new_session, preexec_fn=die_with_parent())
        finally:
            if log is not None:
                log.close()  # the child holds its own copy

    def log_path(self, instance: str) -> Path:
        assert self.logs is not None, "the processes write to this process's output"
        return self.logs / self.log_name(instance)

    def instances(self, name: str) -> list[str]:
        """The running instance names of service `name`."""
        return [i for i in self.processes if i == name or i.startswith(f"{name}-")
                and i.removeprefix(f"{name}-").isdigit()]

    def exited(self) -> dict[str, int]:
        """The processes that ended, with their exit statuses."""
        return {i: p.returncode for i, p in self.processes.items() if p.poll() is not None}

    def kill(self, instance: str) -> subprocess.Popen[bytes]:
        """SIGKILL: no shutdown hook runs. The process is forgotten."""
        process = self.processes.pop(instance)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        return process

    def stop(self, *instances: str) -> dict[str, int]:
        """Stop the named instances (all without names) with SIGTERM, then SIGKILL; they are
        forgotten. Returns their exit statuses."""
        names = list(instances or self.processes)
        processes = [self.processes.pop(i) for i in names if i in self.processes]
        return dict(zip(names, stop_processes(processes, self.stop_timeout), strict=False))

    def supervise(self, poll: float = 0.2) -> int:
        """Until SIGTERM or SIGINT, or until a process ends by itself (then the others are
        stopped): 0 when stopped, else the status of the process that ended (1 for 0)."""
        stopping = False

        def stop(_signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True
            for process in self.processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        exit_code = 0
        while self.processes:
            for instance, code in self.exited().items():
                del self.processes[instance]
                if not stopping:
                    print(f"service {instance} exited with status {code}; stopping the others",
                          file=sys.stderr)
                    exit_code = code or 1
                    stop(signal.SIGTERM, None)
            time.sleep(poll)
        return exit_code
