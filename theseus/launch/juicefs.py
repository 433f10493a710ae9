"""JuiceFS in job scripts: mount the volume on every node when a job starts, unmount at exit.

The metadata password never appears in argv, a script or a log: ``juicefs`` reads it from
its ``META_PASSWORD`` environment variable. With ``password_env`` the submitter puts it in
the job's environment (sbatch's own environment, or ssh's stdin for a remote login); with
``password_file`` the job script reads it on the node at run time, after checking that the
file's mode is 0600. The script unsets it before the training processes start.
"""

from __future__ import annotations

import shlex

from theseus.launch.cluster import JuiceFS

PASSWORD_VAR = "META_PASSWORD"  # what juicefs reads


def shell_path(path: str) -> str:
    """A cluster path quoted for bash, with a leading ``~/`` expanded on the node."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def password_lines(jfs: JuiceFS) -> list[str]:
    """Bash lines that leave the password in ``$META_PASSWORD`` (from the file, if any)."""
    if jfs.password_file is None:
        return []
    file = shell_path(jfs.password_file)
    return [
        f"JFS_PASSWORD_FILE={file}",
        'if [ ! -r "$JFS_PASSWORD_FILE" ]; then',
        ('  echo "error: the JuiceFS password file $JFS_PASSWORD_FILE is missing or unreadable '
        'on $(hostname)" >&2; exit 2'),
        "fi",
        'case "$(stat -c %a "$JFS_PASSWORD_FILE")" in',
        "  600|400) ;;",
        ('  *) echo "error: the JuiceFS password file $JFS_PASSWORD_FILE has mode '
        '$(stat -c %a "$JFS_PASSWORD_FILE"); make it private with chmod 600" >&2; exit 2;;'),
        "esac",
        f'{PASSWORD_VAR}="$(cat "$JFS_PASSWORD_FILE")"; export {PASSWORD_VAR}',
    ]


def mount_command(jfs: JuiceFS, juicefs: str = '"$JUICEFS"') -> str:
    """The foreground mount one node runs (skipped where the volume is already mounted)."""
    mount = shell_path(jfs.mount)
    args = (f"mount --no-usage-report --cache-dir {shell_path(jfs.cache_dir)} "
            f"--cache-size {jfs.cache_size_mib} {shlex.quote(jfs.meta_url)} {mount}")
    return (f"mkdir -p {mount} {shell_path(jfs.cache_dir)} && "
            f"if mountpoint -q {mount}; then echo 'JuiceFS already mounted at '{mount}; "
            f"else exec {juicefs} {args}; fi")


def mount_lines(jfs: JuiceFS) -> list[str]:
    """Bash lines for the batch script: mount on every node as a background step, wait for
    it here, unmount at exit (the trap), then drop the password from the environment."""
    mount = shell_path(jfs.mount)
    node_cmd = shlex.quote(mount_command(jfs))
    step = ('srun --overlap --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" '
            "--ntasks-per-node=1 "
            '--kill-on-bad-exit=0 --open-mode=append --output="$JFS_LOG"')
    umount = 'bash -c \'mountpoint -q "$0" && "$JUICEFS" umount "$0"; true\' "$JFS_MOUNT"'
    failed = 'cat "$JFS_LOG" >&2; echo "error: the JuiceFS mount of $JFS_MOUNT'
    return [
        *password_lines(jfs),
        f"JFS_MOUNT={mount}",
        'JFS_LOG="$JOB_DIR/juicefs-$SLURM_JOB_ID.log"  # the mounts\' own messages',
        f"JFS_WAS_MOUNTED=0; mountpoint -q {mount} && JFS_WAS_MOUNTED=1",
        f"{step} --job-name=juicefs-mount bash -c {node_cmd} &",
        "JFS_PID=$!",
        "theseus_unmount() {  # on every node; the mount step then ends by itself",
        '  [ "$JFS_WAS_MOUNTED" = 0 ] || return 0',
        f"  {step} --job-name=juicefs-umount {umount}",
        '  for _ in $(seq 100); do kill -0 "$JFS_PID" 2>/dev/null || break; sleep 0.1; done',
        '  kill -TERM "$JFS_PID" 2>/dev/null; wait "$JFS_PID" 2>/dev/null',
        "  return 0",
        "}",
        "CLEANUP+=(theseus_unmount)",
        "for _ in $(seq 600); do",
        '  mountpoint -q "$JFS_MOUNT" && break',
        f'  kill -0 "$JFS_PID" 2>/dev/null || {{ {failed} exited before mounting it\" >&2; exit 1; }}',
        "  sleep 0.1",
        "done",
        f'mountpoint -q "$JFS_MOUNT" || {{ {failed} did not finish within 60 s\" >&2; exit 1; }}',
        'echo "theseus: JuiceFS mounted at $JFS_MOUNT (its messages: $JFS_LOG)"',
        f"unset {PASSWORD_VAR}",
    ]


def wait_lines(jfs: JuiceFS) -> list[str]:
    """Bash lines for each task: wait until its node has the volume mounted."""
    mount = shell_path(jfs.mount)
    return [f"for _ in $(seq 600); do mountpoint -q {mount} && break; sleep 0.1; done"]
