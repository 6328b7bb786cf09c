"""Write variants of a valid CUDA artifact, each broken in one way:
`bad_artifacts.py GOOD.json DIR` writes DIR/<name>.json for every case below."""
import json
import os
import sys


def main():
    good, out = sys.argv[1], sys.argv[2]
    with open(good) as f:
        doc = json.load(f)
    os.makedirs(out, exist_ok=True)

    def variant(name, edit):
        copy = json.loads(json.dumps(doc))
        edit(copy)
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(copy, f, indent=1)

    variant("version2", lambda d: d.update(version=2))
    variant("format", lambda d: d.update(format="something-else"))
    variant("no-host", lambda d: d.pop("host_llvm_ir"))
    variant("extra-field", lambda d: d.update(extra=1))
    variant("entry", lambda d: d.update(entry="main"))
    variant("chip", lambda d: d["target"].update(chip="gfx90a"))
    variant("w-in-shape", lambda d: d["buffers"][2].update(shape=[4, 8, 15]))
    variant("output-dtype", lambda d: d["buffers"][4].update(dtype="i64"))
    variant("buffer-order", lambda d: d["buffers"].reverse())
    variant("capacity", lambda d: d["layer"].update(capacity=0))
    with open(os.path.join(out, "truncated.json"), "w") as f:
        f.write(json.dumps(doc)[:200])
    return 0


if __name__ == "__main__":
    sys.exit(main())
