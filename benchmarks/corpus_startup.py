"""Training-data start-up at scale: today's in-memory corpus against the memory-mapped Arrow store (issue #31).

    python benchmarks/corpus_startup.py [--sizes 100000 1000000 5000000] [--baseline-rev 1ed7ae1]
                                        [--out benchmarks/results/corpus_startup.json]

A synthetic parallel JSONL (8 languages, every id in every language, ~460 bytes a line, seeded) per size.
Each measurement is a fresh process that does what a training rank does before its first step: the
datamodule's ``load_data`` (read the corpus, split off dev ids, build the hybrid sampler) and collates the
first batch (texts, without tokenising). Peers in the same run:

- **baseline**: the code at ``--baseline-rev`` (the last commit with Python-object corpora), extracted with
  ``git archive`` and put first on the child's PYTHONPATH;
- **new, first start**: builds the Arrow cache; **new, second start**: maps it.

Reported per size: time to the first batch (second start: the median of ``--repeats`` runs), peak RSS growth over the interpreter with its imports
(ru_maxrss), and bytes per example as the slope between sizes. Then two ranks at once on the largest size
(every rank alive until all have measured: a rank that exits early would hand its pages to the others' PSS): the sum of their PSS (proportional set size, /proc/self/smaps_rollup: shared
pages split between the processes that map them) over the interpreter baseline, against one rank's, at the
first batch and again after each rank has read every text once (as an epoch does); the median of
``--repeats`` measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANGS = ["ar", "de", "en", "es", "hi", "ru", "vi", "zh"]
DEV_MAX_IDS = 2000  # the dev retrieval set is Python objects in both peers; large corpora cap it (conf/data)
WORDS = (
    "the of and to in is was for on as with by he at from his an were are which this be or has had".split()
)


def write_corpus(path: Path, n_examples: int) -> None:
    """Every id in all 8 languages; a query of ~12 words, a positive of ~60 (about 460 bytes a line)."""
    import numpy as np

    rng = np.random.default_rng(0)
    vocab = np.array(WORDS)
    with path.open("w", encoding="utf-8") as fh:
        for start in range(0, n_examples, 80_000):
            n = min(80_000, n_examples - start)
            words = vocab[rng.integers(len(vocab), size=(n, 72))]
            lines = []
            for k in range(n):
                i = start + k
                qid, lang = i // len(LANGS), LANGS[i % len(LANGS)]
                row = {
                    "id": f"q{qid:08d}",
                    "lang": lang,
                    "query": f"{lang} {qid} " + " ".join(words[k, :12]),
                    "positive": f"{lang} {qid} " + " ".join(words[k, 12:]),
                }
                lines.append(json.dumps(row))
            fh.write("\n".join(lines) + "\n")


def proc_kib(file: str, key: str) -> int:
    for line in Path(f"/proc/self/{file}").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pss_kib() -> int:
    return proc_kib("smaps_rollup", "Pss")


def child(path: str, cache_dir: str, barrier: str | None) -> None:
    """One rank's start: load_data + the first collated batch; prints a JSON line."""
    from functools import partial

    from mdr.training.datamodule import Collator, RetrievalDataModule
    from mdr.training.samplers import HybridSampler

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    base_pss, base_anon = pss_kib(), proc_kib("status", "RssAnon")
    t0 = time.perf_counter()
    source = {"kind": "jsonl", "path": path, "langs": None}
    if cache_dir != "-":
        source["cache_dir"] = cache_dir
    dm = RetrievalDataModule(
        train=source,
        data_dir=".",
        sampler_factory=partial(HybridSampler, alpha=0.5),
        batch_size=32,
        dev_max_ids=DEV_MAX_IDS,
    )
    dm.load_data()
    plan = dm._rank_sampler.plan(0)
    texts = lambda xs, *a: list(xs)  # noqa: E731 - stands in for the tokeniser
    batch = Collator(dm.train_corpus, texts, texts)(plan)
    first_batch_s = time.perf_counter() - t0
    assert len(batch["query"]) == 32
    out = {
        "first_batch_s": first_batch_s,
        "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024,
        "anon_growth_mib": (proc_kib("status", "RssAnon") - base_anon)
        / 1024,  # private memory at the first batch
        "examples": len(dm.train_corpus) + (len(dm.dev_corpus) if dm.dev_corpus is not None else 0),
    }
    if barrier:
        Path(f"{barrier}.{os.getpid()}").write_text("ready")
        while not Path(f"{barrier}.go").exists():
            time.sleep(0.05)
        out["pss_growth_mib"] = (pss_kib() - base_pss) / 1024
        wait_for_all(
            barrier, "measured"
        )  # no rank reads or exits while another measures: PSS splits by mappers
        store = getattr(dm.train_corpus, "store", None)
        if hasattr(store, "table"):  # an epoch reads every example: touch every text page of the mapped file
            import pyarrow.compute as pc

            for column in ("query", "positive", "id", "lang", "group"):
                pc.sum(pc.utf8_length(store.table.column(column)))
            wait_for_all(barrier, "read")
            out["pss_after_reading_all_mib"] = (pss_kib() - base_pss) / 1024
            wait_for_all(barrier, "measured-again")
    print(json.dumps(out), flush=True)


def wait_for_all(barrier: str, step: str) -> None:
    """A file barrier across the ranks of one measurement (RANKS of them)."""
    Path(f"{barrier}.{step}.{os.getpid()}").write_text(step)
    while len(list(Path(barrier).parent.glob(f"{Path(barrier).name}.{step}.*"))) < int(os.environ["RANKS"]):
        time.sleep(0.05)


def run_child(
    pythonpath: str, path: Path, cache_dir: str, barrier: str | None = None, ranks: int = 1
) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "RANKS": str(ranks)}
    args = [sys.executable, __file__, "--child", str(path), cache_dir, barrier or ""]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)


