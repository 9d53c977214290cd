#!/usr/bin/env python3
"""Sentences/s of the candle text encoder vs sentence-transformers (PyTorch, CPU).

One-off benchmark, never run in CI (and no timed test: figures depend on the
machine and its load). It

1. creates a throw-away venv under
   ``${XDG_CACHE_HOME:-$HOME/.cache}/fusion/venvs/st-bench`` and installs
   ``torch`` and ``sentence-transformers`` from PyPI (the PyPI torch wheel pulls
   several GB of CUDA wheels; accepted for this one-off),
2. inside it, builds a SentenceTransformer from the SAME local files the Rust
   service loads (``models/packages/minilm-l6-v2/``: Transformer + mean Pooling
   + Normalize, ``HF_HUB_OFFLINE=1``), sets ``torch.set_num_threads(THREADS)``,
   warms up on the first 64 sentences and times
   ``encode(sentences, batch_size=BATCH)`` over ``models/bench/sentences.txt``,
3. runs ``cargo run -p fusion-models --release --example bench_text`` with the
   same sentences, batch size and thread count (``RAYON_NUM_THREADS``) twice,
   each in its own process: ``--pass minilm`` (the crate's own forward pass,
   ``fusion_models::minilm``, which the service runs) and ``--pass bert``
   (candle-transformers' ``BertModel``, the parity reference),
4. on every side, after the batched rounds, embeds ``--single`` sentences
   (default all) one call each, as the service encodes one note at a time:
   latency p50 and p95, batch-1 throughput; and reads the process's peak
   resident memory (``VmHWM`` for Rust, ``ru_maxrss`` for Python: the latter
   includes the PyTorch runtime),
5. prints the rates, the ratios against PyTorch (target: the MiniLM pass
   >= 1.3x), the single-sentence figures, peak memory, the 1-minute load
   average before each side, and the cosine between the implementations'
   embeddings of the first 10 sentences.

``--runs N`` (default 3) repeats the whole comparison and ends with one line
per run. The machine is shared: compare figures only within a run, and read
them with the load printed beside them.

Fairness: ``encode`` sorts sentences by character length (longest first) and
pads each batch to its longest member; ``bench_text`` does the same. Both time
tokenisation plus the forward pass and pooling, and report the median of
``--rounds`` passes over the whole file.

Usage (from the repository root)::

    python3 models/bench/text_encoder_vs_pytorch.py [--batch 32] [--threads 2] [--rounds 3] \
        [--runs 3] [--single N]
    python3 models/bench/text_encoder_vs_pytorch.py --generate-sentences   # rewrite sentences.txt

``--generate-sentences`` rebuilds ``sentences.txt`` deterministically from the
phrase templates below (invented text, no copied notes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SENTENCES = HERE / "sentences.txt"
MODEL_DIR = REPO / "models" / "packages" / "minilm-l6-v2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fusion"
VENV = CACHE / "venvs" / "st-bench"
PACKAGES = ["torch", "sentence-transformers"]
N_SENTENCES = 1000
SEED = 20_240_611
MAX_CHARS = 820

# --------------------------------------------------------------------------
# Sentence generator: invented clinical phrases, combined at varied lengths.
# --------------------------------------------------------------------------

AGES = [f"{n}-year-old" for n in (19, 23, 27, 31, 34, 38, 42, 45, 49, 53, 56, 61, 64, 68, 72, 77, 81, 86, 90)]
PEOPLE = ["man", "woman", "patient", "male", "female", "retired teacher", "nursing-home resident", "construction worker"]
HISTORY = [
    "type 2 diabetes", "hypertension", "COPD", "atrial fibrillation on apixaban", "chronic kidney disease stage 3",
    "heart failure with reduced ejection fraction", "asthma since childhood", "prior left lower lobe pneumonia",
    "remote smoking history of 30 pack-years", "rheumatoid arthritis on methotrexate", "obstructive sleep apnoea",
    "coronary artery disease status post stenting", "hypothyroidism", "no significant past medical history",
]
COMPLAINTS = [
    "productive cough", "fever and rigors", "shortness of breath on exertion", "pleuritic chest pain",
    "worsening dyspnoea over three days", "haemoptysis", "night sweats and weight loss", "wheeze",
    "orthopnoea and ankle swelling", "sudden onset chest tightness", "low-grade fever", "dry cough for two weeks",
]
DURATIONS = ["for two days", "for one week", "since yesterday", "for several months", "over the past 48 hours", "intermittently for a month"]
FINDINGS = [
    "No acute cardiopulmonary process.", "The lungs are clear.", "Heart size is normal.",
    "There is a small left pleural effusion.", "Patchy consolidation is seen in the right lower lobe.",
    "Mild cardiomegaly without pulmonary oedema.", "No pneumothorax.", "Bibasilar atelectasis.",
    "Interstitial markings are increased bilaterally.", "The mediastinum is not widened.",
    "A 9 mm nodule projects over the left upper zone.", "Endotracheal tube tip lies 4 cm above the carina.",
    "Right internal jugular line terminates in the superior vena cava.", "Hyperinflated lungs consistent with emphysema.",
    "Blunting of the right costophrenic angle.", "Perihilar haziness suggests early interstitial oedema.",
    "No focal consolidation, effusion or pneumothorax.", "Degenerative changes of the thoracic spine.",
]
FINDING_CLAUSES = [
    "there is {sev} {obs} in the {loc}", "the {loc} shows {sev} {obs}", "{sev} {obs} is noted at the {loc}",
    "{obs} of the {loc} is {change} compared with the prior study", "no {obs} is seen in the {loc}",
]
SEVERITY = ["mild", "moderate", "small", "subtle", "extensive", "patchy", "new", "persistent"]
OBSERVATIONS = ["consolidation", "opacity", "atelectasis", "effusion", "airspace disease", "ground-glass change", "scarring", "thickening"]
LOCATIONS = [
    "right lower lobe", "left lower lobe", "right middle lobe", "lingula", "left upper lobe", "right upper lobe",
    "both lung bases", "right costophrenic angle", "left hilum", "retrocardiac region", "right apex",
]
CHANGES = ["unchanged", "improved", "slightly worse", "markedly improved", "new", "stable"]
VITALS = [
    "temperature {t} C", "heart rate {hr} beats per minute", "blood pressure {sys}/{dia} mmHg",
    "respiratory rate {rr} per minute", "oxygen saturation {sat}% on {o2}",
]
OXYGEN = ["room air", "2 L nasal cannula", "4 L nasal cannula", "a venturi mask at 35%", "high-flow oxygen"]
LABS = [
    "white cell count {wcc} x10^9/L", "CRP {crp} mg/L", "procalcitonin {pct} ng/mL", "creatinine {cr} umol/L",
    "lactate {lac} mmol/L", "haemoglobin {hb} g/L", "D-dimer {dd} ng/mL",
]
EXAM = [
    "crackles at the right base", "reduced air entry on the left", "bronchial breathing over the right lower zone",
    "a widespread expiratory wheeze", "dullness to percussion at the left base", "no peripheral oedema",
    "bilateral pitting oedema to the knees", "a soft systolic murmur", "clear chest on auscultation",
]
MEDS = [
    "amoxicillin 500 mg three times daily", "doxycycline 100 mg twice daily", "co-amoxiclav 625 mg three times daily",
    "prednisolone 40 mg once daily for five days", "furosemide 40 mg intravenously", "salbutamol nebulisers as required",
    "clarithromycin 500 mg twice daily", "piperacillin-tazobactam 4.5 g every eight hours",
]
PLANS = [
    "repeat chest radiograph in six weeks", "sputum culture and blood cultures were sent", "review in the respiratory clinic",
    "CT pulmonary angiogram if D-dimer remains raised", "safety-net advice given", "discharge home if observations remain stable",
    "escalate to the medical registrar if oxygen requirement rises", "recommend CT chest to characterise the nodule",
    "continue current antibiotics and reassess in 48 hours", "physiotherapy referral for airway clearance",
]
IMPRESSIONS = [
    "Findings are consistent with community-acquired pneumonia.", "Appearances favour pulmonary oedema over infection.",
    "Likely viral lower respiratory tract infection.", "Exacerbation of COPD without radiographic consolidation.",
    "Clinical correlation is advised.", "Features are non-specific; infection cannot be excluded.",
    "No radiographic evidence of active disease.", "Probable aspiration pneumonia given the dependent distribution.",
]
CONNECTIVES = ["In addition,", "However,", "On examination,", "Of note,", "Overall,", "Subsequently,", "Furthermore,"]


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        sev=rng.choice(SEVERITY), obs=rng.choice(OBSERVATIONS), loc=rng.choice(LOCATIONS), change=rng.choice(CHANGES),
        t=f"{rng.uniform(36.0, 39.8):.1f}", hr=rng.randint(52, 128), sys=rng.randint(92, 178), dia=rng.randint(50, 102),
        rr=rng.randint(12, 32), sat=rng.randint(84, 99), o2=rng.choice(OXYGEN), wcc=f"{rng.uniform(3.5, 22.0):.1f}",
        crp=rng.randint(2, 280), pct=f"{rng.uniform(0.05, 6.0):.2f}", cr=rng.randint(55, 240),
        lac=f"{rng.uniform(0.6, 4.5):.1f}", hb=rng.randint(88, 162), dd=rng.randint(150, 3200),
    )


def _clause(rng: random.Random) -> str:
    kind = rng.randrange(9)
    if kind == 0:
        return f"{rng.choice(AGES)} {rng.choice(PEOPLE)} with {rng.choice(HISTORY)} presenting with {rng.choice(COMPLAINTS)} {rng.choice(DURATIONS)}."
    if kind == 1:
        return rng.choice(FINDINGS)
    if kind == 2:
        c = _fill(rng, rng.choice(FINDING_CLAUSES))
        return c[0].upper() + c[1:] + "."
    if kind == 3:
        vs = rng.sample(VITALS, rng.randint(1, len(VITALS)))
        return "Observations: " + ", ".join(_fill(rng, v) for v in vs) + "."
    if kind == 4:
        ls = rng.sample(LABS, rng.randint(1, 4))
        return "Bloods showed " + ", ".join(_fill(rng, x) for x in ls) + "."
    if kind == 5:
        return f"Examination revealed {rng.choice(EXAM)} and {rng.choice(EXAM)}."
    if kind == 6:
        return f"Started on {rng.choice(MEDS)}; {rng.choice(PLANS)}."
    if kind == 7:
        return rng.choice(IMPRESSIONS)
    return f"Plan: {rng.choice(PLANS)}."


def generate_sentences(n: int = N_SENTENCES, seed: int = SEED) -> list[str]:
    """n distinct invented clinical 'sentences' (1 to ~14 clauses, at most MAX_CHARS characters), deterministic for a seed."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        r = rng.random()
        clauses = 1 if r < 0.30 else rng.randint(2, 3) if r < 0.75 else rng.randint(4, 6) if r < 0.93 else rng.randint(8, 14)
        parts = [_clause(rng)]
        for _ in range(clauses - 1):
            c = _clause(rng)
            if rng.random() < 0.2:
                c = f"{rng.choice(CONNECTIVES)} {c[0].lower()}{c[1:]}"
            parts.append(c)
        s = " ".join(parts)
        # Stay under 254 word pieces: longer texts are windowed by the Rust
        # encoder but truncated by sentence-transformers, which would differ.
        if len(s) <= MAX_CHARS and s not in seen:
            seen.add(s)
            out.append(s)
    return out


