"""wer: word error rate between a reference and a hypothesis transcript."""

import re

# Everything but letters, digits and the apostrophe inside words ("i'm").
_PUNCT = re.compile(r"[^a-z0-9' ]+")
# pocketsphinx marks alternate pronunciations as word(2).
_ALT = re.compile(r"\(\d+\)")


def normalize(text):
    """Lower-case words, punctuation and sentence markers removed."""
    text = text.lower().replace("<s>", " ").replace("</s>", " ")
    text = _ALT.sub("", text)
    text = _PUNCT.sub(" ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def edit_distance(ref, hyp):
    """Word-level Levenshtein distance (substitutions, insertions, deletions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(reference, hypothesis):
    """Word error rate in percent of the reference's words."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 100.0
    return 100.0 * edit_distance(ref, hyp) / len(ref)


def read_transcriptions(path):
    """{utterance id: text} from a Sphinx transcription file
    ('<s> words </s> (id)' per line)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^(.*)\(([^()]+)\)\s*$", line)
            if m:
                out[m.group(2).strip()] = m.group(1).strip()
    return out
