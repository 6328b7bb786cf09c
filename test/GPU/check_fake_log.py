"""Check how moe-run drove the stand-in CUDA driver (test/GPU/FakeDriver):
`check_fake_log.py ARTIFACT.json ONE.json MANY.json CALLS [ARTIFACT_RUN.json]`.

ONE.json is the driver's log of a run with one call of the layer, MANY.json of a
run with CALLS calls; ARTIFACT.json is the layer's CUDA artifact (its kernel
modules); ARTIFACT_RUN.json, if given, the log of moe-run --artifact. Prints one
`ok: ...` line per property, or `FAIL: ...` and exits 1."""
import json
import sys


def main():
    artifact = json.load(open(sys.argv[1]))
    one, many = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
    calls = int(sys.argv[4])
    modules = len({k["module"] for k in artifact["kernels"]})
    failures = []

    def expect(ok, what):
        print(("ok: " if ok else "FAIL: ") + what)
        if not ok:
            failures.append(what)

    logs = [("one", one), ("many", many)]
    if len(sys.argv) > 5:
        logs.append(("artifact", json.load(open(sys.argv[5]))))
    for name, log in logs:
        expect(log.get("cubin_images") == modules,
               f"{name}: every kernel module loaded once as a cubin "
               f"({log.get('cubin_images')} of {modules})")
        expect(log.get("loaded_modules") == 0 and
               log.get("cuModuleUnload") == log.get("cuModuleLoadData"),
               f"{name}: every module unloaded at exit")
        expect(log.get("cuLaunchKernel", 0) > 0 and
               1 < log.get("max_threads_per_block", 0) <= 1024,
               f"{name}: kernels launched with valid geometry "
               f"(max {log.get('max_threads_per_block')} threads per block)")
        # The stand-in runs no kernel, so kernels behind data-dependent branches
        # (the fused scatter's rows) may never launch: every launched kernel is
        # looked up exactly once, and no module more than once.
        lookups = log.get("cuModuleGetFunction")
        expect(lookups == log.get("launched_functions") and lookups <= modules,
               f"{name}: each launched kernel looked up once ({lookups} lookups, "
               f"{log.get('launched_functions')} kernels launched, {modules} modules)")
        expect(log.get("cuStreamCreate") == 1,
               f"{name}: one stream, reused for every launch "
               f"({log.get('cuStreamCreate')} created)")
    expect(many["cuLaunchKernel"] >= calls * one["cuLaunchKernel"] // 2,
           f"launches grow with the calls ({one['cuLaunchKernel']} for one call, "
           f"{many['cuLaunchKernel']} for {calls})")
    def allocations(log):
        return log.get("cuMemAllocManaged", 0) + log.get("cuMemAlloc_v2", 0)
    expect(allocations(many) == allocations(one),
           f"the pool serves later calls without new driver allocations "
           f"({allocations(one)} for one call, {allocations(many)} for {calls})")
    # The host code of this (fused) layer touches no buffer: every buffer
    # lives in device memory, which the stand-in maps without host access
    # rights (a host load or store would have crashed the run). In: the
    # three weights (router, w_in, w_out), the tokens and the five zeroed
    # results; out: the five results, once per call.
    expect(one.get("cuMemAllocManaged", 0) == 0 and one.get("cuMemAlloc_v2", 0) > 3,
           f"every buffer in device memory ({one.get('cuMemAllocManaged', 0)} managed, "
           f"{one.get('cuMemAlloc_v2')} device allocations)")
    expect(one.get("cuMemcpyHtoD_v2") == 3 + 1 + 5 and one.get("cuMemcpyDtoH_v2") == 5,
           f"weights, tokens and results copied in once, the results out once "
           f"({one.get('cuMemcpyHtoD_v2')} in, {one.get('cuMemcpyDtoH_v2')} out)")
    # The timed calls after the first keep the tokens and the output in
    # device memory (BoundLayer::callOnDevice): the tokens are copied in once
    # more for them all, then per call only the four statistics (zeroed) in
    # and out.
    expect(many.get("cuMemcpyDtoH_v2") == 5 + 4 * (calls - 1)
           and many.get("cuMemcpyHtoD_v2") == 3 + 1 + 5 + 2 + 4 * (calls - 1),
           f"the first call copies the five results out, each timed call the "
           f"four statistics only, in and out "
           f"({many.get('cuMemcpyHtoD_v2')} in, "
           f"{many.get('cuMemcpyDtoH_v2')} out for {calls} calls)")
    expect(one.get("cuStreamSynchronize") == 1,
           f"one wait per call: the launches run asynchronously on one stream "
           f"({one.get('cuStreamSynchronize')} stream synchronisations)")
    expect(one.get("cuCtxSynchronize") == 1 and many.get("cuCtxSynchronize") == calls,
           f"one context synchronisation per call, before the results are fetched: "
           f"frees of device scratch memory do not wait "
           f"({one.get('cuCtxSynchronize')} for one call, "
           f"{many.get('cuCtxSynchronize')} for {calls})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