# --------------------------------------------------------------------------
# Inside the venv: the PyTorch side.
# --------------------------------------------------------------------------


def pytorch_inner(args: argparse.Namespace) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # older releases
        from sentence_transformers.models import Normalize, Pooling, Transformer

    torch.set_num_threads(args.threads)
    sentences = [l for l in SENTENCES.read_text(encoding="utf-8").splitlines() if l.strip()]
    t0 = time.perf_counter()
    word = Transformer(str(MODEL_DIR), max_seq_length=256)
    model = SentenceTransformer(modules=[word, Pooling(384, pooling_mode="mean"), Normalize()], device="cpu")
    model.eval()
    load_ms = (time.perf_counter() - t0) * 1e3
    # Padded batches (no unpadded "flattened" inputs on CPU), so both sides pad
    # each length-sorted batch to its longest sentence.
    attn = getattr(getattr(word, "auto_model", None), "config", None)
    attn = getattr(attn, "_attn_implementation", "?")
    print(
        f"torch {torch.__version__}, sentence-transformers {sentence_transformers.__version__}, "
        f"threads {torch.get_num_threads()}, attention {attn}, "
        f"unpadded inputs {getattr(word, 'can_flatten_inputs', False)}; load {load_ms:.0f} ms",
        flush=True,
    )
    t = time.perf_counter()
    model.encode(sentences[:64], batch_size=args.batch)
    print(f"warm-up (64 sentences) {(time.perf_counter() - t) * 1e3:.0f} ms", flush=True)
    rates = []
    emb = None
    for r in range(1, args.rounds + 1):
        t = time.perf_counter()
        emb = model.encode(sentences, batch_size=args.batch, convert_to_numpy=True)
        secs = time.perf_counter() - t
        rates.append(len(sentences) / secs)
        print(f"round {r}: {secs:.3f} s, {rates[-1]:.1f} sentences/s", flush=True)
    rate = statistics.median(rates)
    print(f"pytorch: {rate:.1f} sentences/s (median of {args.rounds} rounds, batch {args.batch}, {args.threads} threads)")
    single = sentences[: args.single] if args.single else sentences
    lat = []
    t = time.perf_counter()
    for s in single:
        t1 = time.perf_counter()
        model.encode([s], batch_size=1, convert_to_numpy=True)
        lat.append((time.perf_counter() - t1) * 1e3)
    single_rate = len(single) / (time.perf_counter() - t)
    lat.sort()
    p50, p95 = percentile(lat, 0.50), percentile(lat, 0.95)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"single sentences ({len(single)}): p50 {p50:.2f} ms, p95 {p95:.2f} ms, "
          f"batch-1 throughput {single_rate:.1f} sentences/s")
    print(f"peak resident memory (ru_maxrss, includes the PyTorch runtime): {peak_mb:.0f} MiB")
    Path(args.json).write_text(
        json.dumps(
            {
                "implementation": "pytorch",
                "torch": torch.__version__,
                "sentence_transformers": sentence_transformers.__version__,
                "threads": torch.get_num_threads(),
                "batch": args.batch,
                "rounds_sentences_per_s": rates,
                "sentences_per_s": rate,
                "load_ms": load_ms,
                "single_sentences": len(single),
                "single_p50_ms": p50,
                "single_p95_ms": p95,
                "single_sentences_per_s": single_rate,
                "peak_rss_mb": peak_mb,
                "first_sentences": sentences[:10],
                "first_embeddings": emb[:10].tolist(),
            }
        )
    )