def result_of(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"child failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def two_ranks(pythonpath: str, path: Path, cache_dir: str, tmp: Path) -> tuple[dict, list[dict]]:
    """One rank alone, then two at once (both loaded before either measures PSS)."""
    results = []
    for n in (1, 2):
        barrier = str(tmp / f"barrier{n}")
        procs = [run_child(pythonpath, path, cache_dir, barrier, n) for _ in range(n)]
        while len(list(tmp.glob(f"barrier{n}.[0-9]*"))) < n:
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit("a rank failed")
            time.sleep(0.1)
        Path(f"{barrier}.go").write_text("go")
        results.append([result_of(p) for p in procs])
    return results[0][0], results[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    ap.add_argument("--baseline-rev", default="1ed7ae1")
    ap.add_argument("--baseline-max", type=int, default=None, help="skip the baseline above this size")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "corpus_startup.json"))
    ap.add_argument("--repeats", type=int, default=3, help="second starts and two-rank measurements (median)")
    ap.add_argument("--child", nargs=3)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2] or None)
        return
    sys.path.insert(0, str(ROOT / "src"))
    from mdr.runtime.provenance import cpu_model

    new_src = str(ROOT / "src")
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("MDR_BENCH_TMP")) as tmp_name:
        tmp = Path(tmp_name)
        old_src = tmp / "baseline"
        old_src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline_rev, "src/mdr"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        for size in args.sizes:
            path = tmp / f"train{size}.jsonl"
            t0 = time.perf_counter()
            write_corpus(path, size)
            print(
                f"# {size} examples: {path.stat().st_size / 1e6:.0f} MB written in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            row = {"examples": size, "file_mb": path.stat().st_size / 1e6}
            if args.baseline_max is None or size <= args.baseline_max:
                row["baseline"] = result_of(run_child(str(old_src / "src"), path, "-"))
            cache = str(tmp / f"cache{size}")
            row["first_start"] = result_of(run_child(new_src, path, cache))
            # the second start is a fraction of a second at small sizes: the median of --repeats runs
            seconds = [result_of(run_child(new_src, path, cache)) for _ in range(args.repeats)]
            seconds.sort(key=lambda r: r["first_batch_s"])
            row["second_start"] = seconds[len(seconds) // 2]
            row["second_start_runs_s"] = [r["first_batch_s"] for r in seconds]
            rows.append(row)
            print(json.dumps(row), flush=True)
            if size != max(args.sizes):
                path.unlink()
        largest = max(args.sizes)
        repeats = []  # PSS depends on what else the page cache holds at that moment: the median of --repeats
        for r in range(args.repeats):
            repeat_tmp = tmp / f"ranks{r}"
            repeat_tmp.mkdir()
            one_r, two_r = two_ranks(
                new_src, tmp / f"train{largest}.jsonl", str(tmp / f"cache{largest}"), repeat_tmp
            )
            repeats.append((sum(x["pss_growth_mib"] for x in two_r) / one_r["pss_growth_mib"], one_r, two_r))
        repeats.sort(key=lambda x: x[0])
        _, one, two = repeats[len(repeats) // 2]
    slope = {}
    for peer in ("baseline", "first_start", "second_start"):
        have = [r for r in rows if peer in r]
        if len(have) >= 2:
            a, b = have[0], have[-1]
            slope[peer] = (
                (b[peer]["rss_growth_mib"] - a[peer]["rss_growth_mib"])
                * 2**20
                / (b["examples"] - a["examples"])
            )
    pss_two = sum(r["pss_growth_mib"] for r in two)
    read_one, read_two = one["pss_after_reading_all_mib"], sum(r["pss_after_reading_all_mib"] for r in two)
    result = {
        "cpu": cpu_model()[0],
        "cpu_flags": cpu_model()[1],
        "baseline_rev": args.baseline_rev,
        "sizes": rows,
        "rss_bytes_per_example": slope,
        "two_ranks": {
            "examples": largest,
            "one_rank_pss_mib": one["pss_growth_mib"],
            "two_ranks_pss_mib": pss_two,
            "two_over_one": pss_two / one["pss_growth_mib"],
            "two_over_one_runs": [x[0] for x in repeats],
            "after_reading_all": {
                "one_rank_pss_mib": read_one,
                "two_ranks_pss_mib": read_two,
                "two_over_one": read_two / read_one,
            },
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("| examples | peer | first batch s | peak RSS growth MiB | second start / first |")
    print("|---|---|---|---|---|")
    for r in rows:
        for peer in ("baseline", "first_start", "second_start"):
            if peer in r:
                ratio = (
                    f"{r['second_start']['first_batch_s'] / r['first_start']['first_batch_s']:.3f}"
                    if peer == "second_start"
                    else ""
                )
                print(
                    f"| {r['examples']:,} | {peer} | {r[peer]['first_batch_s']:.2f} | {r[peer]['rss_growth_mib']:.0f} | {ratio} |"
                )
    print(
        "\nbytes of peak RSS per example (slope, smallest to largest size):",
        {k: round(v, 1) for k, v in slope.items()},
    )
    print(
        f"after each rank read every example once (every text page touched): one rank {read_one:.0f} MiB, "
        f"two ranks together {read_two:.0f} MiB ({read_two / read_one:.2f}x)"
    )
    print(
        f"PSS over the interpreter at {largest:,} examples: one rank {one['pss_growth_mib']:.0f} MiB, "
        f"two ranks together {pss_two:.0f} MiB ({pss_two / one['pss_growth_mib']:.3f}x; runs "
        f"{', '.join(f'{x[0]:.3f}' for x in repeats)})"
    )


if __name__ == "__main__":
    main()
