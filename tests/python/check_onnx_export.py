#!/usr/bin/env python3
"""ONNX models exported by xgrad, checked by onnx and run by onnxruntime.

usage: check_onnx_export.py PATH/TO/onnx_export

Runs the helper (its own C++ checks must pass); for every model it wrote: onnx.checker with
full_check (strict shape inference), IR version 8 and opset 17, then onnxruntime on the random
input batch (of another batch size than the export's example) against xgrad's output:
max abs diff <= 1e-5.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-5
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def main():
    helper = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([helper, tmp], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{helper} failed ({out.returncode}): {out.stderr}")
        names = [line.split("\t")[1] for line in out.stdout.splitlines() if line.startswith("model\t")]
        check(names == ["mlp", "seq", "cnn", "gap", "lstm", "gru", "lstm_t"], f"models written: {names}")
        for name in names:
            path = os.path.join(tmp, name + ".onnx")
            model = onnx.load(path)
            try:
                onnx.checker.check_model(model, full_check=True)
            except Exception as e:  # noqa: BLE001 - any checker failure is a test failure
                check(False, f"{name}: onnx.checker: {e}")
                continue
            check(model.ir_version == 8, f"{name}: ir_version {model.ir_version}")
            check([(o.domain, o.version) for o in model.opset_import] == [("", 17)], f"{name}: opset {model.opset_import}")
            x = np.load(os.path.join(tmp, name + "_input.npy"))
            want = np.load(os.path.join(tmp, name + "_output.npy"))
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            (got,) = sess.run(None, {"input": x})
            check(got.shape == want.shape, f"{name}: output shape {got.shape} != {want.shape}")
            if got.shape != want.shape:
                continue
            diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
            ops = sorted({n.op_type for n in model.graph.node})
            print(f"{name}: {os.path.getsize(path)} bytes, input {x.shape}, ops {' '.join(ops)}; "
                  f"max abs diff onnxruntime vs xgrad {diff:.3g}")
            check(diff <= TOLERANCE, f"{name}: max abs diff {diff} > {TOLERANCE}")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("onnx export: all checks passed")


if __name__ == "__main__":
    main()
