"""A study of ``nextchar tune`` in an Optuna storage, shared by every worker that names it.

Each trial is a run folder ``DIR/trial-NNNN`` trained by ``nextchar train``'s own trainer; each evaluation
reports the validation loss to the trial and asks the pruner whether to stop. Workers run trials until
the study holds ``trials`` of them finished (complete, pruned, or failed by divergence); a trial number
past that count, drawn by a worker racing another, is marked surplus and not run, so together the
workers run exactly the requested number. A trial whose worker died is noticed by Optuna's heartbeat
(RDB storages: SQLite, PostgreSQL, MySQL) and retried; one stopped by Ctrl-C is queued for a retry at
once. A retry trains in the original trial's folder with ``--resume``, so no finished step is lost.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

DIRECTION, METRIC = "minimize", "val_loss"
HEARTBEAT = 30
"""Seconds between a running trial's heartbeats; a trial silent for twice this is taken as dead."""


def default_storage(out: Path) -> str:
    return f"sqlite:///{(out / 'study.db').resolve()}"


RACE_SIGNS = ("already exists", "locked", "UNIQUE constraint", "alembic")
"""What a worker sees when another creates the same new database's tables at the same moment."""


def open_storage(url: str, heartbeat: int = HEARTBEAT, attempts: int = 5):
    """An Optuna storage for ``url`` (``journal:PATH`` for a journal file), or a one-line error. Workers
    that start together on a new database race to create its tables: the loser tries again."""
    for attempt in range(1, attempts):
        try:
            return _open_storage(url, heartbeat)
        except ValueError as error:
            if not any(sign in str(error) for sign in RACE_SIGNS):
                raise
            time.sleep(0.5 * attempt)
    return _open_storage(url, heartbeat)


def _open_storage(url: str, heartbeat: int):
    import optuna

    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len("journal:"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        # SQLite: wait up to a minute for another worker's write lock, not sqlite3's default 5 s.
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                          grace_period=2 * heartbeat,
                                          **{_stale_callback_name(): _retry_callback()(max_retry=None)})
    except Exception as error:  # noqa: BLE001 - SQLAlchemy, OS and URL errors alike end as one line
        raise ValueError(f"tune: --storage {url!r} cannot be opened: {type(error).__name__}: "
                         f"{(str(error).splitlines() or [''])[0][:160]}") from None


def refuse_in_memory(url: str) -> None:
    """An in-memory database is refused: nothing in it outlives the command, no other worker can join it,
    and Optuna's heartbeat thread cannot see it (``open_tuning`` asks before it makes any folder)."""
    if in_memory(url):
        raise ValueError(f"tune: --storage {url!r} is an in-memory database: no trial would be kept and no other "
                         "worker could join; give a file (sqlite:///runs/tune/study.db) or leave --storage out")


def in_memory(url: str) -> bool:
    """True for SQLite URLs without a file: ``sqlite://``, ``sqlite:///``, ``sqlite:///:memory:``, mode=memory."""
    if not url.startswith("sqlite"):
        return False
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # not a URL at all: the opening names it
    return parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"


def unreadable(url: str, error: Exception) -> ValueError:
    """One line for a storage whose contents Optuna cannot read (a damaged file, a foreign schema)."""
    return ValueError(f"tune: --storage {url!r} cannot be read: {type(error).__name__}: "
                      f"{(str(error).splitlines() or [''])[0][:160]}; move the damaged database aside, or give "
                      "another --out or --storage")


def _retry_callback():
    """Optuna's callback that re-queues a trial whose heartbeat stopped (renamed in Optuna 4.9)."""
    import optuna.storages as storages

    return getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback


def _stale_callback_name() -> str:
    import inspect

    from optuna.storages import RDBStorage

    names = inspect.signature(RDBStorage).parameters
    return "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in names else "failed_trial_callback"


def open_study(name: str, storage, sampler, pruner, metric: str = METRIC, space: dict[str, str] | None = None,
               url: str = "the storage"):
    """Create the study, or load it; one that minimises another metric (or maximises), or was made with
    another search space (``space``: each dimension's spec by name), is refused, and one Optuna cannot
    read (``url`` damaged) is one line."""
    import optuna

    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction=DIRECTION, load_if_exists=True)
        direction, recorded = study.direction, study.user_attrs.get("metric")
    except Exception as error:  # noqa: BLE001 - Optuna, SQLAlchemy and sqlite3 fail in many ways on damaged rows
        raise unreadable(url, error) from None
    if direction != optuna.study.StudyDirection.MINIMIZE:
        raise ValueError(f"tune: study {name!r} in this storage maximises; nextchar tune minimises {metric}")
    if recorded is None:
        study.set_user_attr("metric", metric)
    elif recorded != metric:
        raise ValueError(f"tune: study {name!r} in this storage optimises {recorded!r}, not {metric!r}")
    if space is not None:
        _check_space(study, name, space)
    return study


