"""An xmanager executor for backends xmanager has none for: SLURM, SSH hosts, current Vertex AI.

xmanager 0.8.5 launches locally (a binary or a container), on Vertex AI (TPU v2/v3 only) and
on Kubernetes. theseus's other targets plug into the same experiment as a ``Remote``
executor: its job carries a ready ``submit`` function (built by the target's module) that
returns where the job went (a SLURM job id, ``host pid log``, a CustomJob name). The
experiment and its work units are recorded in xmanager's database like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import attr
from xmanager import xm
from xmanager.xm import job_operators
from xmanager.xm_local import handles, registry
from xmanager.xm_local import status as local_status


@attr.s(auto_attribs=True)
class RemoteSpec(xm.ExecutorSpec):
    """The (empty) packaging spec of a ``Remote`` executor."""


@attr.s(auto_attribs=True)
class Shipped(xm.Executable):
    """What a remote job runs: described by the target, shipped by its ``submit``."""

    name: str
    description: str = ""


@attr.s(auto_attribs=True)
class Remote(xm.Executor):
    """Runs ``submit()`` when the work unit launches; ``results`` collects what it returns."""

    submit: Callable[[], str]
    results: list = attr.Factory(list)

    Spec = RemoteSpec

    def __attrs_post_init__(self) -> None:
        register()

    @classmethod
    async def launch(cls, local_experiment_unit: Any, job_group: xm.JobGroup) -> Sequence[Any]:
        """Submits every Remote job of the group (off the event loop: it blocks on ssh)."""
        return await registry.get_launch_method(cls)(local_experiment_unit, job_group)


@attr.s(auto_attribs=True)
class Submitted(handles.ExecutionHandle):
    """A submitted remote job: where it went. It runs on its own; nothing to wait for here."""

    where: str

    async def wait(self) -> None:
        """Returns at once: the job's progress is read from its workdir and logs."""

    def get_status(self) -> local_status.LocalWorkUnitStatus:
        """Submitted jobs are tracked by ``theseus status``, not here."""
        raise NotImplementedError("read the run's status with `theseus status`")


async def _launch(local_experiment_unit: Any, job_group: xm.JobGroup) -> list[Submitted]:
    """Calls each Remote job's ``submit`` and records where it went."""
    del local_experiment_unit
    jobs = job_operators.collect_jobs_by_filter(job_group, lambda j: isinstance(j.executor, Remote))
    submitted = []
    for job in jobs:
        where = await asyncio.to_thread(job.executor.submit)
        job.executor.results.append(where)
        submitted.append(Submitted(where))
    return submitted


def register() -> None:
    """Registers the Remote executor with xmanager's local backend (idempotent)."""
    if not registry.is_registered(Remote):
        registry.register(Remote, launch=_launch)
