"""Operation sequences as data, and the runner that applies them to a fair queue or a storage.

An `Op` is one call a caller makes. `run` applies a list of them to a target (a policy, which
runs in a fresh `policies.FairQueue`, or a `Storage`) and returns a `Trace`: per step, what
should have been queued by a plain FIFO-per-key model the runner keeps beside the target, what
the target returned, and what it held afterwards. Laws (`fairsched.testing.laws`) read traces;
nothing here judges them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from attrs import field, frozen
from attrs.validators import in_

from policies import FairQueue, InvalidJob, Job, Policy, from_config

from ..storage import DEFAULT_DOMAIN, Storage, Task

#: What an `Op` can ask of a target.
VERBS = ("enqueue", "dispatch", "drain", "complete", "requeue", "revoke", "expire", "set_weight")

_NEEDS: Mapping[str, tuple[str, ...]] = {
    "enqueue": ("task", "key"),
    "revoke": ("task",),
    "set_weight": ("key", "weight"),
}


@frozen(repr=False)
class Op:
    """One call on a fair queue or storage, at time `at` (seconds).

    Verbs: `enqueue` a job (`task` id, `key`, optional `cost` and absolute `deadline`);
    `dispatch` once; `drain` (dispatch until nothing comes); `complete` a running job with a
    `runtime` (seconds; None feeds none) and `requeue` one to the head of its key (`task` names
    it; None means the oldest running job for `complete`, the newest for `requeue`; a job not
    running is skipped); `revoke` a queued `task`; `expire`; `set_weight` of `key` to `weight`.

    >>> print(Op("enqueue", at=0.0, task="t1", key="a", cost=2.0))
    enqueue t1 key=a cost=2
    """

    verb: str = field(validator=in_(VERBS))
    at: float = 0.0
    task: str | None = None
    key: str | None = None
    cost: float | None = None
    deadline: float | None = None
    runtime: float | None = None
    weight: float | None = None

    def __attrs_post_init__(self) -> None:
        missing = [name for name in _NEEDS.get(self.verb, ()) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"Op {self.verb!r} needs {', '.join(missing)}")

    def __repr__(self) -> str:
        named = ("task", "key", "cost", "deadline", "runtime", "weight")
        parts = [repr(self.verb), f"at={self.at!r}"]
        parts += [f"{n}={getattr(self, n)!r}" for n in named if getattr(self, n) is not None]
        return f"Op({', '.join(parts)})"

    def __str__(self) -> str:
        words = [self.verb]
        if self.verb == "set_weight":
            return f"set_weight {self.key}={_num(self.weight)}"
        if self.task is not None:
            words.append(self.task)
        elif self.verb == "complete":
            words.append("(oldest running)")
        elif self.verb == "requeue":
            words.append("(newest running)")
        if self.key is not None:
            words.append(f"key={self.key}")
        for name in ("cost", "deadline", "runtime"):
            value = getattr(self, name)
            if value is not None:
                words.append(f"{name}={_num(value)}")
        return " ".join(words)


#: Queued jobs per key, keys in order of first enqueue.
Backlogs = Mapping[str, tuple[Job, ...]]


@frozen
class Step:
    """One call made while running ops, with what should and what did happen.

    `before`/`after` are what the model says is queued around the call and `running`/
    `running_after` the jobs dispatched and not yet completed or requeued; `weights` are
    those in force during the call (keys not in it weigh 1). `job` is what the target
    returned: the job dispatched, revoked, completed or requeued (None: nothing). `expired`
    are the jobs it handed back as expired; `refused` is True when it refused an enqueue.
    `held`, `sizes`, `total` and `in_flight` are what the target reported afterwards (its
    backlogs, its size per known key, its total, its running count or None if it keeps none).
    """

    index: int
    op: Op
    before: Backlogs
    running: tuple[Job, ...]
    weights: Mapping[str, float]
    after: Backlogs
    running_after: tuple[Job, ...]
    held: Backlogs
    sizes: Mapping[str, int]
    total: int
    in_flight: int | None
    job: Job | None = None
    expired: tuple[Job, ...] = ()
    refused: bool = False

    def pending(self) -> Backlogs:
        """What was queued when the call acted: `before` less the jobs it handed back as
        expired (keys left with nothing are dropped)."""
        if not self.expired:
            return self.before
        gone = list(self.expired)
        out: dict[str, tuple[Job, ...]] = {}
        for key, jobs in self.before.items():
            left = []
            for job in jobs:
                if job in gone:
                    gone.remove(job)
                else:
                    left.append(job)
            if left:
                out[key] = tuple(left)
        return out

    def named(self) -> Job | None:
        """The running job a `complete` or `requeue` acts on (None: none is running)."""
        if self.op.verb not in ("complete", "requeue"):
            return None
        return _named(self.op, list(self.running))

    def weight(self, key: str) -> float:
        """The weight of `key` during the call."""
        return self.weights.get(key, 1.0)


@frozen
class Trace:
    """What running `ops` on a target did, step by step (a `drain` makes several steps).

    `error` says which step raised what when the target raised (the trace stops there);
    `replay` runs the same ops on a fresh target (None when the target was one object, which
    cannot be rebuilt).
    """

    ops: tuple[Op, ...]
    steps: tuple[Step, ...]
    error: str | None = None
    replay: Callable[[], Trace] | None = field(default=None, eq=False, repr=False)

    def dispatched(self) -> list[Job]:
        """The jobs dispatched, in order."""
        return [s.job for s in self.steps if s.op.verb == "dispatch" and s.job is not None]

    def __str__(self) -> str:
        lines = [f"{'step':>5}  {'at':>6}  {'call':<34} result"]
        for number, step in enumerate(self.steps):
            call = str(step.op)
            if step.index < len(self.ops) and self.ops[step.index].verb == "drain":
                call = f"drain: {call}"
            lines.append(f"{number:>5}  {_num(step.op.at):>6}  {call:<34} {_result(step)}".rstrip())
        if self.error is not None:
            lines.append(f"raised: {self.error}")
        return "\n".join(lines)


def _num(value: float | None) -> str:
    return "None" if value is None else f"{value:g}"


def _ids(jobs: Iterable[Job]) -> str:
    return ", ".join(job.id for job in jobs)


def _result(step: Step) -> str:
    verb, job = step.op.verb, step.job
    out = ""
    if verb == "enqueue":
        out = "refused" if step.refused else ""
    elif verb == "dispatch":
        out = f"-> {job.id} (key {job.key})" if job is not None else "-> nothing"
    elif verb == "revoke":
        out = f"-> {job.id}" if job is not None else "-> not queued"
    elif verb in ("complete", "requeue"):
        named = step.named()
        if named is None:
            out = "(nothing running)"
        elif job is None:
            out = f"{named.id}: -> nothing"
        else:
            out = f"{named.id}" + (f" back at the head of {job.key}" if verb == "requeue" else "")
    if step.expired:
        out = f"{out}   expired {_ids(step.expired)}".strip()
    return out


def _named(op: Op, running: Sequence[Job]) -> Job | None:
    if op.task is None:
        if not running:
            return None
        return running[0] if op.verb == "complete" else running[-1]
    return next((job for job in running if job.id == op.task), None)


class _Target(Protocol):
    """What the runner needs of a target; adapters make a queue and a storage look alike."""

    tracks_running: bool

    def weights(self) -> dict[str, float]: ...
    def enqueue(self, job: Job, at: float) -> None: ...
    def dispatch(self, at: float) -> tuple[Job | None, tuple[Job, ...]]: ...
    def expire(self, at: float) -> tuple[Job, ...]: ...
    def complete(self, job: Job, runtime: float | None, at: float) -> Job | None: ...
    def requeue(self, job: Job, at: float) -> Job | None: ...
    def revoke(self, task_id: str, at: float) -> Job | None: ...
    def set_weight(self, key: str, weight: float, at: float) -> None: ...
    def snapshot(self, keys: Iterable[str]) -> tuple[Backlogs, dict[str, int], int, int | None]: ...


class _QueueTarget:
    """A `FairQueue`, which keeps no record of running jobs."""

    tracks_running = False

    def __init__(self, queue: FairQueue) -> None:
        self.queue = queue

    def weights(self) -> dict[str, float]:
        return dict(self.queue.backlog.weights)

    def enqueue(self, job: Job, at: float) -> None:
        self.queue.enqueue(job, at)

    def dispatch(self, at: float) -> tuple[Job | None, tuple[Job, ...]]:
        pick = self.queue.dispatch(at)
        return pick.job, pick.expired

    def expire(self, at: float) -> tuple[Job, ...]:
        return tuple(self.queue.expire(at))

    def complete(self, job: Job, runtime: float | None, at: float) -> Job | None:
        if runtime is not None:
            self.queue.complete(job, runtime)
        return job

    def requeue(self, job: Job, at: float) -> Job | None:
        self.queue.requeue(job, at)
        return job

    def revoke(self, task_id: str, at: float) -> Job | None:
        return self.queue.remove(task_id, at)

    def set_weight(self, key: str, weight: float, at: float) -> None:
        self.queue.set_weight(key, weight, at)

    def snapshot(self, keys: Iterable[str]) -> tuple[Backlogs, dict[str, int], int, int | None]:
        queue = self.queue
        held = {key: tuple(queue.jobs(key)) for key in queue.keys()}
        return held, {key: queue.size(key) for key in keys}, len(queue), None


class _StorageTarget:
    """One domain of a `Storage`; jobs travel as tasks with an empty payload."""

    tracks_running = True

    def __init__(self, storage: Storage, domain: str) -> None:
        self.storage = storage
        self.domain = domain

    def weights(self) -> dict[str, float]:
        return dict(self.storage.policy.weights)

    def enqueue(self, job: Job, at: float) -> None:
        self.storage.enqueue(Task(job, b"", self.domain), now=at)

    def dispatch(self, at: float) -> tuple[Job | None, tuple[Job, ...]]:
        done = self.storage.dispatch(self.domain, now=at)
        job = None if done.task is None else done.task.job
        return job, tuple(task.job for task in done.expired)

    def expire(self, at: float) -> tuple[Job, ...]:
        return tuple(task.job for task in self.storage.expire(self.domain, now=at))

    def complete(self, job: Job, runtime: float | None, at: float) -> Job | None:
        task = self.storage.complete(job.id, self.domain, runtime, now=at)
        return None if task is None else task.job

    def requeue(self, job: Job, at: float) -> Job | None:
        task = self.storage.requeue(job.id, self.domain, now=at)
        return None if task is None else task.job

    def revoke(self, task_id: str, at: float) -> Job | None:
        task = self.storage.revoke(task_id, self.domain, now=at)
        return None if task is None else task.job

    def set_weight(self, key: str, weight: float, at: float) -> None:
        self.storage.set_weight(key, weight, now=at)

    def snapshot(self, keys: Iterable[str]) -> tuple[Backlogs, dict[str, int], int, int | None]:
        storage, domain = self.storage, self.domain
        held = {
            key: tuple(task.job for task in storage.queued(key, domain=domain))
            for key in storage.keys(domain)
        }
        sizes = {key: storage.backlog_size(key, domain) for key in keys}
        return held, sizes, sum(map(len, held.values())), storage.in_flight(domain)


def _is_storage(target: object) -> bool:
    return not isinstance(target, type) and all(
        hasattr(target, name) for name in ("enqueue", "dispatch", "queued", "in_flight")
    )


def _is_policy(target: object) -> bool:
    return not isinstance(target, type) and hasattr(target, "new_state") and hasattr(target, "pick")


def is_factory(target: object) -> bool:
    """Whether `target` is a function of no arguments (or a class) that builds a target,
    rather than a policy, queue or storage object."""
    return callable(target) and not (
        isinstance(target, FairQueue) or _is_storage(target) or _is_policy(target)
    )


def _adapt(target: object, domain: str) -> _Target:
    """The runner's view of a queue, a storage, or a policy (run in a fresh fair queue)."""
    if isinstance(target, FairQueue):
        return _QueueTarget(target)
    if _is_storage(target):
        return _StorageTarget(target, domain)  # type: ignore[arg-type]
    if _is_policy(target) or isinstance(target, (str, Mapping)):
        return _QueueTarget(FairQueue(from_config(target)))  # type: ignore[arg-type]
    raise TypeError(
        f"cannot run ops on {target!r}: expected a policy (object, name or mapping), a "
        "FairQueue, a Storage, or a function of no arguments returning one"
    )