def _check_space(study, name: str, space: dict[str, str]) -> None:
    """A rerun must search the space its study was made with: the stored trials were drawn from it, and the
    sampler would go on mixing two spaces. A study from before spaces were stored takes this one."""
    stored = study.user_attrs.get("space")
    if stored is None:
        study.set_user_attr("space", space)
        return
    if stored == space:
        return
    differences = [f"{n}: {stored.get(n, 'absent')} stored, {space.get(n, 'absent')} given"
                   for n in sorted(set(stored) | set(space)) if stored.get(n) != space.get(n)]
    raise ValueError(f"tune: study {name!r} in this storage searches another space ({'; '.join(differences)}); "
                     "rerun with the study's own --param and train flags, or give a new --study or --out")


def retry_of(trial) -> int | None:
    """The number of the trial this one retries, if it is a retry."""
    own = trial.user_attrs.get("retry_of")
    return own if own is not None else _retry_callback().retried_trial_number(trial)


def finished(trial) -> bool:
    """Complete, pruned, or failed for a reason of its own (divergence, an error): an answer, not a crash."""
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and "reason" in trial.user_attrs)


def counted(trials) -> list:
    """The trials that fill the study's count, in number order: neither surplus nor replaced by a retry."""
    retried = {retry_of(t) for t in trials} - {None}
    return sorted((t for t in trials if not t.user_attrs.get("surplus") and t.number not in retried),
                  key=lambda t: t.number)


def root_number(trials: dict, number: int) -> int:
    """The first trial of a chain of retries: whose folder they all train in."""
    while number in trials and retry_of(trials[number]) is not None:
        number = retry_of(trials[number])
    return number


@dataclass
class TrialRunner:
    """Runs one trial as a run folder: ``runner(trial) -> best validation loss`` (Optuna's objective)."""

    out: Path
    space: dict
    train_run: Callable[..., Any]
    """(flag values, folder, resume, on_eval) -> the trainer's result; raises on divergence or Ctrl-C."""
    wanted: int
    max_steps: int | None = None
    """Each trial's budget in steps: a retry whose folder already holds it completes from its checkpoint."""

    def __call__(self, trial) -> float:
        from ..step import NonFiniteLossError
        from .space import suggest

        trials = {t.number: t for t in trial.study.get_trials(deepcopy=False)}
        if [t.number for t in counted(list(trials.values()))].index(trial.number) >= self.wanted:
            trial.set_user_attr("surplus", True)  # another worker took the last slot first
            raise _Surplus()
        values = suggest(trial, self.space)
        folder = self.out / f"trial-{root_number(trials, trial.number):04d}"
        trial.set_user_attr("folder", str(folder))
        trial.set_user_attr("flags", values)
        started = time.perf_counter()
        resume = (folder / "last.safetensors").is_file()
        done = _finished_run(folder, self.max_steps) if resume else None
        if done is not None:  # stopped after its last step was saved: its answer is in the folder
            return self._completed(trial, folder, values, done)
        try:
            result = self.train_run(values, folder, resume, self._reporter(trial, folder, values, started))
        except NonFiniteLossError as error:
            self._failed(trial, folder, values, "diverged", error)
            raise
        except (ValueError, OSError, RuntimeError) as error:
            self._failed(trial, folder, values, "error", error)
            raise
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        return self._scored(trial, folder, values, result.best_val_loss)

    def _completed(self, trial, folder: Path, values: dict, checkpoint) -> float:
        """A retry of a trial that had trained all its steps: its evaluations reported as they were (the pruner
        is not asked again: it let them pass when they were made), its best validation loss its value."""
        for record in checkpoint.evals:
            if record.get("val_loss") is not None:
                trial.report(record["val_loss"], record["step"])
        trial.set_user_attr("steps", checkpoint.step)
        trial.set_user_attr("seconds", round(checkpoint.seconds, 3))
        return self._scored(trial, folder, values, checkpoint.best_val_loss)

    def _scored(self, trial, folder: Path, values: dict, best_val_loss: float | None) -> float:
        """The trial's value, its best validation loss, recorded as COMPLETE in its folder; a run without
        validation text cannot be scored."""
        if best_val_loss is None:
            self._failed(trial, folder, values, "error", ValueError("no validation loss (--val-fraction 0?)"))
            raise ValueError("tune: a trial needs validation text (--val-fraction > 0) to be scored")
        _write_trial(folder, trial.number, values, "COMPLETE", best_val_loss)
        return best_val_loss

    @staticmethod
    def _reporter(trial, folder: Path, values: dict, started: float) -> Callable[[dict], None]:
        def on_eval(record: dict) -> None:
            import optuna

            trial.set_user_attr("steps", record["step"])
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
            if record.get("val_loss") is None:
                return
            trial.report(record["val_loss"], record["step"])
            if trial.should_prune():
                _write_trial(folder, trial.number, values, "PRUNED", record["val_loss"])
                raise optuna.TrialPruned(f"pruned at step {record['step']} (validation loss "
                                         f"{record['val_loss']:.4f})")
        return on_eval

    @staticmethod
    def _failed(trial, folder: Path, values: dict, reason: str, error: Exception) -> None:
        trial.set_user_attr("reason", reason)
        trial.set_user_attr("message", str(error)[:300])
        _write_trial(folder, trial.number, values, "FAIL", None, str(error))


