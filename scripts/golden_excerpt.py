"""Remake the golden excerpt of open-unlearning's published evaluation logs that
``tests/golden/test_open_unlearning_logs.py`` checks our measures against
(``tests/fixtures/golden/open_unlearning_logs.json``; its README says what is kept and why).

The logs are open-unlearning's (github.com/locuslab/open-unlearning, ``setup_data.py --eval``),
as mirrored under ``saves/eval/`` of github.com/nxZhai/BalDRO. Given a clone of BalDRO (a work
tree or a bare git directory), this reads the files at a commit (HEAD by default) through git,
never from the work tree, so the excerpt depends on the commit alone:

    git clone https://github.com/nxZhai/BalDRO /tmp/BalDRO
    python scripts/golden_excerpt.py /tmp/BalDRO [--commit SHA] [--out FILE]
    cmp /tmp/excerpt.json tests/fixtures/golden/open_unlearning_logs.json   # with --out /tmp/excerpt.json

Only the standard library is used; the numbers are copied, never recomputed (JSON keeps every
float exactly: Python writes the shortest repr that reads back to the same double).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "golden" / "open_unlearning_logs.json"
OPEN_UNLEARNING_COMMIT = "8df291471d7a9549af7535facc4b2b22666c3091"  # see the README

TOFU_MODELS = ("Llama-2-7b-chat-hf", "Llama-3.1-8B-Instruct", "Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct")
# The full model on forgetXX is compared with the model trained on retain(100 - XX) only.
SPLITS = (("forget01", "retain99"), ("forget05", "retain95"), ("forget10", "retain90"))
# Every per-item truth ratio (a KS p-value needs them all) of these models and splits.
TRUTH_RATIO_MODELS = ("Llama-2-7b-chat-hf", "Llama-3.2-1B-Instruct")
TRUTH_RATIO_SPLITS = (("forget01", "retain99"), ("forget10", "retain90"))
MUSE_BOOKS = ("News", "Books")
ROUGE_KEYS = ("rougeL_f1", "rougeL_recall", "rouge1_recall")
# How many items of each generation log are kept for the ROUGE checks.
ROUGE_ITEMS = {"forget_Q_A_ROUGE": 16, "forget_knowmem_ROUGE": 10, "forget_verbmem_ROUGE": 4}
MIA_ATTACK = "mia_min_k"  # the attack behind privleak in both benchmarks' configs
MIA_LOGS = ("tofu_Llama-3.2-1B-Instruct_full/evals_forget10", "tofu_Llama-3.2-1B-Instruct_retain90",
            "muse_Llama-2-7b-hf_News_target", "muse_Llama-2-7b-hf_News_retrain")
REF_VALUE = 0.5  # open-unlearning's privleak ref_value: the reference AUC when no retain logs are given


class Logs:
    """The files of ``saves/eval/`` at one commit of a BalDRO clone."""

    def __init__(self, clone: Path, commit: str):
        self.git_dir = clone / ".git" if (clone / ".git").exists() else clone
        self.commit = self._git("rev-parse", "--verify", f"{commit}^{{commit}}").strip()
        self._cache: dict[str, dict] = {}

    def _git(self, *args: str) -> str:
        done = subprocess.run(["git", f"--git-dir={self.git_dir}", *args], capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    @staticmethod
    def path(name: str) -> str:
        return f"saves/eval/{name}/{'MUSE' if name.startswith('muse_') else 'TOFU'}_EVAL.json"

    def __getitem__(self, name: str) -> dict:
        if name not in self._cache:
            self._cache[name] = json.loads(self._git("show", f"{self.commit}:{self.path(name)}"))
        return self._cache[name]


def full_log(model: str, split: str) -> str:
    return f"tofu_{model}_full/evals_{split}"


def retain_log(model: str, split: str) -> str:
    return f"tofu_{model}_{split}"


def truth_ratios(log: dict) -> dict:
    """The forget set's paraphrased and perturbed answers' mean token losses and the logged
    truth ratio of every item, as columns, and the logged aggregate."""
    para = log["forget_Q_A_PARA_Prob"]["value_by_index"]
    pert = log["forget_Q_A_PERT_Prob"]["value_by_index"]
    tr = log["forget_truth_ratio"]["value_by_index"]
    index = list(tr)
    assert list(para) == index == list(pert)
    return {"agg_value": log["forget_truth_ratio"]["agg_value"], "index": index,
            "paraphrased_avg_loss": [para[i]["avg_loss"] for i in index],
            "perturbed_avg_loss": [pert[i]["avg_loss"] for i in index],
            "truth_ratio": [tr[i]["score"] for i in index]}


def rouge_items(log: dict, metric: str) -> dict:
    """``ROUGE_ITEMS[metric]`` items spread over the range of scores: evenly spaced positions of
    the items sorted by (rougeL_f1, index), so that 0, 1 and the scores between are all kept;
    items whose generation is the ground truth verbatim (all three scores 1 trivially) are left out."""
    values = log[metric]["value_by_index"]
    differing = [i for i, v in values.items() if v["generation"] != v["ground_truth"]]
    order = sorted(differing, key=lambda i: (values[i]["rougeL_f1"], int(i)))
    n = ROUGE_ITEMS[metric]
    chosen = sorted({order[round(k * (len(order) - 1) / (n - 1))] for k in range(n)}, key=int)
    return {i: {key: values[i][key] for key in ("generation", "ground_truth", *ROUGE_KEYS)} for i in chosen}


def excerpt(logs: Logs) -> dict:
    out: dict = {
        "source": {"repository": "https://github.com/nxZhai/BalDRO", "commit": logs.commit,
                   "files": "saves/eval/<log>/TOFU_EVAL.json or MUSE_EVAL.json",
                   "produced_by": f"https://github.com/locuslab/open-unlearning/tree/{OPEN_UNLEARNING_COMMIT}"},
        "truth_ratio": {}, "forget_quality": [], "rouge": {}, "privleak": [], "mia_auc": {},
    }
    for model in TRUTH_RATIO_MODELS:
        for forget, retain in TRUTH_RATIO_SPLITS:
            for name in (full_log(model, forget), retain_log(model, retain)):
                out["truth_ratio"][name] = truth_ratios(logs[name])
            out["forget_quality"].append({"log": full_log(model, forget), "reference_log": retain_log(model, retain),
                                          "forget_quality": logs[full_log(model, forget)]["forget_quality"]["agg_value"]})
        for name in (full_log(model, "forget10"), retain_log(model, "retain90")):
            out["rouge"][name] = {"forget_Q_A_ROUGE": rouge_items(logs[name], "forget_Q_A_ROUGE")}
    for book in MUSE_BOOKS:
        for which in ("target", "retrain"):
            name = f"muse_Llama-2-7b-hf_{book}_{which}"
            out["rouge"][name] = {metric: rouge_items(logs[name], metric)
                                  for metric in ("forget_knowmem_ROUGE", "forget_verbmem_ROUGE")}
    pairs = [(full_log(m, f), retain_log(m, r)) for m in TOFU_MODELS for f, r in SPLITS]
    pairs += [(retain_log(m, r), None) for m in TOFU_MODELS for _, r in SPLITS]
    pairs += [(f"muse_Llama-2-7b-hf_{b}_target", f"muse_Llama-2-7b-hf_{b}_retrain") for b in MUSE_BOOKS]
    pairs += [(f"muse_Llama-2-7b-hf_{b}_retrain", None) for b in MUSE_BOOKS]
    for name, reference in pairs:
        out["privleak"].append({"log": name, "auc": logs[name][MIA_ATTACK]["auc"], "reference_log": reference,
                                "reference_auc": logs[reference][MIA_ATTACK]["auc"] if reference else REF_VALUE,
                                "privleak": logs[name]["privleak"]["agg_value"]})
    for name in MIA_LOGS:
        attack = logs[name][MIA_ATTACK]
        out["mia_auc"][name] = {"attack": MIA_ATTACK, "auc": attack["auc"],
                                **{side: [v["score"] for v in attack[side]["value_by_index"].values()]
                                   for side in ("forget", "holdout")}}
    return out


def dumps(value, indent: int = 0) -> str:
    """JSON with one key per line down to the leaves, and lists (of numbers) on one line."""
    if isinstance(value, dict) and value:
        pad = " " * (indent + 1)
        body = ",\n".join(f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in value.items())
        return "{\n" + body + "\n" + " " * indent + "}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        pad = " " * (indent + 1)
        return "[\n" + ",\n".join(pad + dumps(v, indent + 1) for v in value) + "\n" + " " * indent + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clone", type=Path, help="a clone of github.com/nxZhai/BalDRO (work tree or bare git directory)")
    parser.add_argument("--commit", default="HEAD", help="the commit to read (default: HEAD)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write the excerpt (default: {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    text = dumps(excerpt(Logs(args.clone, args.commit))) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    data = text.encode("utf-8")
    print(f"{args.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
