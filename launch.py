"""Run an experiment: ``uv run launch.py --config=configs/gpt.py:tiny [--fdl_set=...]``.

Order of events: load the config function, apply ``--fiddler`` / ``--fdl_set`` in command-line
order, build and validate it, lock the workdir, check a resumed run's config for changes,
write ``config.json`` + ``config.txt``, then train (resuming from the newest usable
checkpoint). A user mistake prints one ``error:`` line, writes nothing and exits with code 2.

Exit codes: 0 finished; 1 training failed (non-finite loss, checkpoint write error); 2 a
user mistake; 75 preempted by SIGTERM/SIGINT/SIGUSR1 after saving a checkpoint (requeue).
"""

from __future__ import annotations

import time

STARTED_AT = time.time()

import sys  # noqa: E402

from theseus import host_memory  # noqa: E402

try:  # restarts this process once, before jax loads, to back its heap with huge pages
    STARTED_AT = host_memory.reexec_with_huge_pages(STARTED_AT)
except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)

from absl import app, flags, logging  # noqa: E402

from theseus.config import config_from_flags, define_flags, workdir_from_flags  # noqa: E402

define_flags()
flags.DEFINE_bool("allow_config_change", False,
                  "Resume even though the config changes what the run computes.")
flags.DEFINE_bool("from_scratch", False,
                  "If no checkpoint in the workdir can be restored, move them aside and start over.")
flags.DEFINE_string("xm", None, "Launch through xmanager: local, slurm:CLUSTER, vertex:CLUSTER "
                    "or ssh:CLUSTER (see docs/launching.md).")
flags.DEFINE_multi_string("sweep", [], "Sweep a field, path=v1,v2 (repeatable: the cartesian "
                          "product); one work unit per point. Implies --xm=local if no --xm.")
flags.DEFINE_string("clusters", None, "Clusters file (default $THESEUS_CLUSTERS or "
                    "~/.theseus/clusters.py).")
flags.DEFINE_string("chip", None, "Chip to ask a cluster for (h100, v5p-16, v6e, ...).")
flags.DEFINE_integer("n_chips", None, "How many chips to ask a cluster for.")
FLAGS = flags.FLAGS
USAGE_ERROR = 2


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def main(argv: list[str]) -> None:
    """Entry point after absl parsed the flags."""
    if not FLAGS["verbosity"].present:  # orbax and jax log a page of INFO lines otherwise
        logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; overrides go in --fdl_set=path=value.")
    if FLAGS.xm or FLAGS.sweep:  # through xmanager: work units run launch.py without --xm
        from theseus.config import ConfigError
        from theseus.launch import launch_from_flags

        try:
            sys.exit(launch_from_flags(FLAGS))
        except ConfigError as e:
            _fail(str(e))
    from theseus.distributed import initialize_from_env

    try:
        initialize_from_env()  # multi-process runs join their cluster before any JAX work
    except ValueError as e:
        _fail(str(e))
    from theseus.runner import RUN_ERRORS, describe, exit_code_for, run

    try:
        workdir = workdir_from_flags()
        summary = run(config_from_flags(), workdir, started_at=STARTED_AT,
                      allow_config_change=FLAGS.allow_config_change,
                      from_scratch=FLAGS.from_scratch)
    except RUN_ERRORS as e:  # the documented ways a run ends early; anything else is a bug
        code = exit_code_for(e)
        print(f"{'stopped' if code == 75 else 'error'}: {e}", file=sys.stderr)
        sys.exit(code)
    print(describe(summary, workdir))


if __name__ == "__main__":
    app.run(main)