def _finished_run(folder: Path, max_steps: int | None):
    """The checkpoint in ``folder`` when it holds ``max_steps`` steps already (else None)."""
    from ..run.checkpoint import load_checkpoint

    if max_steps is None:
        return None
    checkpoint = load_checkpoint(folder / "last.safetensors")
    return checkpoint if checkpoint.step >= max_steps else None


class _Surplus(Exception):
    """A trial number past the study's count: not run."""


def _write_trial(folder: Path, number: int, values: dict, state: str, value: float | None,
                 message: str | None = None) -> None:
    """The trial's parameters and state, in its run folder."""
    from ..outputs import write_json

    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "trial.json", {"number": number, "params": values, "state": state, "value": value,
                                       "message": message})


def run_workers(study, runner: TrialRunner, wanted: int, timeout: float | None, progress: Callable[[int], None],
                poll: float = 2.0) -> None:
    """Run trials until the study holds ``wanted`` finished ones (or ``timeout`` seconds pass). While the
    remaining slots are held by other workers' running trials, wait: a dead one is failed by the heartbeat
    and comes back as a retry."""
    import optuna
    from optuna.trial import TrialState

    from ..run.interrupt import TrainingInterrupted
    from ..step import NonFiniteLossError

    deadline = None if timeout is None else time.monotonic() + timeout
    seen = -1
    while deadline is None or time.monotonic() < deadline:
        optuna.storages.fail_stale_trials(study)
        every = study.get_trials(deepcopy=False)
        trials = counted(every)
        done = sum(finished(t) for t in trials)
        if done != seen:
            progress(done)
            seen = done
        if done >= wanted:
            return
        open_slots = wanted - len(trials)
        waiting = any(t.state == TrialState.WAITING for t in every)
        if open_slots <= 0 and not waiting:
            time.sleep(poll)  # the last slots run elsewhere
            continue
        try:
            study.optimize(runner, n_trials=1, catch=(NonFiniteLossError, _Surplus), gc_after_trial=False)
        except (KeyboardInterrupt, TrainingInterrupted):
            _queue_retry(study)
            raise


def _queue_retry(study) -> None:
    """After Ctrl-C: the interrupted trial comes back first on the next run, in its own folder."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {retry_of(t) for t in trials}
    for t in trials:
        if t.state in (TrialState.FAIL, TrialState.RUNNING) and not finished(t) and not t.user_attrs.get("surplus") \
                and t.number not in retried and "folder" in t.user_attrs:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)


def trial_records(study) -> list[dict]:
    """Every counted trial as the JSON's ``trials`` entry."""
    records = []
    for t in counted(study.get_trials(deepcopy=False)):
        records.append({"number": t.number, "state": t.state.name, "params": t.user_attrs.get("flags", t.params),
                        "value": t.value if t.value is not None else _last_value(t),
                        "steps": t.user_attrs.get("steps"), "seconds": t.user_attrs.get("seconds"),
                        "folder": t.user_attrs.get("folder"), "retry_of": retry_of(t),
                        "message": t.user_attrs.get("message")})
    return records


def _last_value(trial) -> float | None:
    """A pruned trial's best reported validation loss (what the pruner judged it on)."""
    values = list(trial.intermediate_values.values())
    return min(values) if values else None


