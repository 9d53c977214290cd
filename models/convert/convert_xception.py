#!/usr/bin/env python3
"""Convert the pediatric pneumonia classifier (Keras Xception) to safetensors for candle.

Source: `pneumonia_xception_model_val-acc_0.861.keras` from the PyPI wheel
`pneumonia-model-package==0.3.0` (fetched by scripts/fetch-models). The model is an
ImageNet Xception backbone (Chollet, CVPR 2017), frozen, then global average pooling
-> Dense(128, ReLU) -> Dropout(0.3) -> Dense(2) (logits NORMAL, PNEUMONIA), input
150x150x3 scaled to x/127.5 - 1.

The converter walks the model's layers (not the raw HDF5 keys, whose names such as
`separable_conv2d_7` are generated) and writes 238 float32 tensors named as the Rust
module `fusion_models::xception` expects:

  xception.block1.conv{1,2}.weight              Conv2D HWIO -> OIHW
  xception.block1.conv{1,2}_bn.*                BatchNormalization (eps 1e-3)
  xception.block{2..14}.sepconv{k}.depthwise.weight   (kh, kw, C, 1) -> (C, 1, kh, kw)
  xception.block{2..14}.sepconv{k}.pointwise.weight   (1, 1, C, O)   -> (O, C, 1, 1)
  xception.block{2..14}.sepconv{k}_bn.*
  xception.block{2,3,4,13}.residual.weight      1x1 stride-2 Conv2D (Keras `conv2d[_n]`) -> OIHW
  xception.block{2,3,4,13}.residual_bn.*        (Keras `batch_normalization[_n]`)
  head.fc1.{weight,bias}                        Dense(2048 -> 128), kernel transposed to (out, in)
  head.fc2.{weight,bias}                        Dense(128 -> 2)
  where * is weight (gamma), bias (beta), running_mean, running_var.

The output is byte-deterministic: the safetensors file is written by this script with a
canonical header (sorted keys, fixed metadata, no timestamps; safetensors' own writer
orders metadata through a hash map, so its bytes vary between runs). The package
manifest and scripts/fetch-models pin the SHA-256 and `--expect-sha256` checks it.

With `--fixture` it also writes the parity fixture for the Rust tests: the pydicom-data
chest radiograph RG1_UNCR.dcm (MONOCHROME1, 1955x1841, 16-bit) through the package's
preprocessing (stored pixels as float64; clip-scale to [0, 1] between the 0.5th and
99.5th percentiles, numpy linear interpolation; invert (MONOCHROME1); round half to
even to 8 bits; Pillow NEAREST resize to 150x150; grey -> 3 channels; x/127.5 - 1),
storing the 8-bit 150x150 image as raw bytes and the Keras logits as JSON.

Usage:
  models/convert/convert_xception.py [--keras FILE] [--out DIR] [--expect-sha256 HEX]
                                     [--fixture [--dicom FILE]]

Runs itself inside a throw-away venv (keras 3.15.1 + jax 0.10.2 CPU, h5py, pillow,
pydicom, safetensors from PyPI; ~127 MB of wheels, ~725 MB installed) under
${FUSION_VENV_DIR:-${FUSION_CACHE_DIR:-~/.cache/fusion}/venvs}/convert-xception, with
KERAS_BACKEND=jax.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import venv

REQUIREMENTS = [
    "keras==3.15.1",
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "numpy==2.4.6",
    "h5py==3.16.0",
    "pillow==10.4.0",
    "pydicom==3.0.2",
    "safetensors==0.8.0",
]
VENV_NAME = "convert-xception"

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("FUSION_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fusion")
KERAS_NAME = "pneumonia_xception_model_val-acc_0.861.keras"
KERAS_SHA256 = "d7997cd1923f4d13538f02d64b6d5925e2f87a2a2db8036c074f795c41439e26"
DEFAULT_KERAS = os.path.join(CACHE, "models", "pneumonia-xception", KERAS_NAME)
DEFAULT_OUT = os.path.join(REPO, "models", "packages", "pneumonia-xception")
OUT_NAME = "model.safetensors"
DEFAULT_DICOM = os.path.join(REPO, ".test-data", "dicom", "pydicom-data-1.0.0", "data_store", "data",
                             "RG1_UNCR.dcm")
DICOM_SHA256 = "946f28f48b9fbf360196a9b835c8fce83b0c654bf85a5107663c8a61df02e498"
FIXTURES = os.path.join(REPO, "models", "fusion-models", "tests", "fixtures")
RESIDUAL_BLOCKS = (2, 3, 4, 13)


def log(msg):
    print(f"convert_xception: {msg}", file=sys.stderr)


def venv_python():
    base = os.environ.get("FUSION_VENV_DIR") or os.path.join(CACHE, "venvs")
    path = os.path.join(base, VENV_NAME)
    py = os.path.join(path, "bin", "python")
    stamp = os.path.join(path, ".requirements")
    want = "\n".join(REQUIREMENTS)
    if not (os.path.isfile(stamp) and open(stamp).read() == want):
        log(f"creating venv {path} (keras + jax, ~127 MB download)")
        venv.create(path, with_pip=True, clear=True)
        subprocess.run([py, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                        "--only-binary=:all:", *REQUIREMENTS], check=True)
        with open(stamp, "w") as f:
            f.write(want)
    return py


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_model(keras_path):
    import keras

    if not os.path.isfile(keras_path):
        sys.exit(f"convert_xception: {keras_path} is missing; run scripts/fetch-models")
    have = sha256_file(keras_path)
    if have != KERAS_SHA256:
        sys.exit(f"convert_xception: {keras_path}: SHA-256 {have}, expected {KERAS_SHA256}")
    return keras.saving.load_model(keras_path, compile=False)


def convert(model):
    """Walks the layers and returns {name: float32 array} in the candle layout."""
    import numpy as np

    backbone = model.get_layer("xception")
    layers = backbone.layers
    names = [l.name for l in layers]
    out = {}

    def put(key, array):
        if key in out:
            raise SystemExit(f"convert_xception: duplicate tensor {key}")
        out[key] = np.ascontiguousarray(np.asarray(array, dtype=np.float32))

    def put_bn(prefix, layer):
        assert abs(layer.epsilon - 1e-3) < 1e-12, (layer.name, layer.epsilon)
        gamma, beta, mean, var = (w.numpy() for w in layer.weights)
        put(prefix + ".weight", gamma)
        put(prefix + ".bias", beta)
        put(prefix + ".running_mean", mean)
        put(prefix + ".running_var", var)

    def block_of_generated(i):
        # Keras names the residual shortcut's conv and batch norm generically
        # (conv2d, conv2d_1, ...); the block is the one whose max-pool follows.
        for name in names[i:]:
            m = re.fullmatch(r"block(\d+)_pool", name)
            if m:
                return int(m.group(1))
        raise SystemExit(f"convert_xception: no pooling layer after {names[i]}")

    shortcut_block = {}
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        name = layer.name
        if not layer.weights:
            continue
        if m := re.fullmatch(r"block1_conv(\d)", name):
            assert kind == "Conv2D" and not layer.use_bias
            (k,) = (w.numpy() for w in layer.weights)
            put(f"xception.block1.conv{m.group(1)}.weight", k.transpose(3, 2, 0, 1))
        elif m := re.fullmatch(r"block(\d+)_(conv|sepconv)(\d)_bn", name):
            put_bn(f"xception.block{m.group(1)}.{m.group(2)}{m.group(3)}_bn", layer)
        elif m := re.fullmatch(r"block(\d+)_sepconv(\d)", name):
            assert kind == "SeparableConv2D" and not layer.use_bias and layer.padding == "same"
            dw, pw = (w.numpy() for w in layer.weights)
            assert dw.shape[-1] == 1, dw.shape
            prefix = f"xception.block{m.group(1)}.sepconv{m.group(2)}"
            put(prefix + ".depthwise.weight", dw.transpose(2, 3, 0, 1))
            put(prefix + ".pointwise.weight", pw.transpose(3, 2, 0, 1))
        elif m := re.fullmatch(r"conv2d(_\d+)?", name):
            assert kind == "Conv2D" and not layer.use_bias and tuple(layer.strides) == (2, 2)
            (k,) = (w.numpy() for w in layer.weights)
            assert k.shape[:2] == (1, 1), k.shape
            block = block_of_generated(i)
            shortcut_block[m.group(1) or ""] = block
            put(f"xception.block{block}.residual.weight", k.transpose(3, 2, 0, 1))
        elif m := re.fullmatch(r"batch_normalization(_\d+)?", name):
            # batch_normalization_n normalises conv2d_n's output (it follows the pool).
            block = shortcut_block.get(m.group(1) or "")
            if block is None:
                raise SystemExit(f"convert_xception: {name} before its shortcut convolution")
            put_bn(f"xception.block{block}.residual_bn", layer)
        else:
            raise SystemExit(f"convert_xception: unexpected layer {name} ({kind})")

    dense = [l for l in model.layers if type(l).__name__ == "Dense"]
    if len(dense) != 2:
        raise SystemExit(f"convert_xception: expected 2 Dense layers, found {len(dense)}")
    for key, layer in zip(("head.fc1", "head.fc2"), dense):
        kernel, bias = (w.numpy() for w in layer.weights)
        put(key + ".weight", kernel.T)
        put(key + ".bias", bias)
    dropout = [l for l in model.layers if type(l).__name__ == "Dropout"]
    assert len(dropout) == 1 and abs(dropout[0].rate - 0.3) < 1e-9

    residuals = sorted(int(k.split(".")[1][5:]) for k in out if k.endswith(".residual.weight"))
    assert tuple(residuals) == RESIDUAL_BLOCKS, residuals
    n_weights = len(model.weights)
    if len(out) != n_weights:
        raise SystemExit(f"convert_xception: wrote {len(out)} tensors, the model has {n_weights}")
    return out


def safetensors_bytes(tensors, metadata):
    """Serialises float32 tensors in the safetensors format with a canonical header.

    Written here rather than with safetensors.numpy.save_file, whose Rust core keeps the
    metadata in a hash map: its key order, hence the file's bytes and SHA-256, varies
    between runs. Here the header is JSON with sorted keys and no whitespace, padded with
    spaces to a multiple of 8 bytes, and the data follow in key order.
    """
    import numpy as np

    header = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for key in sorted(tensors):
        t = np.ascontiguousarray(tensors[key], dtype="<f4")
        data = t.tobytes()
        header[key] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def write_safetensors(tensors, out_dir):
    import numpy as np
    from safetensors.numpy import load_file

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, OUT_NAME)
    tmp = path + ".tmp"
    metadata = {
        "source": f"pypi:pneumonia-model-package==0.3.0/{KERAS_NAME}",
        "source_sha256": KERAS_SHA256,
        "converter": "models/convert/convert_xception.py",
        "layout": "candle NCHW: conv OIHW, depthwise (C,1,kh,kw), dense (out,in)",
    }
    with open(tmp, "wb") as f:
        f.write(safetensors_bytes(tensors, metadata))
    # Read back with the reference implementation: same names, shapes and values.
    back = load_file(tmp)
    assert sorted(back) == sorted(tensors)
    for key, t in tensors.items():
        assert back[key].dtype == np.float32 and np.array_equal(back[key], t), key
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    return path, digest


def preprocess(pixels, invert=True, resample="nearest"):
    """Stored pixel values -> (8-bit 150x150 grey image, [1, 150, 150, 3] float32)."""
    import numpy as np
    from PIL import Image

    px = pixels.astype(np.float64)
    lo, hi = np.percentile(px, [0.5, 99.5])
    y = np.clip((px - lo) / (hi - lo), 0.0, 1.0)
    if invert:
        y = 1.0 - y
    u8 = np.round(y * 255.0).astype(np.uint8)
    filt = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR}[resample]
    small = np.asarray(Image.fromarray(u8, mode="L").resize((150, 150), filt))
    rgb = np.repeat(small[:, :, None], 3, axis=2).astype(np.float32)
    x = rgb / np.float32(127.5) - np.float32(1.0)
    return small, x[None], (float(lo), float(hi))


def write_fixture(model, dicom_path):
    import keras
    import numpy as np
    import pydicom

    if not os.path.isfile(dicom_path):
        sys.exit(f"convert_xception: {dicom_path} is missing; run scripts/fetch-test-data")
    have = sha256_file(dicom_path)
    if have != DICOM_SHA256:
        sys.exit(f"convert_xception: {dicom_path}: SHA-256 {have}, expected {DICOM_SHA256}")
    ds = pydicom.dcmread(dicom_path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    pixels = ds.pixel_array
    features_model = keras.Model(model.inputs, model.get_layer("global_average_pooling2d").output)

    def run(x):
        logits = np.asarray(model(x, training=False), dtype=np.float64)[0]
        p = np.exp(logits - logits.max())
        return logits, p / p.sum()

    small, x, (lo, hi) = preprocess(pixels)
    logits, probs = run(x)
    features = np.asarray(features_model(x, training=False), dtype=np.float64)[0]
    _, x_raw, _ = preprocess(pixels, invert=False)
    logits_raw, probs_raw = run(x_raw)
    _, x_bil, _ = preprocess(pixels, resample="bilinear")
    logits_bil, probs_bil = run(x_bil)

    os.makedirs(FIXTURES, exist_ok=True)
    raw_path = os.path.join(FIXTURES, "rg1_uncr_150x150.u8")
    with open(raw_path, "wb") as f:
        f.write(small.astype(np.uint8).tobytes())
    doc = {
        "description": "RG1_UNCR.dcm (pydicom-data 1.0.0) through the pneumonia package's preprocessing "
                       "and the Keras model; written by models/convert/convert_xception.py --fixture",
        "dicom_sha256": DICOM_SHA256,
        "keras_sha256": KERAS_SHA256,
        "rows": int(pixels.shape[0]),
        "columns": int(pixels.shape[1]),
        "percentile_low": lo,
        "percentile_high": hi,
        "image_file": os.path.basename(raw_path),
        "image_shape": [150, 150],
        "image_sha256": hashlib.sha256(small.astype(np.uint8).tobytes()).hexdigest(),
        "logits": [float(v) for v in logits],
        "probabilities": [float(v) for v in probs],
        "features_first8": [float(v) for v in features[:8]],
        "features_mean": float(features.mean()),
        "features_l2": float(np.linalg.norm(features)),
        "without_inversion": {"logits": [float(v) for v in logits_raw],
                              "probabilities": [float(v) for v in probs_raw]},
        "bilinear_resize": {"logits": [float(v) for v in logits_bil],
                            "probabilities": [float(v) for v in probs_bil]},
        "requirements": REQUIREMENTS,
    }
    json_path = os.path.join(FIXTURES, "xception_rg1_uncr.json")
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    log(f"fixture: logits {logits}, P(normal) {probs[0]:.4f}; without inversion P(pneumonia) "
        f"{probs_raw[1]:.4f}; bilinear P(normal) {probs_bil[0]:.4f}")
    log(f"wrote {raw_path} and {json_path}")


def main(args):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    model = load_model(args.keras)
    tensors = convert(model)
    total = sum(t.nbytes for t in tensors.values())
    path, digest = write_safetensors(tensors, args.out)
    log(f"wrote {len(tensors)} tensors ({total / 1e6:.1f} MB float32) to {path}")
    print(f"sha256 {digest}  {path}")
    if args.expect_sha256 and digest != args.expect_sha256:
        os.remove(path)
        sys.exit(f"convert_xception: {path}: SHA-256 {digest}, expected {args.expect_sha256} "
                 "(converter or library versions changed?); removed")
    if args.fixture:
        write_fixture(model, args.dicom)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keras", default=DEFAULT_KERAS, help="the .keras file")
    ap.add_argument("--out", default=DEFAULT_OUT, help="package folder to write model.safetensors into")
    ap.add_argument("--expect-sha256", help="fail unless the output has this SHA-256")
    ap.add_argument("--fixture", action="store_true", help="also write the Rust parity fixture")
    ap.add_argument("--dicom", default=DEFAULT_DICOM, help="RG1_UNCR.dcm for --fixture")
    args = ap.parse_args()
    if os.environ.get("_FUSION_IN_VENV") != VENV_NAME:
        py = venv_python()
        env = dict(os.environ, _FUSION_IN_VENV=VENV_NAME, KERAS_BACKEND="jax",
                   JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
        os.execve(py, [py, os.path.abspath(__file__), *sys.argv[1:]], env)
    main(args)
