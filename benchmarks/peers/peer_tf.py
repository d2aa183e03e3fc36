#!/usr/bin/env python3
"""TensorFlow side of the peer benchmarks: the workloads of benchmarks/bench_peers.cpp, eagerly
(tf.GradientTape op by op) or as one XLA-compiled step (tf.function(jit_compile=True): forward,
gradients and the optimizer update), with the same inputs, initial weights and timing protocol.

    peer_tf.py --mode eager|xla --threads N --part micro|epoch

Convolutions run NHWC (TensorFlow's CPU kernels do not run NCHW); the initial weights are the
shared ones transposed to Keras's layouts, the flatten order included. The first block of each
workload includes tracing and compilation and is reported as first_block_s only."""
import argparse
import os
import time

import common as c

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["eager", "xla"], required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--part", choices=["micro", "epoch"], default="micro")
ap.add_argument("--seed", type=int, default=0, help="the epoch's data order")
args = ap.parse_args()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(args.threads)
import keras  # noqa: E402

rep = c.Reporter("tf", "tf " + args.mode, args.threads, tf.__version__)
XLA = args.mode == "xla"


def maybe_compile(fn):
    return tf.function(fn, jit_compile=True) if XLA else fn


def keras_layers(layers, flat=None):
    """Keras layers with the shared weights (torch layouts) converted."""
    out = []
    for k, layer in enumerate(layers):
        if layer[0] == "conv":
            _, i, cin, cout, ks = layer
            out.append((keras.layers.Conv2D(cout, ks, activation="relu"), i, "conv"))
            out.append((keras.layers.MaxPooling2D(2), None, None))
        else:
            _, i, fin, fout = layer
            if k > 0 and layers[k - 1][0] == "conv":
                out.append((keras.layers.Flatten(), None, None))
            last = k == len(layers) - 1
            out.append((keras.layers.Dense(fout, activation=None if last else "relu"), i,
                        "flat" if (k > 0 and layers[k - 1][0] == "conv") else "dense"))
    return out


def build(layers, weights_name, input_shape, flat=None):
    spec = keras_layers(layers)
    model = keras.Sequential([keras.Input(input_shape)] + [l for l, _, _ in spec])
    w = c.weights(weights_name)
    for layer, i, kind in spec:
        if i is None:
            continue
        W, b = w[f"{i}.weight"], w[f"{i}.bias"]
        if kind == "conv":
            kernel = W.transpose(2, 3, 1, 0)
        elif kind == "flat":
            C, H, Wd = flat
            kernel = W.reshape(W.shape[0], C, H, Wd).transpose(2, 3, 1, 0).reshape(H * Wd * C, W.shape[0])
        else:
            kernel = W.T
        layer.set_weights([np.ascontiguousarray(kernel), b])
    return model


def xent(y, logits):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


def train_step(model, opt, x, y):
    def step():
        with tf.GradientTape() as tape:
            loss = xent(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return maybe_compile(step)


def micro():
    cx, cw = c.load("chain_x.npy"), c.load("chain_w.npy")

    def chain(workload, n, iters, size):
        x, w = tf.Variable(cx[:n]), tf.Variable(cw[:n])
        b = tf.Variable(np.zeros(1, np.float32))

        def f():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.tanh(x * w + b) * tf.sigmoid(x))
            return loss, tape.gradient(loss, [x, w, b])
        f = maybe_compile(f)
        rep.timed(workload, size, f, iters)

    for lg in c.CHAIN_SIZES:
        chain("chain", 1 << lg, c.CHAIN_ITERS[lg], f"2^{lg}")
    chain("tiny", 1, c.TINY_ITERS, "1")

    for batch in c.MLP_BATCHES:
        model = build(c.MLP_LAYERS, "mlp", (784,))
        opt = keras.optimizers.SGD(learning_rate=c.MLP_LR, momentum=c.MLP_MOMENTUM)
        x = tf.constant(c.load(f"mlp_x_{batch}.npy"))
        y = tf.constant(c.load(f"mlp_y_{batch}.npy"))
        rep.timed("mlp", f"batch {batch}", train_step(model, opt, x, y), c.MLP_ITERS[batch])

    x = tf.constant(c.load(f"cnn_x_{c.CNN_BATCH}.npy").transpose(0, 2, 3, 1))
    y = tf.constant(c.load(f"cnn_y_{c.CNN_BATCH}.npy"))
    for name in ("keras", "torch"):
        model = build(c.CNN_LAYERS[name], f"cnn_{name}", (28, 28, 1), c.CNN_FLAT[name])
        opt = keras.optimizers.Adam(learning_rate=1e-3)
        rep.timed("cnn", f"{name} batch {c.CNN_BATCH}", train_step(model, opt, x, y), c.CNN_ITERS[name])


def epoch():
    # what a Keras user writes: a tf.data pipeline (uint8 images normalized per batch),
    # compile, fit for one epoch; eager = run_eagerly=True, xla = jit_compile=True
    train_x, train_y = c.fashion_mnist("train")
    test_x, test_y = c.fashion_mnist("test")
    opts = tf.data.Options()
    opts.threading.private_threadpool_size = args.threads

    def prep(u8, y):
        return (tf.cast(u8, tf.float32) / 255.0 - c.FASHION_MEAN) / c.FASHION_STD, y

    train = (tf.data.Dataset.from_tensor_slices((train_x[..., None], train_y)).shuffle(len(train_x), seed=args.seed)
             .batch(c.EPOCH_BATCH).map(prep).prefetch(2).with_options(opts))
    test = tf.data.Dataset.from_tensor_slices((test_x[..., None], test_y)).batch(256).map(prep).with_options(opts)
    model = build(c.CNN_LAYERS["keras"], "cnn_keras", (28, 28, 1), c.CNN_FLAT["keras"])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=c.EPOCH_LR),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=XLA, run_eagerly=not XLA)
    t0 = time.perf_counter()
    model.fit(train, epochs=1, verbose=0)
    train_s = time.perf_counter() - t0
    loss, acc = model.evaluate(test, verbose=0)
    rep.emit(workload="epoch", size="keras batch 64", median_s=train_s, test_accuracy=float(acc),
             test_loss=float(loss), peak_rss_mb=c.peak_rss_mb(), warmup=0, reps=1, iters=1)


micro() if args.part == "micro" else epoch()
