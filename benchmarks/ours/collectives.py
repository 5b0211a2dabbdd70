"""The transport's floor: a raw all-reduce (``jax.lax.psum`` in a ``shard_map``) of given byte counts between the
devices of all processes, timed in a loop; run as 2 processes x 1 device (``python -m rlpipe.launch``) it is what
gloo over TCP costs on this machine, whatever code issues it. Process 0 prints one JSON line.

Also the reader of a compiled program's all-reduces (``all_reduces``): what the breakdown of case 6 counts."""

import re
import time

BYTES = {"f64": 8, "s64": 8, "u64": 8, "f32": 4, "s32": 4, "u32": 4, "bf16": 2, "f16": 2, "s8": 1, "u8": 1,
         "pred": 1}
_SHAPE = re.compile(r"\b(f64|s64|u64|f32|s32|u32|bf16|f16|s8|u8|pred)\[([\d,]*)\]")
_ALL_REDUCE = re.compile(r"=\s*(.*?)\s+all-reduce(?:-start)?\(")  # its result's shapes
_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$")
_CALLED = re.compile(r"(?:body|condition|to_apply|calls|branch_computations)=\{?([%\w.\-, ]+)\}?")


def _bytes(text: str) -> int:
    total = 0
    for dtype, dims in _SHAPE.findall(text):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        total += n * BYTES[dtype]
    return total


def all_reduces(hlo: str) -> dict:
    """The all-reduces of an optimized HLO module: those in loop bodies (each runs every iteration of its loop)
    and the others (once a call), each with the bytes of its result."""
    computations, current, bodies, calls = {}, None, set(), {}
    for line in hlo.splitlines():
        header = _HEADER.match(line.strip()) if not line.startswith(" ") else None
        if header:
            current = header.group(1)
            computations[current], calls[current] = [], set()
            continue
        if current is None:
            continue
        for group in _CALLED.findall(line):
            calls[current].update(name.strip().lstrip("%") for name in group.split(","))
        bodies.update(m.lstrip("%") for m in re.findall(r"body=(%?[\w.\-]+)", line))
        result = _ALL_REDUCE.search(line)
        if result:
            computations[current].append(_bytes(result.group(1)))
    in_loop, todo = set(), list(bodies)
    while todo:  # everything a loop body calls runs in the loop too
        name = todo.pop()
        if name not in in_loop:
            in_loop.add(name)
            todo.extend(calls.get(name, ()))
    looped = [b for name, sizes in computations.items() if name in in_loop for b in sizes]
    once = [b for name, sizes in computations.items() if name not in in_loop for b in sizes]
    return {"in_loop_count": len(looped), "in_loop_bytes": looped, "once_count": len(once), "once_bytes": once}


def floor(sizes: list[int], repeats: int) -> dict:
    """Seconds per all-reduce of each byte count in ``sizes`` over every device, ``repeats`` of them chained in one
    compiled loop (each needs the previous one's result, so none overlap), the median of 3 calls."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    from rlpipe.rl import mesh

    grid = mesh.make_mesh()
    out = {}
    for size in sizes:
        n = max(1, size // 4)

        def chained(x):
            return jax.lax.fori_loop(0, repeats, lambda _, y: jax.lax.psum(y, mesh.AXIS) * 0.5, x)

        run = jax.jit(jax.shard_map(chained, mesh=grid, in_specs=PartitionSpec(mesh.AXIS),
                                    out_specs=PartitionSpec(mesh.AXIS), check_vma=False))
        host = np.ones((mesh.device_count() * n,), np.float32)
        x = jax.make_array_from_callback(host.shape, NamedSharding(grid, PartitionSpec(mesh.AXIS)),
                                         lambda index: host[index])
        jax.block_until_ready(run(x))  # compile and warm up
        times = []
        for _ in range(3):
            started = time.perf_counter()
            jax.block_until_ready(run(x))
            times.append((time.perf_counter() - started) / repeats)
        out[str(n * 4)] = float(np.median(times))
    return out


def main():
    import argparse

    from rlpipe.rl import mesh

    mesh.initialize(None)
    parser = argparse.ArgumentParser()
    parser.add_argument("--bytes", type=int, nargs="+", default=[4, 4096, 65536, 262144, 1048576])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    seconds = floor(args.bytes, args.repeats)
    if mesh.is_primary():
        from common import emit

        emit({"peer": "ours", "case": "collectives", "processes": mesh.process_count(),
              "devices": mesh.device_count(), "all_reduce_seconds": seconds, "repeats": args.repeats})


if __name__ == "__main__":
    main()
