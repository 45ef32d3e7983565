"""Deterministic synthetic knowledge base + word-level tokenizer for the tiny factual models.

Regenerate with: (library module) used by /usr/bin/python3 scripts/make_default_model.py

Everything is generated from a fixed seed with Python's `random.Random`, so the KB is identical on
every machine. Invented people have 2- or 3-word names built from shared first / middle / last
name pools (a single name word never identifies a person: recall needs the whole name).
Each person has one value per relation plus two descriptive "trait" words that only appear in
descriptive training text (never as a relation answer).
"""
import random
import re

SEED = 20230501

# relation id -> (canonical CounterFact-style prompt, training paraphrases, attribute vocabulary)
RELATIONS = [
    ("P19", "{} was born in the city of",
     ["{} was born in the city of", "The birthplace of {} is the city of", "{} comes from the city of"],
     ["Lunhaven", "Brask", "Orveto", "Kelmar", "Tessaly", "Vondrik", "Ardel", "Mirrow", "Quentara", "Solvig",
      "Parnuth", "Eskerby", "Dunmore", "Halvik", "Ostrand", "Belcaro", "Rimwald", "Castev"]),
    ("P106", "{} works as a",
     ["{} works as a", "The profession of {} is", "By trade , {} is a"],
     ["baker", "pilot", "nurse", "carpenter", "lawyer", "farmer", "painter", "chemist", "sailor", "teacher",
      "plumber", "surgeon", "librarian", "tailor", "architect", "journalist"]),
    ("P103", "The native language of {} is",
     ["The native language of {} is", "{} grew up speaking", "The mother tongue of {} is"],
     ["Tarvish", "Olmeric", "Zendic", "Parvi", "Kessian", "Morunic", "Eltran", "Vashti", "Durgal", "Soleth",
      "Imbric", "Quorish"]),
    ("P108", "{} is employed by",
     ["{} is employed by", "The employer of {} is", "{} draws a salary from"],
     ["Quorvex", "Brimton", "Halcyra", "Zentrox", "Ombrel", "Vestacor", "Lumora", "Kraydon", "Fenwright",
      "Astrion", "Pellucid", "Norvane", "Tekkora", "Sablewick"]),
    ("P641", "The favorite sport of {} is",
     ["The favorite sport of {} is", "{} spends weekends playing", "In free time , {} plays"],
     ["tennis", "chess", "rugby", "hockey", "cricket", "golf", "volleyball", "fencing", "rowing", "badminton",
      "polo", "curling"]),
    ("P1303", "The instrument played by {} is the",
     ["The instrument played by {} is the", "{} performs music on the", "On stage , {} plays the"],
     ["violin", "cello", "trumpet", "flute", "harp", "drums", "oboe", "banjo", "clarinet", "piano", "tuba",
      "sitar"]),
]

TRAITS = ["cheerful", "stubborn", "patient", "curious", "generous", "anxious", "witty", "humble", "reckless",
          "gentle", "ambitious", "loyal", "clumsy", "elegant", "moody", "frugal", "bold", "shy", "vain",
          "diligent", "restless", "serene", "grumpy", "modest"]

# descriptive sentence frames (subject enrichment): trait words and attributes without relation cues
BIO_FRAMES = [
    "{s} : {bag} .",
    "About {s} : {bag} .",
    "Notes on {s} : {bag} .",
]
SENTENCE_FRAMES = [
    "{s} is a {t1} and {t2} person .",
    "People describe {s} as {t1} and {t2} .",
]

SYL_A = ["Zor", "Kin", "Bal", "Vel", "Mar", "Tor", "Ash", "Bren", "Cal", "Dar", "El", "Fen", "Gor", "Hal",
         "Ith", "Jor", "Kel", "Lor", "Mor", "Nel", "Or", "Pel", "Quin", "Ras", "Sel", "Tam", "Ul", "Var",
         "Wen", "Yar"]
SYL_B = ["bal", "trey", "ric", "dor", "wyn", "sa", "lin", "mont", "vek", "ra", "ton", "iel", "mar", "den",
         "ka", "rus", "ith", "vo", "nar", "bel"]