def builder(target: Any) -> tuple[Callable[[], object], bool]:
    """A function building a fresh target from `target`, and whether it builds a new one
    each time (a policy, name, mapping or factory does; a queue or storage object does not).

    Names and mappings are resolved once, here, so a bad configuration raises at once.
    """
    if isinstance(target, FairQueue) or _is_storage(target):
        return (lambda: target), False
    if isinstance(target, (str, Mapping)):
        policy: Policy[Any] = from_config(target)
        return (lambda: policy), True
    if _is_policy(target):
        return (lambda: target), True
    if is_factory(target):
        return target, True
    _adapt(target, DEFAULT_DOMAIN)  # raises the TypeError that explains what is accepted
    raise AssertionError("unreachable")  # pragma: no cover


def run(target: Any, ops: Iterable[Op], *, domain: str = DEFAULT_DOMAIN) -> Trace:
    """Apply `ops` in order to `target` and return the trace of what happened.

    `target` is a policy (object, registry name or `{"policy": ...}` mapping), run in a fresh
    `FairQueue`; a `FairQueue` or a `Storage` (used as it is, in `domain`); or a function of no
    arguments returning any of these. An exception from the target ends the run and is kept
    in `Trace.error`.

    >>> trace = run("lru", [Op("enqueue", task="t1", key="a"), Op("dispatch", at=1.0)])
    >>> [job.id for job in trace.dispatched()]
    ['t1']
    """
    ops = tuple(ops)
    build, fresh = builder(target)
    trace = _Runner(_adapt(build(), domain)).run(ops)
    if fresh:
        return Trace(trace.ops, trace.steps, trace.error, lambda: run(build, ops, domain=domain))
    return trace


