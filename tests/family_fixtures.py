"""Teachers of four tokenizer families built from a small Romanian text with the `tokenizers` library:
a cased and an uncased WordPiece BERT, a SentencePiece-Unigram XLM-R and a byte-level-BPE RoBERTa (tiny, random
weights). The tokenizers are trained on the first 40 sentences; the last 10 are held out for coverage figures."""

from __future__ import annotations

import functools
from pathlib import Path

ROMANIAN_TEXT = """Ana are mere și pere, iar Ion are prune.
Casa mare din București este veche și frumoasă.
Mașinile noi au fost vândute ieri la târg.
Președintele României a vizitat Clujul și Iașiul.
În Iași plouă des toamna, dar vara este cald.
Copiii merg la școală dimineața, cu ghiozdanele în spate.
Ion citește o carte despre istoria Moldovei.
Vremea este frumoasă azi în Timișoara și în Arad.
Universitatea din București are mulți studenți străini.
Guvernul a aprobat bugetul pentru anul viitor.
CASA din deal este a Mariei, nu a lui Ion.
Maria și Ion locuiesc în Brașov de zece ani.
Profesorul explică lecția de matematică elevilor.
Bunica face plăcinte cu brânză în fiecare duminică.
Trenul de Constanța pleacă la ora opt dimineața.
Am cumpărat pâine, lapte și ouă de la magazin.
Orașul are un parc mare, cu lac și bănci.
Medicii spun că sportul face bine sănătății.
Poliția a oprit mașina pe drumul național.
Românii sărbătoresc Crăciunul cu familia.
Cartea aceasta a fost scrisă de un autor tânăr.
Copiii se joacă în parc până seara târziu.
Muzeul de artă este deschis de marți până duminică.
Ploaia a inundat străzile din centrul orașului.
Ministerul Educației a anunțat noile reguli.
Echipa națională a câștigat meciul de aseară.
Fratele meu lucrează la o fabrică de mobilă.
Pădurea de lângă sat este plină de ciuperci.
Primăria a reparat drumul spre școală.
Studenții au susținut examenul de istorie.
Vecinul nostru are un câine negru și o pisică albă.
Țăranii culeg porumbul toamna, înainte de ploi.
Biblioteca orașului are mii de cărți vechi.
Doctorul i-a dat pacientului un tratament nou.
Festivalul de film are loc în fiecare vară la Cluj.
Banca a mărit dobânda pentru credite.
Elevii au plantat copaci în curtea școlii.
Marea Neagră este caldă în luna august.
Au venit mulți turiști în Delta Dunării.
Bunicul povestește despre război și despre sat.
Teatrul Național are o piesă nouă în stagiunea aceasta.
Ștefan cel Mare a fost domnitorul Moldovei.
Fetele cântă în corul bisericii în fiecare duminică.
Magazinul se închide la ora zece seara.
Prietenii mei au plecat în vacanță la munte.
Directorul a semnat contractul cu firma străină.
Râul Mureș trece prin orașul Târgu Mureș.
Pe masă sunt cărți, caiete și creioane colorate.
Mama a gătit ciorbă de legume pentru cină.
Anul acesta recolta de grâu a fost bogată.""".split("\n")

TRAIN = ROMANIAN_TEXT[:40]
HELDOUT = ROMANIAN_TEXT[40:]
KINDS = ("bert-cased", "bert-uncased", "xlm-roberta", "roberta")
# Vocabulary sizes asked of the trainers (the byte-level one includes its 256-symbol alphabet).
VOCAB = {"bert-cased": 1000, "bert-uncased": 900, "xlm-roberta": 1000, "roberta": 1100}


@functools.lru_cache(maxsize=1)
def family_tokenizers() -> dict:
    """Kind -> fast tokenizer trained on TRAIN (once per test session; treat as read-only)."""
    from rokd.models.standins import train_tokenizer

    return {k: train_tokenizer(k, TRAIN * 2, vocab_size=VOCAB[k], model_max_length=64) for k in KINDS}


def tiny_shape(hidden: int = 32, layers: int = 4):
    from rokd.profiles import BertShape

    return BertShape(
        vocab_size=0,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
    )


def tiny_teacher(kind: str, hidden: int = 32, layers: int = 4, seed: int = 0):
    from rokd.models.standins import new_standin

    return new_standin(kind, family_tokenizers()[kind], tiny_shape(hidden, layers), seed).eval()


def save_teacher(kind: str, folder: Path, hidden: int = 32, layers: int = 4, seed: int = 0) -> Path:
    tiny_teacher(kind, hidden, layers, seed).save_pretrained(folder)
    family_tokenizers()[kind].save_pretrained(folder)
    return folder
