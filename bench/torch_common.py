"""Shared pieces of the PyTorch references of the benchmarks (bench/torch_classifiers.py, bench/torch_lm.py):
thread settings, reel's token files, and running a training function in one process or under
DistributedDataParallel. numpy and torch are imported only after set_threads (inside the functions
here): numpy loads the same OpenBLAS as Debian's torch, and OpenBLAS and OpenMP read the thread counts
when they load."""
import os
import resource
import socket
import sys


def set_threads(threads):
    """Thread counts for OpenMP and OpenBLAS, before torch is imported; DDP workers inherit them."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # keep DDP traffic on the loopback interface


def read_tokfile(path, who):
    """(doc_start (N+1) int64, labels (N) int32 or None, ids (T) uint32) from a reel token file (layout in
    include/reel/tokfile.h)."""
    import numpy as np
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if bytes(raw[:8]) != b"REELTOK\0":
        sys.exit(f"{who}: {path} is not a reel token file")
    n = int(raw[16:24].view(np.uint64)[0])
    classes = int(raw[36:40].view(np.uint32)[0])
    at = 64
    starts = np.frombuffer(raw, dtype=np.uint64, count=n + 1, offset=at).astype(np.int64)
    at += 8 * (n + 1)
    labels = np.frombuffer(raw, dtype=np.int32, count=n, offset=at) if classes else None
    at += 4 * n if classes else 0
    ids = np.frombuffer(raw, dtype=np.uint32, count=int(starts[-1]), offset=at)
    return starts, labels, ids


def peak_rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, train, args, world, port, queue):
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    result = train(args, rank, world)
    dist.barrier()
    queue.put((rank, result, peak_rss_kb()))
    dist.destroy_process_group()


def run(train, args, ddp, threads):
    """train(args, rank, world) -> a tuple whose first element is the list of timed step seconds. With ddp
    > 1 it runs in that many processes (gloo on 127.0.0.1) and rank 0's result is returned. Returns
    (result, peak RSS of each process in kB)."""
    import torch
    if ddp:
        import torch.multiprocessing as mp
        queue = mp.get_context("spawn").SimpleQueue()
        mp.spawn(_ddp_worker, args=(train, args, ddp, _free_port(), queue), nprocs=ddp, join=True)
        reports = sorted((queue.get() for _ in range(ddp)), key=lambda r: r[0])
        return reports[0][1], [r[2] for r in reports]
    torch.set_num_threads(threads)
    return train(args, 0, 1), [peak_rss_kb()]