class _Runner:
    """Applies ops to one target, keeping the model of what it should hold."""

    def __init__(self, target: _Target) -> None:
        self.target = target
        #: Queued jobs per key, in order; keys stay (in order of first enqueue) when empty.
        self.queued: dict[str, list[Job]] = {}
        self.running: list[Job] = []
        self.weights = target.weights()
        self.steps: list[Step] = []

    def run(self, ops: tuple[Op, ...]) -> Trace:
        for index, op in enumerate(ops):
            try:
                self.apply(index, op)
            except Exception as exc:
                error = f"step {len(self.steps)} ({op}): {type(exc).__name__}: {exc}"
                return Trace(ops, tuple(self.steps), error)
        return Trace(ops, tuple(self.steps))

    def backlogs(self) -> dict[str, tuple[Job, ...]]:
        return {key: tuple(jobs) for key, jobs in self.queued.items() if jobs}

    def remove(self, job: Job) -> None:
        jobs = self.queued.get(job.key, [])
        if job in jobs:
            jobs.remove(job)

    def apply(self, index: int, op: Op) -> None:
        if op.verb == "drain":
            dispatch = Op("dispatch", at=op.at)
            # Each dispatch of a job empties the model by one; the cap ends a target that
            # keeps inventing jobs.
            for _ in range(sum(map(len, self.queued.values())) + 1):
                if self.step(index, dispatch) is None:
                    break
            return
        self.step(index, op)

    def step(self, index: int, op: Op) -> Job | None:
        target, at = self.target, op.at
        before, running, weights = self.backlogs(), tuple(self.running), dict(self.weights)
        job: Job | None = None
        expired: tuple[Job, ...] = ()
        refused = False
        if op.verb == "enqueue":
            assert op.task is not None and op.key is not None
            new = Job(op.task, op.key, at, op.cost, op.deadline)
            if not target.tracks_running and any(j.id == new.id for j in running):
                refused = True  # ids are unique among queued and running jobs, as in a storage
            else:
                try:
                    target.enqueue(new, at)
                except InvalidJob:
                    refused = True
            if not refused:
                self.queued.setdefault(new.key, []).append(new)
        elif op.verb == "dispatch":
            job, expired = target.dispatch(at)
            for gone in (*expired, *(() if job is None else (job,))):
                self.remove(gone)
            if job is not None:
                self.running.append(job)
        elif op.verb == "expire":
            expired = target.expire(at)
            for gone in expired:
                self.remove(gone)
        elif op.verb in ("complete", "requeue"):
            named = _named(op, running)
            if named is not None:
                if op.verb == "complete":
                    job = target.complete(named, op.runtime, at)
                else:
                    job = target.requeue(named, at)
                self.running.remove(named)
                if op.verb == "requeue" and job is not None:
                    self.queued.setdefault(job.key, []).insert(0, job)
        elif op.verb == "revoke":
            assert op.task is not None
            job = target.revoke(op.task, at)
            if job is not None:
                self.remove(job)
        elif op.verb == "set_weight":
            assert op.key is not None and op.weight is not None
            target.set_weight(op.key, op.weight, at)
            self.weights[op.key] = op.weight
        held, sizes, total, in_flight = target.snapshot(self.queued)
        self.steps.append(
            Step(
                index=index,
                op=op,
                before=MappingProxyType(before),
                running=running,
                weights=MappingProxyType(weights),
                after=MappingProxyType(self.backlogs()),
                running_after=tuple(self.running),
                held=MappingProxyType(dict(held)),
                sizes=MappingProxyType(sizes),
                total=total,
                in_flight=in_flight,
                job=job,
                expired=expired,
                refused=refused,
            )
        )
        return job