# --------------------------------------------------------------------------
# Outside: venv, cargo, comparison.
# --------------------------------------------------------------------------


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    py = _venv_python()
    check = [str(py), "-c", "import torch, sentence_transformers"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return
    print(f"creating {VENV} and installing {' '.join(PACKAGES)} from PyPI (several GB, minutes)...", flush=True)
    t = time.time()
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--no-input", *PACKAGES], check=True)
    print(f"installed in {time.time() - t:.0f} s", flush=True)


def percentile(sorted_values: list[float], q: float) -> float:
    """The q quantile of sorted values (nearest rank), as bench_text computes it."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(q * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def load1() -> float:
    """The 1-minute load average (the machine is shared: report it with every figure)."""
    return os.getloadavg()[0]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads and RAYON_NUM_THREADS (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="timed passes over the file per side (median reported)")
    p.add_argument("--runs", type=int, default=3, help="whole comparisons, one after the other (default 3)")
    p.add_argument("--single", type=int, default=0, help="sentences embedded one at a time (default 0: all)")
    p.add_argument("--generate-sentences", action="store_true", help=f"rewrite {SENTENCES.name} and exit")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.generate_sentences:
        SENTENCES.write_text("\n".join(generate_sentences()) + "\n", encoding="utf-8")
        print(f"wrote {N_SENTENCES} sentences to {SENTENCES}")
        return
    if args.inner:
        pytorch_inner(args)
        return

    out = CACHE / "bench"
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "RAYON_NUM_THREADS": str(args.threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    ensure_venv()
    # Build first so compilation never overlaps a timed run.
    subprocess.run(["cargo", "build", "-p", "fusion-models", "--release", "--example", "bench_text"], cwd=REPO, check=True)
    cargo = ["cargo", "run", "-q", "-p", "fusion-models", "--release", "--example", "bench_text", "--"]
    common = ["--batch", str(args.batch), "--threads", str(args.threads), "--rounds", str(args.rounds),
              "--single", str(args.single)]
    summary = []
    for run in range(1, args.runs + 1):
        loads = {}
        pt_json = out / "text_pytorch.json"
        print(f"== run {run}/{args.runs}: sentence-transformers (PyTorch, CPU); load {load1():.2f}", flush=True)
        loads["pytorch"] = load1()
        subprocess.run([str(_venv_python()), __file__, "--inner", *common, "--json", str(pt_json)], env=env, check=True)
        rs = {}
        for name in ("minilm", "bert"):
            loads[name] = load1()
            print(f"== run {run}/{args.runs}: candle, --pass {name}; load {loads[name]:.2f}", flush=True)
            js = out / f"text_candle_{name}.json"
            subprocess.run(
                [*cargo, str(SENTENCES.relative_to(REPO)), str(args.batch), "--rounds", str(args.rounds),
                 "--pass", name, *(["--single", str(args.single)] if args.single else []), "--json", str(js)],
                cwd=REPO, env=env, check=True,
            )
            rs[name] = json.loads(js.read_text())
        loads["end"] = load1()
        pt = json.loads(pt_json.read_text())
        summary.append(report(run, args, pt, rs, loads))
    print("== summary (sentences/s at batch {0}, {1} threads; ratio = MiniLM pass / PyTorch)".format(args.batch, args.threads))
    for line in summary:
        print(line)


def report(run: int, args: argparse.Namespace, pt: dict, rs: dict, loads: dict) -> str:
    """Prints one run's comparison; returns its summary line."""
    mini, bert = rs["minilm"], rs["bert"]
    for side in (mini, bert):
        assert pt["first_sentences"] == side["first_sentences"], "the sides read different sentences"
    ratio = mini["sentences_per_s"] / pt["sentences_per_s"]
    print(f"== result, run {run}")
    print(f"sentences: {mini['sentences']}, batch {args.batch}, threads: candle {mini['threads']}, torch {pt['threads']}")
    print(f"{'':34} {'batch ' + str(args.batch):>12} {'p50 ms':>8} {'p95 ms':>8} {'batch-1/s':>10} {'peak MiB':>9} {'load':>5}")
    rows = [
        (f"pytorch {pt['torch']} (s-t {pt['sentence_transformers']})", pt, loads["pytorch"]),
        ("candle MiniLm pass (service)", mini, loads["minilm"]),
        ("candle BertModel (reference)", bert, loads["bert"]),
    ]
    for name, r, load in rows:
        print(f"{name:34} {r['sentences_per_s']:12.1f} {r['single_p50_ms']:8.2f} {r['single_p95_ms']:8.2f} "
              f"{r['single_sentences_per_s']:10.1f} {r['peak_rss_mb']:9.0f} {load:5.2f}")
    print(f"ratio MiniLm pass / pytorch: {ratio:.2f} (target >= 1.3: {'met' if ratio >= 1.3 else 'NOT met'})")
    print(f"ratio BertModel / pytorch: {bert['sentences_per_s'] / pt['sentences_per_s']:.2f}; "
          f"MiniLm pass / BertModel: {mini['sentences_per_s'] / bert['sentences_per_s']:.2f}")
    for name, side in (("MiniLm pass", mini), ("BertModel", bert)):
        cos = [cosine(a, b) for a, b in zip(side["first_embeddings"], pt["first_embeddings"])]
        print(f"cosine {name} vs pytorch, first 10 sentences: min {min(cos):.9f} (1 - min = {1 - min(cos):.1e})"
              f" ({'ok' if min(cos) >= 0.9999 else 'BELOW 0.9999'})")
    return (f"run {run}: pytorch {pt['sentences_per_s']:.1f}, MiniLm pass {mini['sentences_per_s']:.1f}, "
            f"BertModel {bert['sentences_per_s']:.1f}; ratio {ratio:.2f}; single p50/p95 ms: "
            f"pytorch {pt['single_p50_ms']:.1f}/{pt['single_p95_ms']:.1f}, MiniLm {mini['single_p50_ms']:.1f}/"
            f"{mini['single_p95_ms']:.1f}, BertModel {bert['single_p50_ms']:.1f}/{bert['single_p95_ms']:.1f}; "
            f"load at start {loads['pytorch']:.2f}, end {loads['end']:.2f}")


if __name__ == "__main__":
    main()
