"""Example clusters: copy this file to ~/.theseus/clusters.py (or pass --clusters FILE) and
edit it. Each entry is a ``Cluster``; ``theseus submit NAME CONFIG --cluster NAME`` and
``launch.py --xm=slurm:NAME`` pick one by name.

Secrets never go here: the JuiceFS metadata password comes from an environment variable
(``password_env``, read when you submit) or a mode-0600 file on the cluster
(``password_file``, read by the job when it starts).
"""

from theseus.launch.cluster import Cluster, JuiceFS

# A SLURM cluster reached over ssh (an alias from ~/.ssh/config), 8 H100s per node, with the
# datasets and checkpoints on a JuiceFS volume mounted on every node of a job.
BIG_GPU = Cluster(
    "big-gpu",
    kind="slurm",
    login="big-gpu-login",
    partitions=("gpu",),
    account="my-lab",
    qos="normal",
    gres_per_chip="gpu:h100",
    chips_per_node=8,
    root="~/theseus",  # code snapshots, job scripts and logs, and the uv environments
    work="/mnt/jfs/runs",  # run directories (checkpoints) on the JuiceFS volume
    cache="/mnt/jfs/data",  # prepared datasets ($THESEUS_DATA), shared by every job
    uv_groups=("cuda12",),
    env={"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.9"},
    time_limit="1-00:00:00",  # each job's --time; a longer run requeues and resumes
    juicefs=JuiceFS(
        meta_url="redis://jfs-meta.internal:6379/1",  # no password in the URL
        mount="/mnt/jfs",
        cache_dir="/tmp/jfs-cache",  # node-local disk
        cache_size_mib=200 * 1024,
        password_env="JFS_META_PASSWORD",
    ),
)

# A small CPU SLURM cluster whose login node is this machine (sbatch is on PATH here).
LOCAL_SLURM = Cluster(
    "local-slurm",
    kind="slurm",
    login="local",
    partitions=("debug",),
    root="~/theseus-slurm",
    work="~/theseus-slurm/runs",
    cache="~/theseus-slurm/data",
    uv_groups=("cpu",),
    signal_seconds=120,
)

# TPUs (or GPUs) on Vertex AI (see docs/launching.md for the project and region settings).
# Runs and data live in a bucket, which every Vertex AI job sees under /gcs/BUCKET/.
VERTEX = Cluster("tpu", kind="vertex", login="local", uv_groups=("tpu",),
                 work="/gcs/my-bucket/runs", cache="/gcs/my-bucket/data",
                 env={"VERTEX_PROJECT": "my-project", "VERTEX_REGION": "us-central1",
                      "VERTEX_IMAGE_REPOSITORY": "us-docker.pkg.dev/my-project/theseus"})

# A plain GPU box reached over ssh: runs start under `setsid nohup`.
WORKSTATION = Cluster("workstation", kind="ssh", login="gpu-box", chips_per_node=2,
                      root="~/theseus", work="~/theseus/runs", cache="~/theseus/data",
                      uv_groups=("cuda12",))

# This machine, through xmanager's local executor.
LOCAL = Cluster("local", kind="local", work="~/theseus/runs", cache="~/theseus/data")

CLUSTERS = [BIG_GPU, LOCAL_SLURM, VERTEX, WORKSTATION, LOCAL]
