"""Inference from two Python threads at once against one after the other (issue 7).

Two threads share one network, each predicting its own batches.  The kernels release the
GIL and BLAS releases it in its GEMMs, so with one OpenMP thread per kernel
(``cnn_core.set_num_threads(1)``) and one BLAS thread (threadpoolctl), each Python thread
can keep one core busy: on two idle cores the ratio (sequential time / concurrent time)
approaches 2; 1 would mean the threads serialize.  The two modes are interleaved, ``--repeats``
times, so that load from other processes hits both alike; medians are reported.  Both modes
must give the same predictions.  Also printed: the load average (on a busy machine the second
core is not free, and the ratio says little), and how many cores the concurrent run kept
busy (the threads' CPU time / wall time: near 2 when neither waits for the GIL or a core).

    python bench/concurrent_inference.py [--model simple_convnet] [--batch 100]
                                         [--batches 10] [--repeats 7]
"""
import argparse
import os
import statistics
import threading
import time

import numpy as np

from cnn_core.benchmark import blas_summary, build_model, environment, thread_limits


def predict_all(net, batches, out):
    for x in batches:
        out.append(net.predict(x))


def one_after_the_other(net, work):
    outs = [[] for _ in work]
    start = time.perf_counter()
    for batches, out in zip(work, outs):
        predict_all(net, batches, out)
    return time.perf_counter() - start, outs


def concurrently(net, work, cpu_seconds=None):
    outs = [[] for _ in work]
    barrier = threading.Barrier(len(work) + 1)

    def run(batches, out):
        barrier.wait()
        cpu = time.thread_time()
        predict_all(net, batches, out)
        if cpu_seconds is not None:
            cpu_seconds.append(time.thread_time() - cpu)

    threads = [threading.Thread(target=run, args=(b, o)) for b, o in zip(work, outs)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start, outs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="simple_convnet",
                        help="simple_convnet (default), deep_convnet, mlp, ...")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=10, help="batches per thread")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="Python threads")
    args = parser.parse_args(argv)

    env = environment()
    print(f"cnn_core {env['cnn_core']}, numpy {env['numpy']}, {env['cpu']} "
          f"({env['cpu_count']} logical CPUs), {blas_summary(env)}")
    net = build_model(args.model)
    shape = (args.batch,) + tuple(net.input_shape)
    rng = np.random.default_rng(0)
    work = [[rng.random(shape, dtype=np.float32) for _ in range(args.batches)]
            for _ in range(args.threads)]
    seq_times, conc_times, busy = [], [], []
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    with thread_limits(1):        # one OpenMP thread per kernel, one BLAS thread per GEMM
        one_after_the_other(net, [w[:1] for w in work])              # warm-up
        for r in range(args.repeats):
            modes = (one_after_the_other, concurrently)
            for mode in modes if r % 2 == 0 else modes[::-1]:
                if mode is one_after_the_other:
                    seconds, reference = mode(net, work)
                    seq_times.append(seconds)
                else:
                    cpu = []
                    seconds, concurrent_outs = mode(net, work, cpu)
                    conc_times.append(seconds)
                    busy.append(sum(cpu) / seconds)
            for a, b in zip(reference, concurrent_outs):
                for x, y in zip(a, b):
                    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    seq, conc = statistics.median(seq_times), statistics.median(conc_times)
    n_images = args.threads * args.batches * args.batch
    print(f"{args.model}: {args.threads} threads x {args.batches} batches of {args.batch}, "
          f"set_num_threads(1), BLAS 1 thread, median of {args.repeats}")
    print(f"  one after the other: {seq * 1e3:8.1f} ms  ({n_images / seq:,.0f} images/s)")
    print(f"  concurrently:        {conc * 1e3:8.1f} ms  ({n_images / conc:,.0f} images/s)")
    print(f"  ratio (sequential / concurrent): {seq / conc:.2f}  "
          f"(ideal {min(args.threads, env['cpu_count'] or 1)} on idle cores); cores kept busy "
          f"by the concurrent run: {statistics.median(busy):.2f}")
    if load_before is not None:
        print(f"  load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
              f"on {env['cpu_count']} logical CPUs")


if __name__ == "__main__":
    main()