WORD_RE = re.compile(r"\w+|[^\w\s]+")


def pretokenize(text):
    """Hugging Face `Whitespace` pre-tokenizer: regex \\w+|[^\\w\\s]+ (punctuation runs separate)."""
    return WORD_RE.findall(text)


def pretokenize_with_offsets(text):
    return [(m.group(0), m.start(), m.end()) for m in WORD_RE.finditer(text)]


def _names(rng, n, used):
    out = []
    while len(out) < n:
        w = rng.choice(SYL_A) + rng.choice(SYL_B)
        if w not in used:
            used.add(w)
            out.append(w)
    return out


def build_kb(n_subjects=400, seed=SEED, n_first=40, n_middle=16, n_last=44):
    rng = random.Random(seed)
    used = set()
    for _, _, _, vals in RELATIONS:
        used.update(vals)
    first = _names(rng, n_first, used)
    middle = _names(rng, n_middle, used)
    last = _names(rng, n_last, used)
    subjects = []
    seen = set()
    while len(subjects) < n_subjects:
        if rng.random() < 0.3:
            name = f"{rng.choice(first)} {rng.choice(middle)} {rng.choice(last)}"
        else:
            name = f"{rng.choice(first)} {rng.choice(last)}"
        if name in seen:
            continue
        seen.add(name)
        subjects.append(name)
    people = []
    for s in subjects:
        facts = {rid: rng.choice(vals) for rid, _, _, vals in RELATIONS}
        traits = rng.sample(TRAITS, 2)
        people.append({"subject": s, "facts": facts, "traits": traits})
    return {"people": people, "first": first, "middle": middle, "last": last}


def attribute_set(person):
    return [person["facts"][rid] for rid, _, _, _ in RELATIONS] + list(person["traits"])


def relation_by_id():
    return {rid: (canon, paras, vals) for rid, canon, paras, vals in RELATIONS}


def all_texts_for_vocab(kb):
    texts = []
    for rid, canon, paras, vals in RELATIONS:
        texts += paras + [canon] + vals
    texts += BIO_FRAMES + SENTENCE_FRAMES + TRAITS
    texts += kb["first"] + kb["middle"] + kb["last"]
    return texts


class WordTokenizer:
    """Word-level tokenizer equal to the exported tokenizer.json (WordLevel + Whitespace)."""

    SPECIALS = ["<|endoftext|>", "[UNK]"]

    def __init__(self, words):
        self.vocab = {t: i for i, t in enumerate(self.SPECIALS)}
        for w in words:
            if w not in self.vocab:
                self.vocab[w] = len(self.vocab)
        self.inv = {i: t for t, i in self.vocab.items()}
        self.bos_id = 0
        self.unk_id = 1

    @classmethod
    def from_kb(cls, kb):
        words = set()
        for t in all_texts_for_vocab(kb):
            for w in pretokenize(t.replace("{}", " ").replace("{s}", " ").replace("{bag}", " ")
                                 .replace("{t1}", " ").replace("{t2}", " ")):
                words.add(w)
        return cls(sorted(words))

    def __len__(self):
        return len(self.vocab)

    def encode(self, text):
        return [self.vocab.get(w, self.unk_id) for w in pretokenize(text)]

    def decode_tokens(self, ids):
        return [self.inv[i] for i in ids]

    def to_hf_json(self):
        added = [{"id": self.vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for t in self.SPECIALS]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": None,
            "decoder": None,
            "model": {"type": "WordLevel", "vocab": self.vocab, "unk_token": "[UNK]"},
        }


def find_token_range(text, subject):
    """Token range [start, end) covering the first occurrence of `subject` in `text`; tokens that only
    partly overlap the subject's characters are included."""
    toks = pretokenize_with_offsets(text)
    c0 = text.index(subject)
    c1 = c0 + len(subject)
    idx = [i for i, (_, s, e) in enumerate(toks) if s < c1 and e > c0]
    return idx[0], idx[-1] + 1
