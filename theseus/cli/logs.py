"""``theseus logs RUN``: the state and output of a submitted SLURM job (or SSH run).

The job is found in this machine's submission records (``theseus.launch.records``); its
state comes from ``scontrol show job`` (or ``squeue``), its output from its log file on the
login node. ``theseus status`` shows the same states in its "submitted jobs" table.
"""

from __future__ import annotations

import argparse

from theseus.cli.common import add_subcommand

EXAMPLES = """\
  theseus logs my-run             # state line, then the whole log of its newest job
  theseus logs my-run --tail 50   # the last 50 lines
  theseus logs 1234               # by SLURM job id

The state line goes to stderr and the log to stdout, so `theseus logs my-run | grep loss`
filters the log only.
"""
JOB_HEADER = ("RUN", "CLUSTER", "JOB", "STATE", "RESTARTS", "RUN TIME")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus logs``."""
    parser = add_subcommand(subparsers, "logs", "a submitted job's state and log",
                            "Print the state of RUN's newest SLURM job (from scontrol/squeue) "
                            "and its log file.", EXAMPLES)
    parser.add_argument("run", metavar="RUN", help="the run's name or the SLURM job id")
    parser.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    parser.set_defaults(func=run)


def state_line(record: dict, info: dict[str, str]) -> str:
    """``job 12 on mycluster (my-run): RUNNING, 1 restart, run time 00:01:02``."""
    restarts = info.get("Restarts", "0")
    line = f"job {record['job_id']} on {record['cluster']} ({record['name']}): {info['JobState']}"
    if info.get("Reason") not in (None, "None"):
        line += f" ({info['Reason']})"
    if restarts != "0":
        line += f", {restarts} restart{'s' if restarts != '1' else ''}"
    if info.get("RunTime"):
        line += f", run time {info['RunTime']}"
    return line


def run(args: argparse.Namespace) -> int:
    """Prints the state line (stderr) and the log (stdout)."""
    import sys

    from theseus.config.errors import ConfigError
    from theseus.launch import records, slurm

    if args.tail is not None and args.tail < 1:
        raise ConfigError(f"--tail {args.tail} must be a positive number of lines")
    found = records.find(args.run)
    if not found:
        names = sorted({r["name"] for r in records.load_all()})
        raise ConfigError(f"no submitted job named {args.run!r} in {records.jobs_dir()}; "
                          f"known: {', '.join(names) or 'none'}")
    record = found[-1]
    print(state_line(record, job_info(record)), file=sys.stderr)
    print(slurm.read_log(slurm.login_cluster(record), record["log_path"], args.tail), end="")
    return 0


def job_info(record: dict) -> dict[str, str]:
    """A submission's state: scontrol/squeue for SLURM jobs, the host for SSH runs."""
    if record.get("kind") == "ssh":
        from theseus.launch import ssh

        return ssh.job_info(record)
    from theseus.launch import slurm

    return slurm.job_info(slurm.login_cluster(record), record["job_id"])


def render_jobs(limit: int = 10) -> str | None:
    """The newest submitted jobs as a table (None when there are none)."""
    from theseus.launch import records

    rows = [JOB_HEADER]
    for record in records.load_all()[-limit:]:
        info = job_info(record)
        rows.append((record["name"], record["cluster"], record["job_id"], info["JobState"],
                     info.get("Restarts", "-"), info.get("RunTime", "-")))
    if len(rows) == 1:
        return None
    widths = [max(len(row[i]) for row in rows) for i in range(len(JOB_HEADER))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)
